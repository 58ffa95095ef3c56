import Foundation
import Testing
import Models
import Tensors
import TokenCompression
@testable import Runtime

/// ToCa's partial steps inside the PixArt-α sampler: s2 (cross-attention entropy, CFG halves
/// averaged) picks the fresh tokens, cross-attention and MLP recompute only those rows.
@Suite struct DiffusionPixArtToCaTests {
    static func parameters(threshold: Int = 3, ratio: Double = 0.3) -> ToCa.Parameters {
        ToCa.Parameters.pixart.onTinyPixArt(threshold: threshold, ratio: ratio)
    }

    static func caching(_ p: ToCa.Parameters) throws -> DiTCaching {
        DiTCaching(method: "toca", schedule: try ToCa.schedule(p).cacheSchedule, toca: p)
    }

    @Test func everyStepFullEqualsUncachedBitForBit() throws {
        let p = Self.parameters(threshold: 1)
        #expect(try ToCa.schedule(p).kinds.joined().allSatisfy { $0 == .full })
        let plain = try DiffusionPixArtCachingTests.run(nil), cached = try DiffusionPixArtCachingTests.run(try Self.caching(p))
        #expect(cached.latents.values == plain.latents.values && cached.image == plain.image)
    }

    @Test func partialStepsRecomputeThePlannedFreshRows() throws {
        let p = Self.parameters()
        let plan = try ToCa.schedule(p)
        #expect(plan.cacheSchedule.actions.map { $0.map { $0[1] } }.joined().contains(.partial))
        #expect(plan.cacheSchedule.actions.map { $0.map { $0[2] } }.joined().contains(.partial))
        // Direct calls, to read the row shares each module computed.
        let cache = try DiTFeatureCache(method: "toca", schedule: plan.cacheSchedule, layers: 2,
                                        modules: DiTFeatureCache.pixArtModules, toca: p)
        let model = try DiffusionPixArtPipelineTests.pipeline.get().transformer
        let captions = try DiffusionPixArtPipelineTests.captions.get()
        let negative = try #require(captions.negative)
        var x = try DiffusionPixArtPipelineTests.noise.get().reshaped([4, 8, 8])
        for call in 0..<10 {
            let t = Float(900 - 100 * call)
            let out = try model([x, x], timesteps: [t, t], captions: [negative.embeddings, captions.positive.embeddings],
                                masks: [negative.mask, captions.positive.mask], cache: cache)
            x = try DiffusionSampling.noiseChannels(out[1], channels: 4, learnedSigma: true)
        }
        #expect(cache.executed == plan.cacheSchedule.actions)
        for call in 0..<10 {
            for layer in 0..<2 {
                let counts = plan.freshCounts[call][layer]
                let expected = plan.kinds[call][layer] == .full ? [1.0, 1, 1] : [0, Double(counts[0]) / 16, Double(counts[1]) / 16]
                #expect(cache.rowFractions[call][layer] == expected, "call \(call), layer \(layer)")
            }
        }

        // Through the sampler: the same decisions, less work, a different (finite) result.
        let plain = try DiffusionPixArtCachingTests.run(nil), cached = try DiffusionPixArtCachingTests.run(try Self.caching(p))
        #expect(cached.cacheDecisions == plan.cacheSchedule.actions)
        #expect(cached.transformerFLOPsTotal < plain.transformerFLOPsTotal)
        #expect(cached.latents.values.allSatisfy { $0.isFinite })
        #expect(cached.latents.values != plain.latents.values)
        // ToCa's DiT parameters do not fit PixArt-α's three modules.
        var dit = ToCa.Parameters()
        dit.numSteps = 10
        dit.numLayers = 2
        #expect(throws: (any Error).self) { _ = try DiffusionPixArtCachingTests.run(try Self.caching(dit)) }
    }
}

/// ToCa's and DuCa's PixArt-α parameters share the fields that size a schedule; both caching test suites run
/// them on the tiny test PixArt (10 steps, 2 blocks, 16 tokens).
protocol TinyPixArtCachingParameters {
    var numSteps: Int { get set }
    var numLayers: Int { get set }
    var numTokens: Int { get set }
    var freshThreshold: Int { get set }
    var freshRatio: Double { get set }
}

extension ToCa.Parameters: TinyPixArtCachingParameters {}
extension DuCa.Parameters: TinyPixArtCachingParameters {}

extension TinyPixArtCachingParameters {
    /// These parameters sized for the tiny test PixArt, with full-step interval N0 = `threshold` and r0 = `ratio`.
    func onTinyPixArt(threshold: Int, ratio: Double) -> Self {
        var p = self
        p.numSteps = 10
        p.numLayers = 2
        p.numTokens = 16
        p.freshThreshold = threshold
        p.freshRatio = ratio
        return p
    }
}
