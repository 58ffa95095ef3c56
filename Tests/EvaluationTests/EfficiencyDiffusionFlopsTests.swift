import Foundation
import Testing
import ModelIO
import Models
import Runtime
import TokenCompression
@testable import Evaluation

/// `tokc flops` on the diffusion presets: the preset numbers, the caching schedules' effect, the
/// published DiT-XL/2 figure under DiT-ToCa's counter, and the runtime's count on the same shapes.
@Suite struct EfficiencyDiffusionFlopsTests {
    static func preset(_ name: String) throws -> DiffusionPreset {
        try #require(DiffusionPresets.named(name))
    }

    static func total(_ name: String, steps: Int? = nil, schedule: CacheSchedule? = nil, fresh: [[[Int]]]? = nil,
                      convention: DiffusionFlopsShape.Convention = .design) throws -> Double {
        let p = try preset(name)
        var shape = p.shape
        shape.convention = convention
        let fractions = try schedule.map {
            try DiffusionFlopsRequest.fractions(schedule: try DiffusionFlopsRequest.adapt($0, to: shape.moduleNames), freshTokens: fresh,
                                                tokens: shape.tokens)
        }
        let r = DiffusionFlopsRequest(model: name, shape: shape, steps: steps ?? schedule?.steps ?? p.defaultSteps,
                                      guidance: p.defaultGuidance, fractions: fractions)
        return try DiffusionFlopsReport.count(r).total
    }

    static func pixArtToCa(interval: Int, ratio: Double) throws -> ToCa.Schedule {
        var p = ToCa.Parameters.pixart
        p.freshThreshold = interval
        p.freshRatio = ratio
        return try ToCa.schedule(p)
    }

    /// Hand count of DiT-XL/2 at 256 px (N = 256, d = 1152, 28 blocks), one sample, one call:
    /// per block attention 8Nd² + 4N²d = 3,019,898,880, MLP 16Nd² = 5,435,817,984, adaLN 12d² = 15,925,248;
    /// outside the blocks patch embedding 2·N·d·16 = 9,437,184, final projection 2·N·d·32 = 18,874,368 and
    /// the timestep MLP 4d² = 5,308,416. Guided (batch 2), 50 steps.
    @Test func ditXL2PresetByHand() throws {
        let perBlock = 3_019_898_880.0 + 5_435_817_984.0 + 15_925_248.0
        let perCall = 28 * perBlock + 9_437_184 + 18_874_368 + 5_308_416
        let expected = 2 * 50 * perCall
        #expect(try Self.total("dit-xl-2-256") == expected)
        #expect(String(format: "%.2f", expected / 1e12) == "23.72")
    }

    /// PixArt-α 256: the DiT block plus cross-attention (Q, O: 4Nd²; caption K, V: 4Ld² with L = 120;
    /// scores and sum 4NLd) and the caption projection (2L·4096·d + 2Ld²), without adaLN per block.
    @Test func pixArtPresetsByHand() throws {
        let d = 1152.0, l = 120.0
        func perCall(_ n: Double) -> Double {
            let block = 8 * n * d * d + 4 * n * n * d + 4 * n * d * d + 4 * l * d * d + 4 * n * l * d + 16 * n * d * d
            return 28 * block + 2 * n * d * 16 + 2 * n * d * 32 + 2 * l * 4096 * d + 2 * l * d * d
        }
        #expect(abs(try Self.total("pixart-alpha-256") - 40 * perCall(256)) < 1)
        #expect(abs(try Self.total("pixart-alpha-512") - 40 * perCall(1024)) < 1)
        #expect(String(format: "%.2f", try Self.total("pixart-alpha-256") / 1e12) == "11.92")
    }

    /// 50 % steps is exactly half; FORA (ToCa's PixArt code at r0 = 0) computes steps 0, N, 2N, … and
    /// only the parts outside the blocks on the others.
    @Test func pixArtStepsAndFORA() throws {
        let full = try Self.total("pixart-alpha-256")
        #expect(try Self.total("pixart-alpha-256", steps: 10) == full / 2)
        let shape = try Self.preset("pixart-alpha-256").shape
        let fixed = 2 * shape.fixedFLOPsPerCall
        for (n, computed) in [(2, 10), (3, 7)] {
            let fora = try Self.total("pixart-alpha-256", schedule: try Self.pixArtToCa(interval: n, ratio: 0).cacheSchedule)
            let expected = Double(computed) * full / 20 + Double(20 - computed) * fixed
            #expect(abs(fora - expected) < 1e3)
        }
    }

