import ArgumentParser
import Evaluation
import Foundation

struct FlopsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flops",
        abstract: "Analytic FLOPs per stage and KV-cache size of a VLM configuration, with or without a compression method.",
        discussion: """
        No weights needed: give a Hugging Face config.json or a preset
        (\(ShapePresets.names.joined(separator: ", "))). Prints the vision encoder, projector,
        LLM prefill (following the method's per-layer visual-token schedule), decode and LM-head
        cost next to the uncompressed run, and the KV cache.

        Conventions: --convention design (default) counts a multiply-add as 2 FLOPs, as DESIGN.md;
        --convention macs counts it as 1, as FastV's formula and SparseVLM's counter do. Their
        FFN counts differ too: FastV 2 matrices (--ffn-matrices 2), SparseVLM 3.
        Examples:
          tokc flops --preset llava-1.5-7b --method fastv                        (K=2, R=50%)
          tokc flops --preset llava-1.5-7b --convention macs --ffn-matrices 2    (3.33 T, FastV Eq.)
          tokc flops --preset llava-1.5-7b --method sparsevlm --keep 192 --convention macs --ffn-matrices 3
          tokc flops --preset llava-onevision-7b --frames 32 --method vidcom2   (32 × 196 + 1 video tokens)
        Methods: \(MethodSchedulesNames.list).
        """
    )

    @Option(name: .long, help: "Hugging Face config.json (text model or VLM).")
    var config: String?

    @Option(name: .long, help: "Built-in model shape.")
    var preset: String?

    @Option(name: .long, help: "Uncompressed visual tokens N (default: the model's usual single image).")
    var visualTokens: Int?

    @Option(name: .long, help: "A video of N frames instead of an image (LLaVA-OneVision: N × pooled tokens per frame + 1).")
    var frames: Int?

    @Option(name: .long, help: "Prompt tokens after the image (question + template).")
    var textTokens: Int = 30

    @Option(name: .long, help: "Prompt tokens before the image (LLaVA-1.5 system prompt incl. BOS: 35).")
    var systemTokens: Int = 35

    @Option(name: .long, help: "Compression method whose per-layer schedule to follow.")
    var method: String?

    @Option(name: .long, help: "The method's budget knob (e.g. DART M, FastV k, SparseVLM 192/128/64, FasterVLM T).")
    var keep: Int?

    @Option(name: .long, help: "Custom visual tokens per LLM layer, e.g. 576x2,288x30 (instead of --method).")
    var schedule: String?

    @Option(name: .long, help: "Generated tokens after prefill.")
    var decodeTokens: Int = 0

    @Option(name: .long, help: "design (multiply-add = 2 FLOPs) or macs (= 1).")
    var convention: String = "design"

    @Option(name: .long, help: "FFN matrices counted per LLM layer: 2 (FastV paper) or 3 (SwiGLU; default).")
    var ffnMatrices: Int?

    @Option(name: .long, help: "KV-cache bytes per element (2 = fp16).")
    var bytesPerElement: Int = 2

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func validate() throws {
        guard (config == nil) != (preset == nil) else { throw ValidationError("give exactly one of --config and --preset") }
        guard FlopsConvention.Unit(rawValue: convention) != nil else { throw ValidationError("--convention must be design or macs") }
        if let f = ffnMatrices, f != 2 && f != 3 { throw ValidationError("--ffn-matrices must be 2 or 3") }
        if keep != nil && method == nil { throw ValidationError("--keep needs --method") }
        if schedule != nil && method != nil { throw ValidationError("give --method or --schedule, not both") }
        if frames != nil && visualTokens != nil { throw ValidationError("give --frames or --visual-tokens, not both (a video's tokens follow from its frames)") }
    }

    func run() throws {
        do {
            let report = try FlopsCalculator.report(try request())
            print(json ? try report.jsonString() : report.text)
        } catch let e as FlopsError {
            printError("error: \(e)")
            throw ExitCode.validationFailure
        }
    }

    func request() throws -> FlopsRequest {
        let shape: ModelShape
        if let preset { shape = try ShapePresets.named(preset) } else {
            let parsed = try ShapeConfigParser.parse(fileAt: config!)
            for d in parsed.defaulted { printError("note: \(d)") }
            shape = parsed.shape
        }
        var visual = visualTokens ?? shape.defaultVisualTokens
        var video: (frames: Int, tokensPerFrame: Int)?
        if let frames {
            let v = try VideoFlops.visualTokens(shape: shape, frames: frames)
            visual = v.visual
            video = (frames, v.tokensPerFrame)
            if let method { try VideoFlops.checkMethod(method) }
        }
        let layers = shape.llm.layers
        let plan: VisualTokenPlan
        if let schedule {
            plan = VisualTokenPlan(method: "custom", settings: "--schedule \(schedule)",
                                   llmVisual: try VisualTokenPlan.parseSchedule(schedule, layers: layers), projectorTokens: visual)
        } else if let method {
            let v = shape.vision
            let context = MethodSchedules.Context(
                visual: visual, llmLayers: layers, visionLayers: v?.encoder.layers ?? 0, tokensPerPass: v?.tokensPerPass ?? 0,
                encoderTokensPerPass: (v?.patchesPerPass ?? 0) + (v?.hasCLS == true ? 1 : 0), video: video)
            plan = try MethodSchedules.plan(method: method, keep: keep, context: context)
        } else {
            plan = .uncompressed(visual: visual, layers: layers)
        }
        var request = FlopsRequest(shape: shape, visualTokens: visual, systemTokens: systemTokens, textTokens: textTokens,
                                   decodeTokens: decodeTokens, plan: plan,
                                   convention: FlopsConvention(unit: FlopsConvention.Unit(rawValue: convention)!, ffnMatrices: ffnMatrices),
                                   bytesPerElement: bytesPerElement)
        request.videoFrames = frames
        return request
    }
}

enum MethodSchedulesNames {
    static var list: String { MethodSchedules.supported.joined(separator: ", ") }
}
