import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct TeaCacheTests {
    @Test func firstCallIsComputedAndMustBeForced() throws {
        let p = try TeaCache.Parameters.flux()
        let forced = try TeaCache.Forcing.counter(calls: 10, steps: 10)
        let d = try TeaCache.decisions(distances: Array(repeating: 0.001, count: 10), forced: forced, parameters: p)
        #expect(d[0].compute && !d[0].evaluated && d[9].compute)
        #expect(throws: CompressionError.self) {
            try TeaCache.decisions(distances: [0, 0], forced: [false, true], parameters: p)
        }
        var state = try TeaCache.State(parameters: p)
        #expect(throws: CompressionError.self) {
            try state.step(indicator: Tensor(zeros: [2, 2]), input: Tensor(zeros: [2, 2]), forced: false) { $0 }
        }
        #expect(state.previousResidual == nil)
    }

    @Test func accumulatesUntilThreshold() throws {
        let p = try TeaCache.Parameters(relL1Threshold: 1, coefficients: [1, 0])  // P(x) = x
        let d = try TeaCache.decisions(distances: Array(repeating: 0.3, count: 7), forced: [true] + Array(repeating: false, count: 6), parameters: p)
        #expect(d.map(\.compute) == [true, false, false, false, true, false, false])
        #expect(abs(d[4].accumulatedCompared - 1.2) < 1e-6 && d[4].accumulatedAfter == 0)
        let zeroThreshold = try TeaCache.decisions(distances: Array(repeating: 0.3, count: 5), forced: [true, false, false, false, false],
                                         parameters: try TeaCache.Parameters(relL1Threshold: 0, coefficients: [1, 0]))
        #expect(zeroThreshold.allSatisfy { $0.compute })
    }

    @Test func skipReusesTheLastResidual() throws {
        var rng = TestRandom(4)
        var state = try TeaCache.State(parameters: try TeaCache.Parameters(relL1Threshold: 10, coefficients: [1, 0]))
        let m0 = rng.tensor([3, 4]), x0 = rng.tensor([3, 4]), y0 = rng.tensor([3, 4])
        let first = try state.step(indicator: m0, input: x0, forced: true) { _ in y0 }
        #expect(first.decision.compute && first.output.values == y0.values)
        let x1 = rng.tensor([3, 4])
        let second = try state.step(indicator: rng.tensor([3, 4]), input: x1, forced: false) { _ in Issue.record("must not run"); return x1 }
        #expect(!second.decision.compute)
        let expected = try x1 + (try y0 - x0)
        #expect(second.output.values == expected.values)
    }

    @Test func relativeL1AndPolynomial() throws {
        let a = try Tensor(shape: [2, 2], values: [1, -1, 2, -2])
        let b = try Tensor(shape: [2, 2], values: [1.5, -1, 2, -1])
        #expect(abs(try TeaCache.relativeL1(current: b, previous: a) - 0.25) < 1e-7)
        let c = TeaCache.openSoraCoefficients, x = 0.07
        let direct = c[0] * x * x * x * x + c[1] * x * x * x + c[2] * x * x + c[3] * x + c[4]
        #expect(abs(TeaCache.rescale(x, coefficients: c) - direct) < 1e-12)
        #expect(throws: CompressionError.self) { try TeaCache.relativeL1(current: a, previous: Tensor(zeros: [4])) }
    }

    @Test func bfloat16TimestepForcingCanMissTheLastCall() throws {
        #expect(TeaCache.bfloat16(46.6446) == 46.75)
        #expect(TeaCache.bfloat16(203.14548) == 203)
        #expect(TeaCache.bfloat16(868.7).truncatingRemainder(dividingBy: 4) == 0)
        let model = [1000, 996, 203.14548, 46.6446].map { TeaCache.bfloat16(Float($0)) }
        let all = model.map { Int($0) }
        #expect(try TeaCache.Forcing.timestepEquality(modelTimesteps: model, allTimesteps: all) == [true, false, false, false])
        #expect(try TeaCache.Forcing.counter(calls: 8, steps: 4) == [true, false, false, true, true, false, false, true])
    }

    @Test func deterministicForFixedSeed() throws {
        func once() throws -> [Float] {
            var rng = TestRandom(21)
            var state = try TeaCache.State(parameters: try .openSora(threshold: 0.2))
            var out: [Float] = []
            let forced = try TeaCache.Forcing.counter(calls: 12, steps: 12)
            for k in 0..<12 {
                let y = rng.tensor([2, 3])
                out += try state.step(indicator: rng.tensor([2, 3]), input: rng.tensor([2, 3]), forced: forced[k]) { _ in y }.output.values
            }
            return out
        }
        #expect(try once() == once())
    }

    @Test func badParametersThrow() {
        #expect(throws: CompressionError.self) { try TeaCache.Parameters(relL1Threshold: -0.1) }
        #expect(throws: CompressionError.self) { try TeaCache.Parameters(relL1Threshold: .nan) }
        #expect(throws: CompressionError.self) { try TeaCache.Parameters(coefficients: []) }
        #expect(throws: CompressionError.self) { try TeaCache.Forcing.counter(calls: 3, steps: 0) }
        #expect(throws: CompressionError.self) { try TeaCache.Forcing.timestepEquality(modelTimesteps: [1], allTimesteps: []) }
        #expect(throws: CompressionError.self) { try TeaCache.schedule(distances: [0], forced: [true], layers: 0, parameters: try .flux()) }
    }
}
