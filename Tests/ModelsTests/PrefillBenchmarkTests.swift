import Foundation
import Testing
import Models
import ModelIO
import Tensors

@Suite struct PrefillBenchmarkTests {
    @Test func smallShapesRun() throws {
        let d = try PrefillBenchmark.timeDecoder(width: 64, heads: 4, mlp: 128, layers: 2, tokens: 16, repeats: 2, warmup: 0)
        #expect(d.runsMs.count == 2 && d.medianMs > 0)
        let v = try PrefillBenchmark.timeVision(width: 32, heads: 4, mlp: 64, layers: 2, imageSize: 28, patchSize: 14, repeats: 1, warmup: 0)
        #expect(v.tokens == 5)
    }

    /// The standard shapes; only with TOKC_MODELS_BENCH=1 (use a release build).
    @Test(.enabled(if: ProcessInfo.processInfo.environment["TOKC_MODELS_BENCH"] == "1"))
    func standardShapes() throws {
        if let split = ProcessInfo.processInfo.environment["TOKC_SPLIT"].flatMap(Int.init) { LinearWeight.splitThreads = split }
        for t in try PrefillBenchmark.runStandard(repeats: 3) { print("BENCH", t) }
    }
}

/// Component timings behind the standard shapes; only with TOKC_MODELS_BENCH=2.
@Suite struct PrefillBenchmarkComponentTests {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["TOKC_MODELS_BENCH"] == "2"))
    func components() throws {
        func ms(_ body: () throws -> Void) rethrows -> Double {
            try body()
            let s = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6
        }
        let x = PrefillBenchmark.random([640, 2048], scale: 1, seed: 3)
        let w = PrefillBenchmark.random([5632, 2048], scale: 0.02, seed: 4)
        let t1 = try ms { _ = try x.linear(weight: w) }
        print("BENCH linear 640x2048 -> 5632: \(t1) ms, \(2 * 640 * 2048 * 5632 / (t1 * 1e6)) GFLOP/s")
        let q = PrefillBenchmark.random([640, 2048], scale: 1, seed: 5)
        let att = try Attention(heads: 16, headDim: 128, causal: true)
        let t2 = try ms { _ = try att(q: q, k: q, v: q) }
        print("BENCH attention 640 tokens 16x128: \(t2) ms")
        let (model, e) = try PrefillBenchmark.randomLlama(layers: 1)
        let t3 = try ms { _ = try model.prefill(embeddings: e) }
        print("BENCH one decoder layer: \(t3) ms")
        let v = PrefillBenchmark.random([577, 1024], scale: 1, seed: 6)
        let w1 = PrefillBenchmark.random([4096, 1024], scale: 0.02, seed: 7)
        let t4 = try ms { _ = try v.linear(weight: w1) }
        print("BENCH linear 577x1024 -> 4096: \(t4) ms, \(2 * 577 * 1024 * 4096 / (t4 * 1e6)) GFLOP/s")
        let w2 = PrefillBenchmark.random([1024, 1024], scale: 0.02, seed: 8)
        let t5 = try ms { _ = try v.linear(weight: w2) }
        print("BENCH linear 577x1024 -> 1024: \(t5) ms, \(2 * 577 * 1024 * 1024 / (t5 * 1e6)) GFLOP/s")
        let att2 = try Attention(heads: 16, headDim: 64, causal: false)
        let t6 = try ms { _ = try att2(q: v, k: v, v: v) }
        print("BENCH attention 577 tokens 16x64: \(t6) ms")
        for b in [128, 256, 640] {
            var a = try Attention(heads: 16, headDim: 64, causal: false)
            a.blockRows = b
            var c = try Attention(heads: 16, headDim: 128, causal: true)
            c.blockRows = b
            let ta = try ms { _ = try a(q: v, k: v, v: v) }
            let tc = try ms { _ = try c(q: q, k: q, v: q) }
            print("BENCH blockRows \(b): vision attention \(ta) ms, causal 640x16x128 \(tc) ms")
        }
        let ones = Tensor(shape: [1024], repeating: 1)
        let t7 = try ms { _ = try v.layerNorm(weight: ones, bias: ones, eps: 1e-5) }
        print("BENCH layerNorm 577x1024: \(t7) ms")
        let big = PrefillBenchmark.random([577, 4096], scale: 1, seed: 9)
        let t8 = ms { _ = big.quickGelu() }
        print("BENCH quickGelu 577x4096 (Tensors, serial): \(t8) ms")
        let (tower, pixels) = try PrefillBenchmark.randomCLIP(layers: 1)
        let t9 = try ms { _ = try tower.embed(pixels) }
        print("BENCH CLIP embed: \(t9) ms")
        let t10 = try ms { _ = try tower.forward(pixels) }
        print("BENCH CLIP 1 layer + embed: \(t10) ms")
    }
}

/// Streams an F16 checkpoint (2048 wide, 4 layers, ~410 MB stored, ~820 MB as Float32) and
/// reports the peak of tensor memory during prefill; only with TOKC_MODELS_BENCH=3.
@Suite struct StreamingMemoryBenchmark {
    @Test(.enabled(if: ProcessInfo.processInfo.environment["TOKC_MODELS_BENCH"] == "3"))
    func streamedF16PeakMemory() throws {
        let (model, x) = try PrefillBenchmark.randomLlama(layers: 4, tokens: 256)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("models-stream-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var writer = SafetensorsWriter()
        var f32Bytes = 0
        for name in model.store.names {
            let t = try model.store.tensor(name)
            f32Bytes += t.byteCount
            try writer.add(name, t, as: .F16)
        }
        try writer.write(to: folder.appendingPathComponent("model.safetensors").path)
        let streamed = try DecoderLM(config: model.config, store: try WeightStore(folder: folder.path))
        _ = try streamed.prefill(embeddings: x)
        MemoryAccounting.resetPeak()
        let base = MemoryAccounting.currentBytes
        let s = DispatchTime.now().uptimeNanoseconds
        _ = try streamed.prefill(embeddings: x)
        let ms = Double(DispatchTime.now().uptimeNanoseconds - s) / 1e6
        let r = try model.prefill(embeddings: x)
        print("BENCH streamed F16: weights \(f32Bytes >> 20) MB as F32, prefill peak tensor memory +\((MemoryAccounting.peakBytes - base) >> 20) MB, \(ms) ms; KV cache \(r.cache.byteCount >> 20) MB")
    }
}
