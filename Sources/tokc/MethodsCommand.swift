import ArgumentParser
import Evaluation
import Models
import TokenCompression

struct MethodsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "methods",
        abstract: "List every implemented method, grouped by domain.",
        discussion: """
        For each method: family (prune / merge / cache / forecast), where it acts, the signals it
        needs, whether it needs explicit attention probabilities (FlashAttention-incompatible),
        whether its conformance cases are wired, whether it runs inside a model (`tokc run --method`,
        `tokc bench`), and its paper and official repository.
        """
    )

    @Flag(name: .long, help: "Also show a one-line summary of each method.")
    var details = false

    func run() {
        let conformed = Set(MethodCatalog.conformers.map { $0.method })
        let runnable = Set(MethodCatalog.inModelMethods)
        if MethodCatalog.infos.isEmpty { print("no methods registered yet") }
        for domain in Domain.allCases {
            let methods = MethodCatalog.infos.filter { $0.domain == domain }
            guard !methods.isEmpty else { continue }
            print("## \(domain.rawValue)")
            for m in methods {
                let attention = m.needsAttentionProbabilities ? "needs attention probs" : "fused-attention OK"
                print("  \(m.name.padding(toLength: 14, withPad: " ", startingAt: 0)) \(m.families.map(\.rawValue).joined(separator: "+").padding(toLength: 17, withPad: " ", startingAt: 0)) \(m.placement)  | \(attention) | conformance: \(conformed.contains(m.name) ? "yes" : "no") | in model: \(runnable.contains(m.name) ? "yes" : "no")")
                print("      signals: \(m.signals.map(\.rawValue).joined(separator: "; "))")
                print("      paper: \(m.paper)  code: \(m.repository)")
                if details {
                    print("      \(m.summary)")
                    if let names = MethodCatalog.entry(named: m.name)?.adapter?.parameters {
                        print("      in-model parameters (--param): \(names.isEmpty ? "none" : names.joined(separator: ", "))")
                        if let needs = MethodCatalog.entry(named: m.name)?.adapter?.requires { print("      requires \(needs)") }
                    }
                    if let video = MethodCatalog.entry(named: m.name)?.videoAdapter {
                        print("      on LLaVA-OneVision videos, before the LLM (--param): \(video.parameters.joined(separator: ", "))")
                    }
                    if let diffusion = MethodCatalog.entry(named: m.name)?.diffusionAdapter {
                        print("      in DiT / PixArt-α blocks, tokc generate (--param): \(diffusion.parameters.joined(separator: ", "))")
                    }
                    if let vit = MethodCatalog.entry(named: m.name)?.vitAdapter {
                        print("      in a ViT (--param): \(vit.parameters.joined(separator: ", ")); classifier sweep: \(vit.sweep.parameter) = \(vit.sweep.values.joined(separator: ", "))")
                        if let needs = vit.requires { print("      requires \(needs)") }
                    }
                }
            }
        }
        print(MethodCatalog.summary)
    }
}
