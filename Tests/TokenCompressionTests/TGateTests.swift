import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct TGateTests {
    @Test func firstStepComputesEverything() throws {
        var rng = TestRandom(1)
        for _ in 0..<50 {
            let p = try TGate.Parameters(gateStep: rng.int(1...20), semanticsInterval: rng.int(1...6),
                                         fidelityInterval: rng.int(1...4), warmUp: rng.int(0...4))
            let s = try TGate.schedule(steps: 25, layers: 2, parameters: p)
            #expect(s.actions[0].allSatisfy { $0 == [.compute, .compute] })
        }
    }

    @Test func reuseFlagOnEmptyCacheComputes() throws {
        var cache = TGate.AttentionCache()
        var ran = false
        let (out, computed) = try cache.call(cache: false, reuse: true, keepShape: true) { ran = true; return Tensor(zeros: [1, 2]) }
        #expect(computed && ran && out.shape == [1, 2])
        #expect(cache.stored == nil)
    }

    @Test func crossAttentionAfterGateIsTheCFGMean() throws {
        var rng = TestRandom(5)
        let p = try TGate.Parameters(gateStep: 4, semanticsInterval: 2, fidelityInterval: 1, warmUp: 1)
        var cache = TGate.AttentionCache()
        var gateOutput: Tensor?
        for step in 0..<8 {
            let f = TGate.flags(step: step, parameters: p)
            let batch = TGate.batchSize(step: step, parameters: p)
            #expect(batch == (step < 4 ? 2 : 1))
            let fresh = rng.tensor([batch, 3, 2])
            let (out, computed) = try cache.call(cache: f.crossCache, reuse: f.crossReuse, keepShape: f.keepShape) { fresh }
            if step == 3 { gateOutput = fresh }
            #expect(computed == (step <= 3))
            if step > 3 {
                let g = gateOutput!.values
                let mean = (0..<6).map { (g[$0] + g[6 + $0]) / 2 }
                #expect(out.values == mean && out.shape == [1, 3, 2])
            }
        }
    }

    @Test func lcmKeepsShapeAtTheGate() throws {
        let p = try TGate.Parameters(gateStep: 1, semanticsInterval: 1, fidelityInterval: 1, warmUp: 0, lcm: true, classifierFreeGuidance: false)
        #expect(TGate.flags(step: 0, parameters: p).keepShape)
        #expect(TGate.flags(step: 14, parameters: try TGate.Parameters()).keepShape == false)
    }

    @Test func deterministicSchedule() throws {
        let p = try TGate.Parameters()
        #expect(try TGate.schedule(steps: 25, layers: 3, parameters: p) == TGate.schedule(steps: 25, layers: 3, parameters: p))
        let s = try TGate.schedule(steps: 25, layers: 1, parameters: p)
        #expect(s.computedFraction < 1)
        #expect(s.actions[20][0] == [.compute, .reuse])
    }

    @Test func badParametersThrow() throws {
        #expect(throws: CompressionError.self) { try TGate.Parameters(gateStep: 0) }
        #expect(throws: CompressionError.self) { try TGate.Parameters(semanticsInterval: 0) }
        #expect(throws: CompressionError.self) { try TGate.Parameters(fidelityInterval: 0) }
        #expect(throws: CompressionError.self) { try TGate.Parameters(warmUp: -1) }
        #expect(throws: CompressionError.self) { try TGate.Parameters(lcm: false, classifierFreeGuidance: false) }
        #expect(throws: CompressionError.self) { try TGate.halfMean(Tensor(zeros: [1, 4])) }
        #expect(throws: CompressionError.self) { try TGate.schedule(steps: 0, layers: 1, parameters: try TGate.Parameters()) }
    }
}
