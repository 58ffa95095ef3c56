import Foundation
import Testing
import ModelIO
import Models
import Tensors
import TokenCompression
@testable import Runtime

/// DuCa and PAB inside the DiT sampler (tiny DiT: 2 blocks, 16 tokens, DDIM, 10 steps): caching that
/// computes everything equals the uncached run bit for bit, and the executed decisions are the ones
/// the method's schedule code (`tokc schedule`'s) makes for the same settings.
@Suite struct DiffusionDuCaTests {
    static func duca(interval: Int = 3, ratio: Double = 0.05) throws -> (caching: DiTCaching, plan: DuCa.Schedule) {
        let p = DuCa.Parameters(numSteps: 10, numLayers: 2, numTokens: 16, freshThreshold: interval, freshRatio: ratio)
        let plan = try DuCa.schedule(p)
        return (DiTCaching(method: "duca", schedule: plan.cacheSchedule, duca: p), plan)
    }

    @Test func allFullScheduleEqualsUncachedBitForBit() throws {
        // r0 = 0 and N0 = 1: every step full (the attention maps and token caches are still recorded).
        let (caching, _) = try Self.duca(interval: 1, ratio: 0)
        try DiffusionCachingTests.expectAllComputeEqualsUncached(caching)
    }

    @Test func decisionsMatchTheScheduleAndWorkIsSkipped() throws {
        let (caching, plan) = try Self.duca()
        let actions = caching.schedule.actions.joined().joined()
        #expect(actions.contains(.skip) && actions.contains(.partial) && actions.contains(.reuse))
        let plain = try DiffusionCachingTests.run(nil)
        let cached = try DiffusionCachingTests.run(caching)
        #expect(cached.cacheDecisions == caching.schedule.actions)
        #expect(cached.transformerFLOPsTotal < 0.7 * plain.transformerFLOPsTotal)
        #expect(cached.latents.values != plain.latents.values)
        #expect(cached.latents.values.allSatisfy { $0.isFinite })
        // Partial MLPs computed exactly DuCa's k = int(r·N) fresh rows per batch row.
        let cache = try DiTFeatureCache(method: "duca", schedule: caching.schedule, layers: 2, duca: caching.duca)
        let model = try DiffusionPipelineTests.pipeline.get().transformer
        let x = try DiffusionSampling.loadTensor(path: DiffusionPipelineTests.folder + "/noise.safetensors", name: "latents").reshaped([4, 8, 8])
        for call in 0..<10 { _ = try model([x, x], timesteps: Array(repeating: Float(900 - 100 * call), count: 2), classes: [3, 1000], cache: cache) }
        #expect(cache.executed == caching.schedule.actions)
        for call in 0..<10 {
            for layer in 0..<2 {
                switch plan.kinds[call][layer] {
                case .full: #expect(cache.rowFractions[call][layer] == [1, 1])
                case .partial: #expect(cache.rowFractions[call][layer] == [0, Double(plan.freshCounts[call][layer]) / 16])
                case .aggressive: #expect(cache.rowFractions[call][layer] == [0, 0])
                }
            }
        }
        #expect(cache.skippedModules == actions.filter { $0 == .skip }.count)
    }

