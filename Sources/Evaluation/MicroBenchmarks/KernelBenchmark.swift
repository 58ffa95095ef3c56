import Foundation
import Tensors

/// The tensor kernels' own speed (`tokc bench-kernels`): sgemm GFLOP/s on the shapes the models
/// multiply, and attention with and without recorded probabilities. Protocol: two warm-up runs,
/// then `repeats` timed runs; rates and times come back sorted (median and spread are the caller's).
public enum KernelBenchmark {
    public static let gemmShapes: [(m: Int, k: Int, n: Int)] = [
        (512, 512, 512), (1024, 1024, 1024), (2048, 2048, 2048), (640, 2048, 5632), (577, 1024, 4096),
    ]

    /// Seconds of each timed run of `body`.
    public static func measure(repeats: Int, _ body: () -> Void) -> [Double] {
        for _ in 0..<2 { body() }
        return (0..<repeats).map { _ in
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        }
    }

    /// GFLOP/s of each timed `[m, k] × [k, n]` product, ascending.
    public static func gemmRates(m: Int, k: Int, n: Int, repeats: Int) -> [Double] {
        let a = Tensor(shape: [m, k], repeating: 0.5)
        let b = Tensor(shape: [k, n], repeating: 0.25)
        let flops = 2.0 * Double(m * k * n)
        return measure(repeats: repeats) { _ = try? a.matmul(b) }.map { flops / $0 / 1e9 }.sorted()
    }

    /// Milliseconds of each timed attention over `tokens` rows (32 heads × 128, non-causal), per
    /// recording mode: fused, the last row's probabilities, every row's probabilities.
    public static func attentionTimes(tokens n: Int, repeats: Int) throws -> [(label: String, ms: [Double])] {
        var generator = SplitMix64(seed: 1)
        func random() -> Tensor {
            var t = Tensor(zeros: [n, 4096])
            t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = generator.uniform() - 0.5 } }
            return t
        }
        let q = random(), k = random(), v = random()
        let attention = try Attention(heads: 32, headDim: 128, causal: false)
        return [("fused", AttentionRecord.none), ("probabilities, last row", .probabilities(rows: [n - 1])),
                ("probabilities, all rows", .probabilities(rows: nil))].map { label, record in
            (label, measure(repeats: repeats) { _ = try? attention(q: q, k: k, v: v, record: record) }.map { $0 * 1000 }.sorted())
        }
    }
}
