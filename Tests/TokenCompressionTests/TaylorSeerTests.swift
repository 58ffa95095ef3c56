import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct TaylorSeerTests {
    @Test func firstCallIsAlwaysComputed() throws {
        for convention in [TaylorSeer.StepConvention.dit, .flux] {
            for interval in 1...6 {
                for order in 0...4 {
                    let p = try TaylorSeer.Parameters(interval: interval, maxOrder: order, convention: convention)
                    let plans = try TaylorSeer.plan(steps: 20, parameters: p)
                    #expect(plans[0].action == .compute)
                    #expect(plans[0].resetsCache)
                    #expect(plans.allSatisfy { $0.action == .compute || $0.action == .forecast })
                }
            }
        }
    }

    @Test func fullStepsEveryIntervalAfterWarmUp() throws {
        let p = try TaylorSeer.Parameters.dit(interval: 4, maxOrder: 2)
        let full = try TaylorSeer.plan(steps: 50, parameters: p).filter { $0.action == .compute }.map(\.step)
        #expect(Array(full.prefix(4)) == [49, 48, 44, 40])
        #expect(zip(full.dropFirst(), full.dropFirst(2)).allSatisfy { $0 - $1 == 4 })
        let f = try TaylorSeer.plan(steps: 20, parameters: try .flux(interval: 6, maxOrder: 1)).filter { $0.action == .compute }.map(\.step)
        #expect(f == [0, 1, 2, 8, 14])
    }

    @Test func intervalOneComputesEverything() throws {
        let s = try TaylorSeer.schedule(steps: 12, layers: 3, parameters: try .dit(interval: 1, maxOrder: 2))
        #expect(s.computedFraction == 1)
        #expect(s.actions.count == 12 && s.actions[0].count == 3 && s.actions[0][0].count == 2)
    }

    @Test func forecastFromEmptyCacheThrows() throws {
        let cache = TaylorSeer.FactorCache(maxOrder: 2)
        let plan = TaylorSeer.StepPlan(step: 3, action: .forecast, activatedStep: 4, forecastDistance: -1,
                                       differenceDistance: 0, updatesDerivatives: false, resetsCache: false)
        #expect(throws: CompressionError.self) { try cache.forecast(plan: plan) }
        #expect(throws: CompressionError.self) { try TaylorSeer.taylorFormula(factors: [], distance: 2) }
    }

    @Test func linearTrajectoryIsForecastExactly() throws {
        var rng = TestRandom(7)
        let a = rng.tensor([4, 3]), b = rng.tensor([4, 3])
        for convention in [TaylorSeer.StepConvention.dit, .flux] {
            let p = try TaylorSeer.Parameters(interval: 3, maxOrder: 2, convention: convention)
            let indices = p.stepIndices(steps: 16)
            let truth = try indices.map { t in try a + b.scaled(by: Float(t)) }
            let run = try TaylorSeer.runModule(steps: 16, parameters: p) { truth[$0] }
            // After the derivatives exist (third call on), every forecast lies on the line.
            for k in 3..<16 {
                let err = try (run.outputs[k] - truth[k]).values.map(abs).max()!
                #expect(err < 1e-4, "call \(k): error \(err)")
            }
        }
    }

    @Test func fluxSkipsDerivativesOnStepsZeroAndOne() throws {
        let run = try TaylorSeer.runModule(steps: 10, parameters: try .flux(interval: 6, maxOrder: 3)) { _ in Tensor(zeros: [2]) }
        #expect(Array(run.factorCounts.prefix(3)) == [1, 1, 2])
    }

    @Test func factorCountNeverExceedsMaxOrderPlusOne() throws {
        var rng = TestRandom(3)
        for order in 0...3 {
            let run = try TaylorSeer.runModule(steps: 30, parameters: try .dit(interval: 2, maxOrder: order)) { _ in rng.tensor([2, 2]) }
            #expect(run.factorCounts.allSatisfy { $0 >= 1 && $0 <= order + 1 })
            #expect(run.factorCounts.last == order + 1)
        }
    }

    @Test func deterministicForFixedSeed() throws {
        func once() throws -> [Float] {
            var rng = TestRandom(11)
            let features = (0..<20).map { _ in rng.tensor([3, 4]) }
            return try TaylorSeer.runModule(steps: 20, parameters: try .dit(interval: 3, maxOrder: 3)) { features[$0] }
                .outputs.flatMap(\.values)
        }
        #expect(try once() == once())
    }

    @Test func badParametersThrow() {
        #expect(throws: CompressionError.self) { try TaylorSeer.Parameters(interval: 0) }
        #expect(throws: CompressionError.self) { try TaylorSeer.Parameters(maxOrder: -1) }
        #expect(throws: CompressionError.self) { try TaylorSeer.Parameters(firstEnhance: 0) }
        #expect(throws: CompressionError.self) { try TaylorSeer.plan(steps: 0, parameters: try .dit()) }
        #expect(throws: CompressionError.self) {
            try TaylorSeer.derivativeApproximation(feature: Tensor(zeros: [2]), oldFactors: [Tensor(zeros: [3])],
                                                   distance: 1, maxOrder: 2, updateDerivatives: true)
        }
    }
}