    @Test func aggressiveStepsIgnoreTheInputAndReuseTheLastBlockOutput() throws {
        let (caching, plan) = try Self.duca()
        guard let aggressive = plan.kinds.firstIndex(where: { $0.allSatisfy { $0 == .aggressive } }) else {
            Issue.record("the schedule has no aggressive step")
            return
        }
        let model = try DiffusionPipelineTests.pipeline.get().transformer
        let x = try DiffusionSampling.loadTensor(path: DiffusionPipelineTests.folder + "/noise.safetensors", name: "latents").reshaped([4, 8, 8])
        let other = x.map { $0 * 0.5 + 0.25 }
        let a = try DiTFeatureCache(method: "duca", schedule: caching.schedule, layers: 2, duca: caching.duca)
        let b = try DiTFeatureCache(method: "duca", schedule: caching.schedule, layers: 2, duca: caching.duca)
        for call in 0...(aggressive + 1) {
            let t = [Float(900 - 100 * call)]
            let outA = try model([x], timesteps: t, classes: [3], cache: a)
            // Same history, a different latent at the aggressive call and the one after it.
            let outB = try model([call >= aggressive ? other : x], timesteps: t, classes: [3], cache: b)
            let same = outA[0].values == outB[0].values
            if call < aggressive { #expect(same) }
            // Every block skipped: the output depends only on the last block's stored output and t.
            if call == aggressive { #expect(same, "the aggressive call read its input") }
            // The next (non-aggressive) call reads its input again.
            if call == aggressive + 1 { #expect(!same) }
        }
    }

    @Test func refusedWhereItCannotRun() throws {
        let (caching, _) = try Self.duca()
        // DiT parameters on PixArt-α's modules, without its parameters, or with another method's schedule.
        #expect(throws: ModelError.self) {
            try DiTFeatureCache(method: "duca", schedule: caching.schedule, layers: 2, modules: DiTFeatureCache.pixArtModules, duca: caching.duca)
        }
        #expect(throws: ModelError.self) { try DiTFeatureCache(method: "duca", schedule: caching.schedule, layers: 2) }
        let other = try Self.duca(interval: 4).caching.schedule
        #expect(throws: ModelError.self) { try DiTFeatureCache(method: "duca", schedule: other, layers: 2, duca: caching.duca) }
    }
}

@Suite struct DiffusionPABTests {
    static func timesteps() throws -> [Int] {
        var scheduler = try DiffusionSchedulers.make(config: try DiffusionPipelineTests.pipeline.get().schedulerConfig)
        try scheduler.setTimesteps(10)
        return scheduler.timesteps.map { Int($0) }
    }

    /// Self-attention broadcast over range 2 (cross-attention 3) at every timestep; MLP computed and stored at t = 800 and reused
    /// for the next two calls in both blocks.
    static func pab(spatialRange: Int = 2, mlp: Bool = true, cross: Bool = false) throws -> PAB.Parameters {
        try PAB.Parameters(spatial: PAB.Broadcast(lower: -1, upper: 1001, range: spatialRange), temporal: nil,
                           cross: PAB.Broadcast(lower: -1, upper: 1001, range: 3), mlpBroadcast: mlp,
                           mlpSpatial: PAB.rules([800], blocks: [0, 1], skipCount: 2), mlpTemporal: [])
    }

    static func caching(_ p: PAB.Parameters, timesteps: [Int], cross: Bool = false) throws -> DiTCaching {
        DiTCaching(method: "pab", schedule: try PAB.imageSchedule(timesteps: timesteps, layers: 2, crossAttention: cross, parameters: p), pab: p)
    }

    @Test func rangeOneWithoutMLPBroadcastEqualsUncachedBitForBit() throws {
        let caching = try Self.caching(try Self.pab(spatialRange: 1, mlp: false), timesteps: try Self.timesteps())
        try DiffusionCachingTests.expectAllComputeEqualsUncached(caching)
    }

    @Test func decisionsMatchTheScheduleAndWorkIsSkipped() throws {
        let ts = try Self.timesteps()
        let caching = try Self.caching(try Self.pab(), timesteps: ts)
        let plain = try DiffusionCachingTests.run(nil)
        let cached = try DiffusionCachingTests.run(caching)
        #expect(cached.cacheDecisions == caching.schedule.actions)
        // Attention: computed at even calls, reused at odd ones; MLP: stored at t = 800 (call 1), reused at calls 2 and 3.
        #expect(caching.schedule.actions.map { $0[0][0] } == (0..<10).map { $0 % 2 == 0 ? .compute : .reuse })
        #expect(caching.schedule.actions.map { $0[1][1] } == [.compute, .compute, .reuse, .reuse] + Array(repeating: .compute, count: 6))
        #expect(cached.transformerFLOPsTotal < plain.transformerFLOPsTotal)
        #expect(cached.latents.values.allSatisfy { $0.isFinite })
        // A schedule built for other timesteps is refused before sampling.
        let shifted = try Self.caching(try Self.pab(), timesteps: ts.map { $0 + 50 })
        #expect(throws: ModelError.self) { _ = try DiffusionCachingTests.run(shifted) }
    }

    @Test func reuseAddsTheGatedTermOfTheComputingCall() throws {
        let model = try DiffusionPipelineTests.pipeline.get().transformer
        let x = try DiffusionSampling.loadTensor(path: DiffusionPipelineTests.folder + "/noise.safetensors", name: "latents").reshaped([4, 8, 8])
        func outputs(_ ts: [Int]) throws -> (pab: [Float], plain: [Float]) {
            let p = try Self.pab(mlp: false)
            let schedule = try PAB.imageSchedule(timesteps: ts, layers: 2, crossAttention: false, parameters: p)
            let pab = try DiTFeatureCache(method: "pab", schedule: schedule, layers: 2, pab: (p, ts))
            let plain = try DiTFeatureCache(method: "reuse", schedule: schedule, layers: 2)
            var last: ([Float], [Float]) = ([], [])
            for t in ts {
                last = (try model([x], timesteps: [Float(t)], classes: [3], cache: pab)[0].values,
                        try model([x], timesteps: [Float(t)], classes: [3], cache: plain)[0].values)
            }
            return last
        }
        // Call 1 reuses call 0's attention. Same timestep: the old gate is the current one, both rules agree
        // bit for bit; another timestep: PAB keeps the old gate, FORA's rule takes the new one.
        let same = try outputs([700, 700])
        let agree = same.pab == same.plain
        #expect(agree, "PAB and FORA reuse differ at one timestep")
        let moved = try outputs([700, 500])
        let differ = moved.pab != moved.plain
        #expect(differ, "PAB reused with the new gate")
    }
}

/// PAB and T-GATE inside the PixArt-α sampler (tiny PixArt: 2 blocks, DPM-Solver++, 10 steps, guidance 4.5).
@Suite struct DiffusionPixArtCachingMethodsTests {
    static func timesteps() throws -> [Int] {
        var scheduler = try DiffusionSchedulers.make(config: try DiffusionPixArtPipelineTests.pipeline.get().schedulerConfig)
        try scheduler.setTimesteps(10)
        return scheduler.timesteps.map { Int($0) }
    }

    @Test func pabAllComputeEqualsUncachedAndDecisionsMatch() throws {
        let ts = try Self.timesteps()
        let off = try DiffusionPABTests.caching(try PAB.Parameters(spatial: PAB.Broadcast(lower: 0, upper: 1000, range: 1), temporal: nil,
                                                                   cross: PAB.Broadcast(lower: 0, upper: 1000, range: 1), mlpBroadcast: false,
                                                                   mlpSpatial: [], mlpTemporal: []), timesteps: ts, cross: true)
        let plain = try DiffusionPixArtCachingTests.run(nil)
        let same = try DiffusionPixArtCachingTests.run(off)
        #expect(same.latents.values == plain.latents.values && same.transformerFLOPsTotal == plain.transformerFLOPsTotal)

        let on = try DiffusionPABTests.caching(try DiffusionPABTests.pab(), timesteps: ts, cross: true)
        #expect(on.schedule.moduleNames == ["attn", "cross-attn", "mlp"])
        // Cross-attention computed every third call inside the window, self-attention every second.
        #expect(on.schedule.actions.map { $0[0][1] } == (0..<10).map { $0 % 3 == 0 ? .compute : .reuse })
        let cached = try DiffusionPixArtCachingTests.run(on)
        #expect(cached.cacheDecisions == on.schedule.actions)
        #expect(cached.transformerFLOPsTotal < 0.8 * plain.transformerFLOPsTotal)
        #expect(cached.latents.values != plain.latents.values && cached.latents.values.allSatisfy { $0.isFinite })
    }

    /// FORA's schedule names DiT's two modules; on PixArt-α each block's three modules follow its per-step decision.
    @Test func foraRunsOnEveryPixArtModule() throws {
        let plain = try DiffusionPixArtCachingTests.run(nil)
        let everyStep = try DiffusionPixArtCachingTests.run(DiTCaching(method: "fora", schedule: try FORA.schedule(
            FORA.Parameters(numSteps: 10, interval: 1, numLayers: 2))))
        #expect(everyStep.latents.values == plain.latents.values && everyStep.transformerFLOPsTotal == plain.transformerFLOPsTotal)

        let schedule = try FORA.schedule(FORA.Parameters(numSteps: 10, interval: 3, numLayers: 2))
        let cached = try DiffusionPixArtCachingTests.run(DiTCaching(method: "fora", schedule: schedule))
        #expect(cached.cacheDecisions == schedule.actions.map { step in step.map { Array(repeating: $0[0], count: 3) } })
        #expect(cached.cacheDecisions?.map { $0[0][1] } == (0..<10).map { $0 % 3 == 0 ? .compute : .reuse })
        // 4 of 10 calls compute: the blocks' FLOPs fall to 40%, the patch embedding and final layer still run.
        #expect(cached.transformerFLOPsTotal < 0.45 * plain.transformerFLOPsTotal)
        #expect(cached.latents.values != plain.latents.values && cached.latents.values.allSatisfy { $0.isFinite })
        // Another method's two-module schedule is not widened: it is refused by the cache.
        #expect(throws: (any Error).self) {
            try DiffusionPixArtCachingTests.run(DiTCaching(method: "toca", schedule: schedule))
        }
    }

    static func tgate(gate: Int, sp: Int = 3, fi: Int = 1, warmUp: Int = 2) throws -> DiTCaching {
        let p = try TGate.Parameters(gateStep: gate, semanticsInterval: sp, fidelityInterval: fi, warmUp: warmUp)
        return DiTCaching(method: "tgate", schedule: try TGate.schedule(steps: 10, layers: 2, parameters: p), tgate: p)
    }

    @Test func tgateWithoutGateOrReuseEqualsUncachedBitForBit() throws {
        // Gate after the last step and self-attention cached every step: everything computes with CFG on.
        let caching = try Self.tgate(gate: 11, sp: 1)
        #expect(caching.schedule.actions.joined().joined().allSatisfy { $0 == .compute })
        let plain = try DiffusionPixArtCachingTests.run(nil), cached = try DiffusionPixArtCachingTests.run(caching)
        #expect(cached.latents.values == plain.latents.values && cached.transformerFLOPsTotal == plain.transformerFLOPsTotal)
    }

    @Test func tgateDecisionsMatchTheScheduleAndGuidanceStopsAfterTheGate() throws {
        let caching = try Self.tgate(gate: 6)
        let plain = try DiffusionPixArtCachingTests.run(nil)
        let cached = try DiffusionPixArtCachingTests.run(caching)
        #expect(cached.cacheDecisions == caching.schedule.actions)
        #expect(caching.schedule.moduleNames == ["self-attn", "cross-attn"])
        // After the gate step (call 5) cross-attention is reused at every call.
        #expect(caching.schedule.actions[6...].allSatisfy { $0.allSatisfy { $0[1] == .reuse } })
        // Calls 0–5 run the CFG pair, then one row (16 of 20 sample-calls); the reused modules save more.
        #expect(cached.transformerFLOPsTotal < 0.8 * plain.transformerFLOPsTotal)
        #expect(cached.latents.values != plain.latents.values && cached.latents.values.allSatisfy { $0.isFinite })
        let p = try DiffusionPixArtPipelineTests.pipeline.get()
        let cache = try caching.cache(layers: 2, modules: DiTFeatureCache.pixArtModules, timesteps: cached.timesteps)
        let captions = try DiffusionPixArtPipelineTests.captions.get()
        let x = try DiffusionPixArtPipelineTests.noise.get().reshaped([4, 8, 8])
        for call in 0..<10 {
            let pair = call < 6
            _ = try p.transformer(pair ? [x, x] : [x], timesteps: Array(repeating: cached.timesteps[call], count: pair ? 2 : 1),
                                  captions: pair ? [captions.negative!.embeddings, captions.positive.embeddings] : [captions.negative!.embeddings],
                                  masks: pair ? [captions.negative!.mask, captions.positive.mask] : [captions.negative!.mask], cache: cache)
        }
        #expect(cache.callSamples == [2, 2, 2, 2, 2, 2, 1, 1, 1, 1])
        #expect(cache.executed == caching.schedule.actions)
    }

    @Test func tgateIsRefusedWhereItCannotRun() throws {
        let caching = try Self.tgate(gate: 6)
        // DiT has no cross-attention.
        #expect(throws: ModelError.self) { try DiTFeatureCache(method: "tgate", schedule: caching.schedule, layers: 2, tgate: caching.tgate) }
        // Without guidance there are no CFG halves to average at the gate.
        #expect(throws: ModelError.self) {
            _ = try DiffusionPixArtPipelineTests.pipeline.get().generate(PixArtGenerationOptions(
                captions: try DiffusionPixArtPipelineTests.captions.get(), steps: 10, guidance: 1,
                noise: try DiffusionPixArtPipelineTests.noise.get(), caching: caching))
        }
        // A batch that changes where the schedule still reuses a two-row cache is an error, not a crash.
        let cache = try caching.cache(layers: 2, modules: DiTFeatureCache.pixArtModules, timesteps: Array(repeating: 500, count: 10))
        let p = try DiffusionPixArtPipelineTests.pipeline.get()
        let captions = try DiffusionPixArtPipelineTests.captions.get()
        let x = try DiffusionPixArtPipelineTests.noise.get().reshaped([4, 8, 8])
        for _ in 0..<4 {
            _ = try p.transformer([x, x], timesteps: [500, 500], captions: [captions.negative!.embeddings, captions.positive.embeddings],
                                  masks: [captions.negative!.mask, captions.positive.mask], cache: cache)
        }
        // Call 4 reuses the self-attention stored for two rows at call 3.
        #expect(throws: ModelError.self) {
            _ = try p.transformer([x], timesteps: [500], captions: [captions.positive.embeddings], masks: [captions.positive.mask], cache: cache)
        }
    }
}

