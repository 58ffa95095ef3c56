import Foundation
import Testing
import Models
import Tensors
import TokenCompression
@testable import Runtime

/// DuCa inside the PixArt-α sampler (tiny PixArt: 2 blocks, 16 tokens, 10 steps): conservative steps
/// reuse self-attention and recompute ToCa-PixArt's fresh cross-attention and MLP rows, aggressive
/// steps skip every block and hand back the previous call's last-block output.
@Suite struct DiffusionPixArtDuCaTests {
    static func parameters(threshold: Int = 3, ratio: Double = 0.3) -> DuCa.Parameters {
        DuCa.Parameters.pixart.onTinyPixArt(threshold: threshold, ratio: ratio)
    }

    static func caching(_ p: DuCa.Parameters) throws -> DiTCaching {
        DiTCaching(method: "duca", schedule: try DuCa.schedule(p).cacheSchedule, duca: p)
    }

    static func call(_ model: PixArtTransformer, _ x: Tensor, call: Int, cache: DiTFeatureCache) throws -> [Tensor] {
        let captions = try DiffusionPixArtPipelineTests.captions.get()
        let negative = try #require(captions.negative)
        let t = Float(900 - 100 * call)
        return try model([x, x], timesteps: [t, t], captions: [negative.embeddings, captions.positive.embeddings],
                         masks: [negative.mask, captions.positive.mask], cache: cache)
    }

    @Test func everyStepFullEqualsUncachedBitForBit() throws {
        let p = Self.parameters(threshold: 1)
        #expect(try DuCa.schedule(p).kinds.joined().allSatisfy { $0 == .full })
        let plain = try DiffusionPixArtCachingTests.run(nil), cached = try DiffusionPixArtCachingTests.run(try Self.caching(p))
        #expect(cached.latents.values == plain.latents.values && cached.image == plain.image)
    }

    @Test func decisionsFollowTheScheduleAndConservativeLayersComputeTheFreshRows() throws {
        let p = Self.parameters()
        let plan = try DuCa.schedule(p)
        let actions = plan.cacheSchedule.actions.joined().joined()
        #expect(actions.contains(.skip) && actions.contains(.partial) && actions.contains(.reuse))
        let cache = try DiTFeatureCache(method: "duca", schedule: plan.cacheSchedule, layers: 2,
                                        modules: DiTFeatureCache.pixArtModules, duca: p)
        let model = try DiffusionPixArtPipelineTests.pipeline.get().transformer
        var x = try DiffusionPixArtPipelineTests.noise.get().reshaped([4, 8, 8])
        for call in 0..<10 {
            let out = try Self.call(model, x, call: call, cache: cache)
            x = try DiffusionSampling.noiseChannels(out[1], channels: 4, learnedSigma: true)
            #expect(x.values.allSatisfy { $0.isFinite })
        }
        #expect(cache.executed == plan.cacheSchedule.actions)
        for call in 0..<10 {
            for layer in 0..<2 {
                let counts = plan.moduleFreshCounts[call][layer]
                switch plan.kinds[call][layer] {
                case .full: #expect(cache.rowFractions[call][layer] == [1, 1, 1])
                case .partial:
                    #expect(cache.rowFractions[call][layer] == [0, Double(counts[0]) / 16, Double(counts[1]) / 16], "call \(call), layer \(layer)")
                case .aggressive: #expect(cache.rowFractions[call][layer] == [0, 0, 0])
                }
            }
        }
        #expect(cache.skippedModules == actions.filter { $0 == .skip }.count)

        // Through the sampler: the same decisions, less work, a different (finite) result.
        let plain = try DiffusionPixArtCachingTests.run(nil), cached = try DiffusionPixArtCachingTests.run(try Self.caching(p))
        #expect(cached.cacheDecisions == plan.cacheSchedule.actions)
        #expect(cached.transformerFLOPsTotal < 0.7 * plain.transformerFLOPsTotal)
        #expect(cached.latents.values.allSatisfy { $0.isFinite })
        #expect(cached.latents.values != plain.latents.values)
    }

    @Test func aggressiveStepsIgnoreTheInputAndReuseTheLastBlockOutput() throws {
        let p = Self.parameters()
        let plan = try DuCa.schedule(p)
        guard let aggressive = plan.kinds.firstIndex(where: { $0.allSatisfy { $0 == .aggressive } }) else {
            Issue.record("the schedule has no aggressive step")
            return
        }
        let model = try DiffusionPixArtPipelineTests.pipeline.get().transformer
        let x = try DiffusionPixArtPipelineTests.noise.get().reshaped([4, 8, 8])
        let other = x.map { $0 * 0.5 + 0.25 }
        let a = try DiTFeatureCache(method: "duca", schedule: plan.cacheSchedule, layers: 2, modules: DiTFeatureCache.pixArtModules, duca: p)
        let b = try DiTFeatureCache(method: "duca", schedule: plan.cacheSchedule, layers: 2, modules: DiTFeatureCache.pixArtModules, duca: p)
        for call in 0...(aggressive + 1) {
            let outA = try Self.call(model, x, call: call, cache: a)
            // Same history, a different latent at the aggressive call and the one after it.
            let outB = try Self.call(model, call >= aggressive ? other : x, call: call, cache: b)
            let same = zip(outA, outB).allSatisfy { $0.values == $1.values }
            if call < aggressive { #expect(same) }
            // Every block skipped: the output depends only on the last block's stored output and t.
            if call == aggressive { #expect(same, "the aggressive call read its input") }
            // The next (non-aggressive) call reads its input again.
            if call == aggressive + 1 { #expect(!same) }
        }
    }

    @Test func refusedWithTheWrongFamily() throws {
        let p = Self.parameters()
        let schedule = try DuCa.schedule(p).cacheSchedule
        // PixArt parameters on DiT's two modules, DiT parameters on PixArt-α's three.
        #expect(throws: ModelError.self) { try DiTFeatureCache(method: "duca", schedule: schedule, layers: 2, duca: p) }
        let dit = DuCa.Parameters(numSteps: 10, numLayers: 2, numTokens: 16)
        #expect(throws: ModelError.self) {
            try DiTFeatureCache(method: "duca", schedule: try DuCa.schedule(dit).cacheSchedule, layers: 2,
                                modules: DiTFeatureCache.pixArtModules, duca: dit)
        }
    }
}
