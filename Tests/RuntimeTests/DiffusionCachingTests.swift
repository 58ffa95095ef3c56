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
}