    /// ToCa N = 3 at R = 60–90 % (r0 = 0.4 … 0.1) lies between FORA N = 3 and the full run, falling with R.
    @Test func pixArtToCaColumnIsOrdered() throws {
        let full = try Self.total("pixart-alpha-256")
        let fora3 = try Self.total("pixart-alpha-256", schedule: try Self.pixArtToCa(interval: 3, ratio: 0).cacheSchedule)
        var previous = full
        for r0 in [0.4, 0.3, 0.2, 0.1] {
            let s = try Self.pixArtToCa(interval: 3, ratio: r0)
            let t = try Self.total("pixart-alpha-256", schedule: s.cacheSchedule, fresh: DiffusionFlopsRequest.freshTokens(s))
            #expect(t < previous && t > fora3)
            previous = t
        }
    }

    /// A partial step without fresh-token counts is refused; a per-module schedule on other modules too.
    @Test func badSchedulesAreRefused() throws {
        let s = try Self.pixArtToCa(interval: 3, ratio: 0.3)
        #expect(throws: FlopsError.self) { try Self.total("pixart-alpha-256", schedule: s.cacheSchedule) }
        var dit = ToCa.Parameters.ditDDIM50
        dit.numSteps = 20
        let ditSchedule = try ToCa.schedule(dit).cacheSchedule
        #expect(throws: FlopsError.self) { try DiffusionFlopsRequest.adapt(ditSchedule, to: DiTFeatureCache.pixArtModules) }
        let r = DiffusionFlopsRequest(model: "x", shape: try Self.preset("dit-xl-2-256").shape, steps: 0, guidance: 1)
        #expect(throws: FlopsError.self) { try DiffusionFlopsReport.count(r) }
    }

    /// DiT-XL/2, DDIM-50, guided: the ToCa-family papers report 23.74 T (DiT-ToCa's counter, spec F11).
    @Test func ditXL2UnderToCaCounterMatchesPublished() throws {
        let t = try Self.total("dit-xl-2-256", convention: .tocaCode)
        #expect(String(format: "%.2f", t / 1e12) == "23.74")
        // ToCa N = 3 (r0 = 0.07, DDIM-50 schedule): 10.23 T published; within 0.1 %.
        let p = ToCa.Parameters.ditDDIM50
        let s = try ToCa.schedule(p)
        let toca = try Self.total("dit-xl-2-256", schedule: s.cacheSchedule, fresh: DiffusionFlopsRequest.freshTokens(s), convention: .tocaCode)
        #expect(abs(toca / 1e12 - 10.23) / 10.23 < 0.001)
    }

    /// The analytic count of the tiny DiT's shapes equals what the sampler counted, uncached and with FORA.
    @Test func analyticEqualsRuntimeOnTheTinyDiT() throws {
        let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("Fixtures/models/dit-tiny").path
        let pipeline = try DiTPipeline(folder: folder)
        // Read off the fixture's config by hand: 2 blocks, 2 heads × 16, 8×8 latent, patch 2, 4 → 8 channels.
        let shape = DiffusionFlopsShape(family: .dit, layers: 2, width: 32, heads: 2, tokens: 16, patchSize: 2, inChannels: 4, outChannels: 8)
        let schedule = try FORA.schedule(FORA.Parameters(numSteps: 6, interval: 3, numLayers: 2))
        for caching in [nil, DiTCaching(method: "fora", schedule: schedule)] {
            let run = try pipeline.generate(DiTGenerationOptions(classLabel: 1, steps: 6, guidance: 4, caching: caching))
            let request = DiffusionFlopsRequest(model: "dit-tiny", shape: shape, steps: 6, guidance: 4,
                                                fractions: try caching.map { try DiffusionFlopsRequest.fractions(schedule: $0.schedule, freshTokens: nil, tokens: 16) })
            #expect(try DiffusionFlopsReport.count(request).total == run.transformerFLOPsTotal)
        }
    }
}
