import Foundation
import Testing
import Models

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
        for t in try PrefillBenchmark.runStandard(repeats: 3) { print("BENCH", t) }
    }
}
