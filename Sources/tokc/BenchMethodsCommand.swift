import ArgumentParser
import Evaluation
import Foundation
import Tensors
import TokenCompression

/// `tokc bench-methods`: what each image-VLM method's own scoring and selection costs.
struct BenchMethodsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-methods",
        abstract: "Time the own scoring/selection cost of every image-VLM method on synthetic seeded signals.",
        discussion: """
        Signals have the model's shapes: LLM side d = 4096 (32 heads × 128) over 35 system +
        N visual + 60 text tokens; vision side the same width per ViT pass. 2880 visual tokens
        are read as LLaVA-NeXT (base + 2×2 crops of 576); each method runs its NeXT path where
        it has one, otherwise its plain path (the note says which). Only the method call is timed;
        inputs are built before. Protocol: 2 warm-ups, then --repeats runs; median and min–max.
        A method that fails on a size shows its error instead of a number.
        """
    )

    @Option(name: .long, help: "Comma-separated method names (default: every image-VLM method).")
    var methods: String?

    @Option(name: .long, help: "Comma-separated visual-token counts.")
    var tokens: String = "576,2880"

    @Option(name: .long, help: "Timed repeats per measurement.")
    var repeats = 5

    @Option(name: .long, help: "Untimed warm-up runs per measurement.")
    var warmups = 2

    @Option(name: .long, help: "Hidden width of every signal.")
    var width = 4096

    @Option(name: .long, help: "Attention heads (width must divide into them).")
    var heads = 32

    @Option(name: .long, help: "Threads for BLAS and row/head parallel work (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    func run() throws {
        guard repeats > 0, warmups >= 0, threads > 0 else {
            throw ValidationError("--repeats and --threads must be positive, --warmups ≥ 0")
        }
        let known = MethodScoringBenchmark.methods
        let chosen = try methods.map { list -> [String] in
            let names = list.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).lowercased() }.filter { !$0.isEmpty }
            if let bad = names.first(where: { !known.contains($0) }) {
                throw ValidationError("unknown image-VLM method '\(bad)'; known: \(known.joined(separator: ", "))")
            }
            return names
        } ?? known
        let sizes = try tokens.split(separator: ",").map { part -> Int in
            guard let n = Int(part.trimmingCharacters(in: .whitespaces)), n > 0 else {
                throw ValidationError("--tokens must be positive integers separated by commas, got '\(part)'")
            }
            return n
        }
        guard !sizes.isEmpty, !chosen.isEmpty else { throw ValidationError("nothing to run") }
        BLAS.threads = threads
        Parallel.threadCount = threads

        print("threads: \(threads), width: \(width) (\(heads) heads × \(width / max(heads, 1))), sequence: 35 system + N visual + 60 text")
        print("protocol: \(warmups) warm-ups, \(repeats) timed runs; method call only (inputs prepared outside)\n")
        print("| method | tokens | kept (achieved) | median ms | spread | note |")
        print("|---|---|---|---|---|---|")
        for n in sizes {
            let shape = MethodBenchmarkShape(visualTokens: n, width: width, heads: heads)
            for method in chosen {
                for row in MethodScoringBenchmark.measure(method: method, shape: shape, warmups: warmups, repeats: repeats) {
                    print(Self.line(row))
                    fflush(stdout)
                }
            }
        }
        print("\npeak tensor memory: \(MemoryAccounting.peakBytes / 1_048_576) MiB, process peak RSS: \(MemoryAccounting.processPeakRSS / 1_048_576) MiB")
    }

    static func line(_ m: MethodScoringMeasurement) -> String {
        func ms(_ x: Double) -> String { x >= 100 ? String(format: "%.0f", x) : x >= 1 ? String(format: "%.2f", x) : String(format: "%.3f", x) }
        let kept = m.kept.map(String.init) ?? "—"
        let cell = { (s: String) in s.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ") }
        guard let median = m.median, let lo = m.milliseconds.first, let hi = m.milliseconds.last else {
            let note = [m.note, "error: \(m.error ?? "no timing")"].filter { !$0.isEmpty }.joined(separator: "; ")
            return "| \(m.label) | \(m.visualTokens) | \(kept) | — | — | \(cell(note)) |"
        }
        return "| \(m.label) | \(m.visualTokens) | \(kept) | \(ms(median)) | \(ms(lo))–\(ms(hi)) | \(cell(m.note)) |"
    }
}
