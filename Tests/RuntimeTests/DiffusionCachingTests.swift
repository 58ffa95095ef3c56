import Foundation
import Testing
import ModelIO
import Models
import Tensors
import TokenCompression
@testable import Runtime

/// Feature caching inside the DiT sampler (FORA's rule: pre-gate module outputs reused with the
/// current gates), driven by the same schedules `tokc schedule` prints.
@Suite struct DiffusionCachingTests {
    static func run(_ caching: DiTCaching?, guidance: Double = 4) throws -> DiffusionGenerationResult {
        let ref = try DiffusionPipelineTests.reference.get()
        return try DiffusionPipelineTests.pipeline.get().generate(
            DiTGenerationOptions(classLabel: 3, steps: 10, guidance: guidance, noise: try ref.tensor("noise"), caching: caching))
    }

    /// An all-compute schedule gives the uncached latents and FLOPs bit for bit, with and without guidance.
    static func expectAllComputeEqualsUncached(_ caching: DiTCaching) throws {
        #expect(caching.schedule.actions.joined().joined().allSatisfy { $0 == .compute })
        for guidance in [1.0, 4.0] {
            let plain = try run(nil, guidance: guidance)
            let cached = try run(caching, guidance: guidance)
            #expect(cached.latents.values == plain.latents.values)
            #expect(cached.transformerFLOPsTotal == plain.transformerFLOPsTotal)
        }
    }

    static func fora(interval: Int) throws -> DiTCaching {
        DiTCaching(method: "fora", schedule: try FORA.schedule(FORA.Parameters(numSteps: 10, interval: interval, numLayers: 2)))
    }

    @Test func allComputeScheduleEqualsUncachedBitForBit() throws {
        for guidance in [1.0, 4.0] {
            let plain = try Self.run(nil, guidance: guidance)
            let cached = try Self.run(try Self.fora(interval: 1), guidance: guidance)
            #expect(cached.latents.values == plain.latents.values)
            #expect(cached.image == plain.image)
            #expect(cached.transformerFLOPsTotal == plain.transformerFLOPsTotal)
        }
    }

    @Test func foraDecisionsMatchTheScheduleAndWorkIsSkipped() throws {
        let caching = try Self.fora(interval: 3)
        let plain = try Self.run(nil)
        let cached = try Self.run(caching)
        #expect(cached.cacheDecisions == caching.schedule.actions)
        // Calls 0, 3, 6, 9 compute (i = 9, 6, 3, 0 on FORA's downward index); the others reuse.
        #expect(cached.cacheDecisions?.map { $0[0][0] } == [.compute, .reuse, .reuse, .compute, .reuse, .reuse, .compute, .reuse, .reuse, .compute])
        #expect(cached.transformerFLOPsTotal < 0.5 * plain.transformerFLOPsTotal)
        #expect(cached.latents.values != plain.latents.values)
        #expect(cached.latents.values.allSatisfy { $0.isFinite })
    }

    @Test func reusedModulesDoNotRun() throws {
        let caching = try Self.fora(interval: 3)
        let model = try DiffusionPipelineTests.pipeline.get().transformer
        let cache = try DiTFeatureCache(method: "fora", schedule: caching.schedule, layers: 2)
        let x = Tensor(shape: [4, 8, 8], repeating: 0.5)
        for call in 0..<10 { _ = try model([x], timesteps: [Float(900 - call * 100)], classes: [3], cache: cache) }
        let computes = caching.schedule.actions.joined().joined().filter { $0 == .compute }.count
        #expect(cache.computedModules == computes && cache.reusedModules == 40 - computes)
        #expect(throws: ModelError.self) { try model([x], timesteps: [0], classes: [3], cache: cache) }  // an 11th call
    }

    @Test func unsupportedSchedulesAreRefusedBeforeSampling() throws {
        let partial = CacheSchedule(moduleNames: ["attn", "mlp"], actions: Array(repeating: Array(repeating: [.compute, .partial], count: 2), count: 10))
        #expect(throws: ModelError.self) { try DiTFeatureCache(method: "toca", schedule: partial, layers: 2) }
        let wrongLayers = try FORA.schedule(FORA.Parameters(numSteps: 10, interval: 3, numLayers: 28))
        #expect(throws: ModelError.self) { _ = try Self.run(DiTCaching(method: "fora", schedule: wrongLayers)) }
        let wrongSteps = try FORA.schedule(FORA.Parameters(numSteps: 12, interval: 3, numLayers: 2))
        #expect(throws: ModelError.self) { _ = try Self.run(DiTCaching(method: "fora", schedule: wrongSteps)) }
    }

