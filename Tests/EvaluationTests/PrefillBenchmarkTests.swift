import Foundation
import Testing
import Models
import Evaluation
import ModelIO
import Tensors

@Suite struct PrefillBenchmarkTests {
    @Test func smallShapesRun() throws {
        let d = try PrefillBenchmark.timeDecoder(width: 64, heads: 4, mlp: 128, layers: 2, tokens: 16, repeats: 2, warmup: 0)
        #expect(d.runsMs.count == 2 && d.medianMs > 0)
        let v = try PrefillBenchmark.timeVision(width: 32, heads: 4, mlp: 64, layers: 2, imageSize: 28, patchSize: 14, repeats: 1, warmup: 0)
        #expect(v.tokens == 5)
    }
}
