import ArgumentParser
import Evaluation
import Foundation
import Models
import Runtime
import Tensors

struct BenchPrefillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-prefill",
        abstract: "Benchmark prefill: a random LLaMA-style decoder and a CLIP ViT-L/14-336 shaped tower (F32).",
        discussion: """
        Shapes: decoder width 2048, 16 heads, MLP 5632, 8 layers, 640 tokens; CLIP tower 24 layers, \
        width 1024, 577 tokens. Protocol: one warm-up, then --repeats runs, median and spread. A \
        2048×2048×2048 sgemm is timed in the same run for the sustained-rate fraction. With --pytorch, \
        tools/bench/pytorch_prefill.py times the same shapes in PyTorch (same thread count) right after, \
        and the ratio ours/PyTorch is printed (target ≤ 0.9), next to the sgemm floor: the time of the \
        pass's matrix products at the measured sgemm rate, below which no implementation on this BLAS can go.
        """
    )

    @Option(name: .long, help: "Timed repeats per model.")
    var repeats = 3
    @Option(name: .long, help: "Threads for BLAS and parallel work, also given to PyTorch (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(name: .long, help: "Also print where one pass of each model spends its time, by operation.")
    var profile = false
    @Flag(name: .long, help: "Also time PyTorch (needs python3 with torch and transformers).")
    var pytorch = false

    func validate() throws {
        guard repeats > 0, threads > 0 else { throw ValidationError("--repeats and --threads must be positive") }
    }

    func run() throws {
        BLAS.threads = threads
        Parallel.threadCount = threads
        let script = "tools/bench/pytorch_prefill.py"
        var scriptPath: String?
        if pytorch {
            guard let p = VLMPaths.resolve(script) else {
                printError("error: --pytorch needs \(script) (run from the repository root)")
                throw ExitCode(1)
            }
            scriptPath = p
        }
        print("threads: \(threads), repeats: \(repeats), BLAS core: \(BLAS.coreName ?? "?")\(ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"].map { " (OPENBLAS_CORETYPE=\($0))" } ?? "")")
        let sgemm = Self.sgemmRate(n: 2048, repeats: max(3, repeats))
        print(String(format: "sgemm 2048×2048×2048: %.1f GFLOP/s (median)", sgemm))

        printError("timing the decoder…")
        let decoder = try PrefillBenchmark.timeDecoder(repeats: repeats)
        printError("timing the vision tower…")
        let vision = try PrefillBenchmark.timeVision(repeats: repeats)
        let ours = [decoder, vision]
        for t in ours {
            print(String(format: "ours  %@ — %.0f%% of sgemm", t.description, 100 * t.gflops / max(sgemm, 1e-9)))
        }
        if profile {
            for (name, entries, total) in try PrefillBenchmark.profileStandard() {
                print("\nprofile of one \(name) pass: \(String(format: "%.1f", total)) ms")
                Self.printProfile(entries, totalMs: total, unit: "pass")
            }
        }
        guard let scriptPath else { return }
        printError("timing PyTorch (\(script))…")
        let torch = try Self.pytorchMedians(script: scriptPath, threads: threads, repeats: repeats)
        print("PyTorch: \(torch.header)")
        let pairs: [(String, PrefillBenchmark.Timing, Double?)] = [("decoder", decoder, torch.decoder), ("vision", vision, torch.vision)]
        // The floor: every matrix product of the pass (attention's included) at this run's sgemm
        // rate, with nothing else costing time. No implementation on the same BLAS rate can be
        // faster; when 0.9× PyTorch is below it, the target needs a faster GEMM than the machine's.
        print("\n| model | ours median ms | PyTorch median ms | ours/PyTorch | ours GFLOP/s | % of sgemm | sgemm floor ms | 0.9× PyTorch ms |")
        print("|---|---|---|---|---|---|---|---|")
        for (name, t, p) in pairs {
            let ratio = p.map { String(format: "%.2f", t.medianMs / $0) } ?? "n/a"
            let floor = t.flops / (max(sgemm, 1e-9) * 1e6)
            print(String(format: "| %@ | %.1f | %@ | %@ | %.1f | %.0f%% | %.1f | %@ |", name, t.medianMs, p.map { String(format: "%.1f", $0) } ?? "n/a",
                         ratio, t.gflops, 100 * t.gflops / max(sgemm, 1e-9), floor, p.map { String(format: "%.1f", 0.9 * $0) } ?? "n/a"))
        }
    }

    /// Median GFLOP/s of an n×n×n sgemm (two warm-ups).
    static func sgemmRate(n: Int, repeats: Int) -> Double {
        let a = PrefillBenchmark.random([n, n], scale: 1, seed: 11)
        let b = PrefillBenchmark.random([n, n], scale: 1, seed: 12)
        for _ in 0..<2 { _ = try? a.matmul(b) }
        let rates: [Double] = (0..<repeats).map { _ in
            let s = DispatchTime.now().uptimeNanoseconds
            _ = try? a.matmul(b)
            let sec = Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9
            return 2 * Double(n * n * n) / sec / 1e9
        }
        return Statistics.median(rates)
    }

    /// Runs the PyTorch script and reads its two median lines.
    static func pytorchMedians(script: String, threads: Int, repeats: Int) throws -> (header: String, decoder: Double?, vision: Double?) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", script, "--threads", String(threads), "--repeats", String(repeats)]
        // torch brings its own BLAS: OPENBLAS_CORETYPE (inherited) does not affect it; pin the OpenMP pool.
        var environment = ProcessInfo.processInfo.environment
        environment["OMP_NUM_THREADS"] = String(threads)
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            printError("error: \(script) failed (exit \(process.terminationStatus)); is torch installed?")
            throw ExitCode(1)
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n").map(String.init)
        func medianMs(_ prefix: String) -> Double? {
            guard let line = lines.first(where: { $0.hasPrefix(prefix) }), let r = line.range(of: "median ") else { return nil }
            return Double(line[r.upperBound...].prefix(while: { $0.isNumber || $0 == "." }))
        }
        for l in lines where l.hasPrefix("decoder") || l.hasPrefix("CLIP") { print("torch \(l)") }
        return (lines.first ?? "", medianMs("decoder"), medianMs("CLIP"))
    }

    /// An `OpProfile` table, largest first, with the time no operation claims as a last row.
    static func printProfile(_ entries: [OpProfile.Entry], totalMs: Double, unit: String) {
        print("| operation | ms | % of \(unit) | calls |")
        print("|---|---|---|---|")
        for e in entries.sorted(by: { $0.milliseconds > $1.milliseconds }) {
            print(String(format: "| %@ | %.2f | %.1f%% | %d |", e.label, e.milliseconds, 100 * e.milliseconds / max(totalMs, 1e-9), e.calls))
        }
        let unclaimed = totalMs - entries.reduce(0) { $0 + $1.milliseconds }
        print(String(format: "| (not in any operation) | %.2f | %.1f%% | |", unclaimed, 100 * unclaimed / max(totalMs, 1e-9)))
    }
}