    static func taylorSeer(interval: Int, order: Int) throws -> DiTCaching {
        let p = try TaylorSeer.Parameters.dit(interval: interval, maxOrder: order)
        return DiTCaching(method: "taylorseer", schedule: try TaylorSeer.schedule(steps: 10, layers: 2, parameters: p), taylorSeer: p)
    }

    @Test func taylorSeerForecastsFollowItsPlan() throws {
        let caching = try Self.taylorSeer(interval: 3, order: 2)
        let plain = try Self.run(nil)
        let forecast = try Self.run(caching)
        #expect(forecast.cacheDecisions == caching.schedule.actions)
        #expect(caching.schedule.actions.joined().joined().contains(.forecast))
        #expect(forecast.transformerFLOPsTotal < 0.5 * plain.transformerFLOPsTotal)
        // Order 0 keeps only D₀ (the last full output): the forecast is plain reuse, bit for bit.
        let order0 = try Self.run(try Self.taylorSeer(interval: 3, order: 0))
        let reuse = CacheSchedule(moduleNames: ["attn", "mlp"], actions: caching.schedule.actions.map { step in
            step.map { layer in layer.map { $0 == .forecast ? .reuse : $0 } }
        })
        let reused = try Self.run(DiTCaching(method: "reuse", schedule: reuse))
        #expect(order0.latents.values == reused.latents.values)
        // With derivatives (order 2) the forecast is no longer plain reuse.
        #expect(forecast.latents.values != reused.latents.values)
        #expect(forecast.latents.values.allSatisfy { $0.isFinite })
        // A forecast schedule without TaylorSeer's plans is refused.
        #expect(throws: ModelError.self) { _ = try Self.run(DiTCaching(method: "taylorseer", schedule: caching.schedule)) }
    }

    static func toca(ratio: Double) throws -> (caching: DiTCaching, plan: ToCa.Schedule) {
        var p = ToCa.Parameters()
        p.numSteps = 10
        p.numLayers = 2
        p.numTokens = 16
        p.freshRatio = ratio
        let plan = try ToCa.schedule(p)
        return (DiTCaching(method: "toca", schedule: plan.cacheSchedule, toca: p), plan)
    }

    @Test func tocaPartialStepsRecomputeTheScheduledFreshTokens() throws {
        let (caching, plan) = try Self.toca(ratio: 0.07)
        let cache = try DiTFeatureCache(method: "toca", schedule: caching.schedule, layers: 2, toca: caching.toca)
        let model = try DiffusionPipelineTests.pipeline.get().transformer
        var x = try DiffusionSampling.loadTensor(path: DiffusionPipelineTests.folder + "/noise.safetensors", name: "latents").reshaped([4, 8, 8])
        for call in 0..<10 {
            let t = Float(900 - 100 * call)
            let out = try model([x, x], timesteps: [t, t], classes: [3, 1000], cache: cache)
            x = try DiffusionSampling.noiseChannels(out[0], channels: 4, learnedSigma: true)
        }
        #expect(cache.executed == caching.schedule.actions)
        #expect(caching.schedule.actions.joined().joined().contains(.partial))
        // Every partial MLP computed exactly the schedule's k = int(r·N) rows of each batch row.
        for call in 0..<10 {
            for layer in 0..<2 where plan.kinds[call][layer] == .partial {
                #expect(cache.rowFractions[call][layer] == [0, Double(plan.freshCounts[call][layer][0]) / 16])
            }
        }
    }

    @Test func tocaWithEveryTokenFreshEqualsRecomputingTheMLP() throws {
        // r0 = 1 (× the layer, step and module factors ≥ 2.6 here, clamped to 1): every partial step recomputes all MLP rows (scattered back in place) and reuses attention.
        let (caching, _) = try Self.toca(ratio: 1)
        let mlpComputed = CacheSchedule(moduleNames: ["attn", "mlp"], actions: caching.schedule.actions.map { step in
            step.map { layer in layer.map { $0 == .partial ? .compute : $0 } }
        })
        let partial = try Self.run(caching)
        let full = try Self.run(DiTCaching(method: "attn-reuse", schedule: mlpComputed))
        #expect(partial.cacheDecisions == caching.schedule.actions)
        let scale = full.latents.values.map(abs).max()!
        let err = zip(partial.latents.values, full.latents.values).map { abs($0 - $1) }.max()! / scale
        #expect(err < 1e-5, "relative difference \(err)")
        // Fewer fresh tokens: less work than the uncached run, but more than reuse alone.
        let fewer = try Self.run(try Self.toca(ratio: 0.07).caching)
        let plain = try Self.run(nil)
        #expect(fewer.transformerFLOPsTotal < plain.transformerFLOPsTotal)
        #expect(fewer.transformerFLOPsTotal < partial.transformerFLOPsTotal)
    }
}
