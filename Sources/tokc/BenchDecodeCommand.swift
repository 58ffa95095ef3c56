import ArgumentParser
import Evaluation
import Foundation
import Models
import Runtime
import Tensors

struct BenchDecodeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench-decode",
        abstract: "Benchmark decoding and prefill of a decoder checkpoint against the machine's memory bandwidth and sgemm rate.",
        discussion: """
        Loads --model (a LlamaForCausalLM / Qwen2ForCausalLM folder, e.g. one written by \
        tools/bench/make_decoder_checkpoint.py), pages the weights in with one untimed step, prefills \
        --prompt tokens and decodes --tokens tokens. Prints decode ms/token next to the bandwidth floor \
        (weight bytes read per token ÷ the read bandwidth a streaming kernel measures in the same run; \
        target ≤ 1.2×), prefill tokens/s and GFLOP/s next to a 2048³ sgemm, and the minor page faults \
        of each phase. With --pytorch, tools/bench/pytorch_decode.py runs the same protocol in \
        transformers (same threads) for each --pytorch-dtype.
        """
    )

    @Option(name: .long, help: "Decoder checkpoint folder.")
    var model: String
    @Option(name: .long, help: "Prompt tokens to prefill.")
    var prompt = 128
    @Option(name: .long, help: "Tokens to decode (timed one by one).")
    var tokens = 8
    @Option(name: .long, help: "Threads for BLAS and parallel work, also given to PyTorch (default: all cores).")
    var threads: Int = ProcessInfo.processInfo.activeProcessorCount
    @Flag(name: .long, help: "Also print where a decode step spends its time, by operation (ms per token, over --tokens further steps).")
    var profile = false
    @Flag(name: .long, help: "Also time PyTorch (needs python3 with torch and transformers).")
    var pytorch = false
    @Option(name: .long, parsing: .upToNextOption, help: "PyTorch dtypes to time (bfloat16, float32, float16).")
    var pytorchDtype: [String] = ["bfloat16"]

    func validate() throws {
        guard prompt > 0, tokens > 0, threads > 0 else { throw ValidationError("--prompt, --tokens and --threads must be positive") }
    }

    func run() throws {
        try applyThreads(threads)
        let lm = try DecoderLM.load(folder: model)
        let c = lm.config
        print("model: \(model) — \(c.layers) layers, width \(c.hiddenSize), MLP \(c.intermediateSize), heads \(c.heads)/\(c.kvHeads), vocab \(c.vocabSize)")
        print("threads: \(threads), half kernels: \(HalfMatmul.level.rawValue), BLAS core: \(BLAS.coreName ?? "?")")
        printError("timing…")
        let r = try DecodeBenchmark.run(model: lm, promptTokens: prompt, decodeTokens: tokens)
        let sgemm = BenchPrefillCommand.sgemmRate(n: 2048, repeats: 3)
        print(String(format: "read bandwidth: %.1f GB/s; weights read per token: %.2f GB; floor %.1f ms/token",
                     r.bandwidth / 1e9, r.weightBytesPerToken / 1e9, r.floorMs))
        print(String(format: "decode: median %.1f ms/token (min %.1f, max %.1f over %d) = %.2f× the floor; %d minor faults",
                     r.decodeMedianMs, r.decodeMs.min() ?? 0, r.decodeMs.max() ?? 0, r.decodeMs.count,
                     r.decodeMedianMs / max(r.floorMs, 1e-9), r.decodeMinorFaults))
        if let linear = r.linearOnlyMs {
            print(String(format: "kernels alone (one-row products over the same matrices, best of 3 passes): %.1f ms = %.2f× the floor, %.1f GB/s",
                         linear, linear / max(r.floorMs, 1e-9), r.weightBytesPerToken / (linear / 1000) / 1e9))
        }
        print(String(format: "prefill: %d tokens in %.0f ms = %.1f tokens/s, %.1f GFLOP/s = %.0f%% of sgemm 2048³ (%.1f GFLOP/s); %d minor faults",
                     r.promptTokens, r.prefillMs, r.prefillTokensPerSecond, r.prefillGflops, 100 * r.prefillGflops / max(sgemm, 1e-9),
                     sgemm, r.prefillMinorFaults))
        if profile {
            let (entries, stepMs) = try DecodeBenchmark.profileDecode(model: lm, promptTokens: prompt, steps: tokens)
            print(String(format: "\nprofile of a decode step: %.1f ms/token (%d steps after the %d-token prefill)", stepMs, tokens, prompt))
            BenchPrefillCommand.printProfile(entries, totalMs: stepMs, unit: "step")
        }
        guard pytorch else { return }
        let script = "tools/bench/pytorch_decode.py"
        guard let path = VLMPaths.resolve(script) else {
            printError("error: --pytorch needs \(script) (run from the repository root)")
            throw ExitCode(1)
        }
        for dtype in pytorchDtype {
            printError("timing PyTorch \(dtype)…")
            let process = Process()
            process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
            process.arguments = ["python3", path, "--model", model, "--dtype", dtype, "--threads", String(threads),
                                 "--prompt", String(prompt), "--tokens", String(tokens)]
            var environment = ProcessInfo.processInfo.environment
            environment["OMP_NUM_THREADS"] = String(threads)
            process.environment = environment
            try process.run()
            process.waitUntilExit()
            guard process.terminationStatus == 0 else {
                printError("error: \(script) failed for \(dtype) (exit \(process.terminationStatus)); is torch installed, does the model fit in memory?")
                throw ExitCode(1)
            }
        }
    }
}
