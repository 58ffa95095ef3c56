import Testing
import Evaluation
import Tensors
@testable import Models

/// The decode benchmark's bookkeeping on a tiny F16 checkpoint: the bytes per token are the linear
/// weights and LM head as stored, every step is timed, and the floor follows from the measured rate.
@Suite struct DecodeBenchmarkTests {
    @Test func countsTheStoredWeightBytesAndTimesEveryStep() throws {
        let lm = try DecoderLM.load(folder: modelsFixture("llama-f16"))
        let linear = lm.store.names.filter { $0.hasSuffix("_proj.weight") || $0 == "lm_head.weight" }
        let expected = try linear.reduce(0) { $0 + (try lm.store.info($1).elementCount) * 2 }
        #expect(try DecodeBenchmark.weightBytesPerToken(lm) == Double(expected))
        let r = try DecodeBenchmark.run(model: lm, promptTokens: 5, decodeTokens: 3, bandwidthBytes: 1 << 22)
        #expect(r.decodeMs.count == 3 && r.decodeMs.allSatisfy { $0 > 0 })
        #expect(r.bandwidth > 0 && r.prefillMs > 0 && r.prefillMinorFaults >= 0)
        #expect(abs(r.floorMs - Double(expected) / r.bandwidth * 1000) < 1e-9)
        #expect(throws: ModelError.self) { try DecodeBenchmark.run(model: lm, promptTokens: 300, decodeTokens: 1) }
    }

    @Test func streamReadSumsEveryValue() {
        let x = (0..<1000).map { Float($0 % 7) }
        for level in FastMath.availableLevels {
            #expect(StreamRead.sum(x, count: x.count, level: level) == x.reduce(0, +))
        }
    }
}
