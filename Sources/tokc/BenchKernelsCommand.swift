import ArgumentParser
import Evaluation
import Foundation
import Tensors

struct BenchKernelsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-kernels",
        abstract: "Benchmark the tensor kernels: sgemm GFLOP/s and attention (fused vs probability rows).",
        discussion: """
        Protocol: warm-up runs, then repeats; prints the median and the min–max spread. With
        --numpy, the same sgemm shapes are timed by NumPy in the same run with the same thread
        count (tools/bench/numpy_sgemm.py), and the ratio is printed.
        """
    )

    @Option(name: .long, help: "Threads for BLAS and row/head parallel work (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    @Option(name: .long, help: "Timed repeats per measurement.")
    var repeats = 5

    @Option(name: .long, parsing: .upToNextOption, help: "Attention sequence lengths.")
    var attentionTokens: [Int] = [576, 2880]

    @Flag(name: .long, help: "Also time NumPy sgemm on the same shapes (needs python3 with numpy).")
    var numpy = false

    func validate() throws {
        guard threads > 0, repeats > 0 else { throw ValidationError("--threads and --repeats must be positive") }
        // A sequence length below 1 has no last row to record (and a negative one traps in the tensor's allocation).
        if let bad = attentionTokens.first(where: { $0 < 1 }) {
            throw ValidationError("--attention-tokens must be positive, got \(bad)")
        }
    }

    func run() throws {
        BLAS.threads = threads
        Parallel.threadCount = threads
        print("threads: \(threads), repeats: \(repeats)")
        print("\n| sgemm m×k×n | Swift GFLOP/s (median) | spread |\(numpy ? " NumPy GFLOP/s | Swift/NumPy |" : "")")
        print("|---|---|---|\(numpy ? "---|---|" : "")")
        let numpyRates = numpy ? try numpyRates() : [:]
        for s in KernelBenchmark.gemmShapes {
            let rates = KernelBenchmark.gemmRates(m: s.m, k: s.k, n: s.n, repeats: repeats)
            var line = "| \(s.m)×\(s.k)×\(s.n) | \(f1(Statistics.median(rates))) | \(f1(rates.first!))–\(f1(rates.last!)) |"
            if let np = numpyRates["\(s.m)x\(s.k)x\(s.n)"] {
                line += " \(f1(np)) | \(String(format: "%.2f", Statistics.median(rates) / np)) |"
            }
            print(line)
        }

        print("\n| attention (32 heads × 128, non-causal) | tokens | median ms | spread ms |")
        print("|---|---|---|---|")
        for n in attentionTokens {
            for (label, times) in try KernelBenchmark.attentionTimes(tokens: n, repeats: repeats) {
                print("| \(label) | \(n) | \(f1(Statistics.median(times))) | \(f1(times.first!))–\(f1(times.last!)) |")
            }
        }
        print("\npeak tensor memory: \(MemoryAccounting.peakBytes / 1_048_576) MiB, process peak RSS: \(MemoryAccounting.processPeakRSS / 1_048_576) MiB")
    }

    func numpyRates() throws -> [String: Double] {
        let script = "tools/bench/numpy_sgemm.py"
        guard FileManager.default.fileExists(atPath: script) else {
            throw ValidationError("--numpy needs \(script); run from the repository root")
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        let shapes = KernelBenchmark.gemmShapes.map { "\($0.m)x\($0.k)x\($0.n)" }
        process.arguments = ["python3", script, "--threads", String(threads), "--repeats", String(repeats)] + shapes
        var environment = ProcessInfo.processInfo.environment
        for key in ["OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"] { environment[key] = String(threads) }
        process.environment = environment
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let data = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else { throw ValidationError("numpy benchmark failed (is numpy installed?)") }
        var rates: [String: Double] = [:]
        for line in String(decoding: data, as: UTF8.self).split(separator: "\n") {
            let parts = line.split(separator: " ")
            if parts.count == 2, let r = Double(parts[1]) { rates[String(parts[0])] = r }
        }
        return rates
    }
}

func f1(_ x: Double) -> String { String(format: "%.1f", x) }
