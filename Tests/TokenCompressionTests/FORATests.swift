import Testing
import Tensors
@testable import TokenCompression
import TestSupport

/// Runs a tiny FORA sampling loop whose modules are deterministic functions of (call, layer, input).
func foraRun(_ p: FORA.Parameters, tokens: Int = 3, width: Int = 4, seed: UInt64 = 1) throws -> (outputs: [Tensor], computed: [Bool]) {
    var rng = TestRandom(seed)
    var cache = TokenFeatureCache()
    var outputs: [Tensor] = [], computed: [Bool] = []
    for (k, i) in FORA.stepIndices(p).enumerated() {
        var x = rng.tensor([tokens, width])
        var ran = false
        for l in 0..<p.numLayers {
            let g1 = rng.tensor([width]), g2 = rng.tensor([width])
            x = try FORA.block(x, layer: l, step: i, gateMSA: g1, gateMLP: g2, parameters: p, cache: &cache,
                               attention: { h in ran = true; return h.map { $0 * 0.5 + Float(k + l) } },
                               mlp: { h in h.map { $0 * $0 - 0.1 } })
        }
        outputs.append(x)
        computed.append(ran)
    }
    return (outputs, computed)
}

@Suite struct FORATests {
    @Test("first and last calls compute", arguments: [(250, 3), (50, 4), (10, 12), (7, 1)])
    func firstAndLastCompute(steps: Int, interval: Int) throws {
        let p = FORA.Parameters(numSteps: steps, interval: interval, numLayers: 2)
        let run = try foraRun(p)
        #expect(run.computed.first == true && run.computed.last == true)
        let sched = try FORA.schedule(p)
        #expect(sched.actions[0].allSatisfy { $0 == [.compute, .compute] })
        #expect(sched.actions.map { $0[0][0] == .compute } == run.computed)
    }

    @Test func intervalOneEqualsUncachedAndLargerIntervalsReuse() throws {
        let p1 = FORA.Parameters(numSteps: 12, interval: 1, numLayers: 3)
        #expect(try foraRun(p1).computed.allSatisfy { $0 })
        #expect(try FORA.schedule(p1).computedFraction == 1)
        let p3 = FORA.Parameters(numSteps: 12, interval: 3, numLayers: 3)
        #expect(try FORA.schedule(p3).computedFraction < 1)
        // i = 11 (first call, forced), then i ≡ 0 mod 3: 9, 6, 3, 0 — the first two computes are 2 apart.
        let expected = [true, false, true, false, false, true, false, false, true, false, false, true]
        #expect(try foraRun(p3).computed == expected)
    }

    @Test func reuseAppliesTheCurrentGateToThePreGateCache() throws {
        let p = FORA.Parameters(numSteps: 3, interval: 3, numLayers: 1)
        var cache = TokenFeatureCache()
        let x = try Tensor(rows: [[1, 2]])
        let a = try Tensor(rows: [[10, 20]]), m = try Tensor(rows: [[100, 200]])
        let one = try Tensor(shape: [2], values: [1, 1])
        _ = try FORA.block(x, layer: 0, step: 2, gateMSA: one, gateMLP: one, parameters: p, cache: &cache,
                           attention: { _ in a }, mlp: { _ in m })
        let g = try Tensor(shape: [2], values: [0.5, 2])
        let y = try FORA.block(x, layer: 0, step: 1, gateMSA: g, gateMLP: g, parameters: p, cache: &cache,
                               attention: { _ in Issue.record("attention ran on a reuse step"); return a },
                               mlp: { _ in Issue.record("mlp ran on a reuse step"); return m })
        let expected: [Float] = [56, 442]   // x + g·a + g·m with the new gate g = (0.5, 2)
        #expect(y.values == expected)
    }

    @Test func reuseStepWithoutAFilledCacheThrows() throws {
        let p = FORA.Parameters(numSteps: 10, interval: 4, numLayers: 1)
        var cache = TokenFeatureCache()
        let g = try Tensor(shape: [2], values: [1, 1])
        #expect(throws: CompressionError.self) {
            _ = try FORA.block(try Tensor(rows: [[1, 2]]), layer: 0, step: 7, gateMSA: g, gateMLP: g, parameters: p,
                               cache: &cache, attention: { $0 }, mlp: { $0 })
        }
    }

    @Test func deterministic() throws {
        let p = FORA.Parameters(numSteps: 20, interval: 3, numLayers: 2)
        let a = try foraRun(p, seed: 5), b = try foraRun(p, seed: 5)
        #expect(a.outputs.map(\.values) == b.outputs.map(\.values))
    }

    @Test func badParametersThrow() throws {
        #expect(throws: CompressionError.self) { _ = try FORA.Parameters(interval: 0).validated() }
        #expect(throws: CompressionError.self) { _ = try FORA.Parameters(numSteps: 0).validated() }
        var cache = TokenFeatureCache()
        let g = try Tensor(shape: [3], values: [1, 1, 1])
        #expect(throws: CompressionError.self) {
            _ = try FORA.block(try Tensor(rows: [[1, 2]]), layer: 0, step: 249, gateMSA: g, gateMLP: g,
                               parameters: FORA.Parameters(), cache: &cache, attention: { $0 }, mlp: { $0 })
        }
    }
}