/// PAB against diffusers' own hooks (`apply_pyramid_attention_broadcast`, tools/fixtures/make_pab_fixtures.py):
/// self-attention range 2 and cross-attention range 3 in (50, 950), no MLP broadcast, reused outputs gated by the
/// current gate (`reuseGate = .current`). The modules diffusers ran are the ones the schedule computes, and the
/// final latents agree.
@Suite struct DiffusionPABParityTests {
    static func parameters(_ gate: PAB.ReuseGate, cross: Bool) throws -> PAB.Parameters {
        var p = try PAB.Parameters(spatial: PAB.Broadcast(lower: 50, upper: 950, range: 2), temporal: nil,
                                   cross: cross ? PAB.Broadcast(lower: 50, upper: 950, range: 3) : nil,
                                   mlpBroadcast: false, mlpSpatial: [], mlpTemporal: [])
        p.reuseGate = gate
        return p
    }

    static func check(folder: String, cross: Bool, run: (DiTCaching) throws -> DiffusionGenerationResult) throws {
        let ref = try SafetensorsFile(path: folder + "/pab_reference.safetensors")
        let timesteps = try ref.integers("timesteps").map { Int($0) }
        let computed = try ref.integers("computed").map { Int($0) }
        func caching(_ gate: PAB.ReuseGate) throws -> DiTCaching {
            let p = try parameters(gate, cross: cross)
            return DiTCaching(method: "pab", schedule: try PAB.imageSchedule(timesteps: timesteps, layers: 2, crossAttention: cross, parameters: p), pab: p)
        }
        let current = try caching(.current)
        // diffusers' log [call][layer][attn1 (, attn2)] against the schedule's attention columns.
        let attentionColumns = current.schedule.actions.flatMap { $0.flatMap { cross ? [$0[0], $0[1]] : [$0[0]] } }
        #expect(attentionColumns.map { $0 == .compute ? 1 : 0 } == computed)
        #expect(attentionColumns.contains(.reuse))
        let result = try run(current)
        #expect(result.timesteps.map { Int($0) } == timesteps)
        #expect(result.cacheDecisions == current.schedule.actions)
        let expected = try ref.tensor("latents")
        let err = zip(result.latents.values, expected.values).map { abs($0 - $1) }.max()! / expected.values.map(abs).max()!
        #expect(err < 1e-4, "latents relative error \(err)")
        // VideoSys's rule (the computing call's gate) is a different run.
        let videoSys = try run(try caching(.computing))
        let gap = zip(videoSys.latents.values, expected.values).map { abs($0 - $1) }.max()! / expected.values.map(abs).max()!
        #expect(gap > 1e-3, "VideoSys's gate rule should differ from diffusers' (gap \(gap))")
    }

    @Test func ditMatchesDiffusers() throws {
        try Self.check(folder: DiffusionPipelineTests.folder, cross: false) { try DiffusionCachingTests.run($0) }
    }

    @Test func pixArtMatchesDiffusers() throws {
        try Self.check(folder: DiffusionPixArtPipelineTests.folder, cross: true) { try DiffusionPixArtCachingTests.run($0) }
    }
}
