import Foundation
import Testing
import ModelIO
import Models
import Tensors
import TokenCompression
@testable import Runtime

/// `PixArtPipeline` against diffusers' PixArtAlphaPipeline (caption embeddings given, no text encoder,
/// 10 steps, no resolution binning) on the tiny random pipeline of tools/fixtures/make_dit_fixtures.py.
@Suite struct DiffusionPixArtPipelineTests {
    static let folder = runPath("Tests/Fixtures/models/pixart-tiny")
    static let reference = Result { try SafetensorsFile(path: folder + "/reference.safetensors") }
    static let pipeline = Result { try PixArtPipeline(folder: folder) }
    static let captions = Result { try PromptEmbeddings(file: folder + "/prompt_embeds.safetensors") }
    static let noise = Result { try DiffusionSampling.loadTensor(path: folder + "/noise.safetensors", name: "latents") }

    @Test(arguments: [("pixart_dpm_g1", nil as String?, 1.0), ("pixart_dpm_g4", nil, 4.0), ("pixart_ddim_g4", "DDIMScheduler", 4.0)])
    func matchesDiffusers(key: String, scheduler: String?, guidance: Double) throws {
        let ref = try Self.reference.get()
        let result = try Self.pipeline.get().generate(PixArtGenerationOptions(
            captions: try Self.captions.get(), steps: 10, guidance: guidance, noise: try Self.noise.get(), scheduler: scheduler))
        #expect(result.timesteps.map { Int($0) } == (try ref.integers(key + "_timesteps").map { Int($0) }))
        let expected = try ref.tensor(key + "_latents")
        let err = zip(result.latents.values, expected.values).map { abs($0 - $1) }.max()! / expected.values.map(abs).max()!
        #expect(result.latents.count == expected.count)
        #expect(err < 1e-4, "\(key): latents relative error \(err)")
        let pixels = try ref.integers(key + "_image").map { Int($0) }
        let diff = zip(result.image.pixels, pixels).map { abs(Int($0) - $1) }.max()!
        #expect(result.image.pixels.count == pixels.count && diff <= 1, "\(key): image differs by \(diff)/255")
    }

    @Test func badInputIsAClearError() throws {
        func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }
        var positiveOnly = try Self.captions.get()
        positiveOnly.negative = nil
        let p = try Self.pipeline.get()
        #expect(message { _ = try p.generate(PixArtGenerationOptions(captions: positiveOnly, steps: 2, guidance: 4.5)) }.contains("negative_prompt_embeds"))
        #expect(message { _ = try p.generate(PixArtGenerationOptions(captions: positiveOnly, steps: 2, guidance: -1)) }.contains("guidance"))
        #expect(message { _ = try p.generate(PixArtGenerationOptions(captions: positiveOnly, steps: 2, guidance: 1, noise: Tensor(zeros: [1, 4, 2, 2]))) }.contains("shape"))
        #expect(message { _ = try PromptEmbeddings(file: Self.folder + "/noise.safetensors") }.contains("prompt_embeds"))
        #expect(message { _ = try PixArtPipeline(folder: runPath("Tests/Fixtures/models/dit-tiny")) }.contains("PixArtAlphaPipeline"))
        // Without guidance the positive embeddings alone suffice.
        let plain = try p.generate(PixArtGenerationOptions(captions: positiveOnly, steps: 2, guidance: 1, seed: 3))
        #expect(plain.latents.values.allSatisfy { $0.isFinite })
    }
}

/// Caching inside the PixArt-α sampler: ToCa's PixArt schedule with r0 = 0 (FORA behaviour, the ToCa
/// paper's baseline) over attention, cross-attention and MLP.
@Suite struct DiffusionPixArtCachingTests {
    static func run(_ caching: DiTCaching?) throws -> DiffusionGenerationResult {
        try DiffusionPixArtPipelineTests.pipeline.get().generate(PixArtGenerationOptions(
            captions: try DiffusionPixArtPipelineTests.captions.get(), steps: 10, guidance: 4.5,
            noise: try DiffusionPixArtPipelineTests.noise.get(), caching: caching))
    }

    static func toca(ratio: Double) throws -> CacheSchedule {
        var p = ToCa.Parameters.pixart
        p.numSteps = 10
        p.numLayers = 2
        p.freshRatio = ratio
        return try ToCa.schedule(p).cacheSchedule
    }

    @Test func allComputeEqualsUncachedBitForBit() throws {
        let all = CacheSchedule(moduleNames: DiTFeatureCache.pixArtModules,
                                actions: Array(repeating: Array(repeating: [.compute, .compute, .compute], count: 2), count: 10))
        let plain = try Self.run(nil), cached = try Self.run(DiTCaching(method: "all", schedule: all))
        #expect(cached.latents.values == plain.latents.values && cached.image == plain.image)
    }

    @Test func reuseScheduleIsFollowedAndSkipsWork() throws {
        let schedule = try Self.toca(ratio: 0)
        let plain = try Self.run(nil), cached = try Self.run(DiTCaching(method: "toca", schedule: schedule))
        #expect(cached.cacheDecisions == schedule.actions)
        #expect(schedule.actions.joined().joined().contains(.reuse))
        #expect(cached.transformerFLOPsTotal < 0.6 * plain.transformerFLOPsTotal)
        #expect(cached.latents.values != plain.latents.values)
        // ToCa proper (r0 = 0.3) has partial steps: without its parameters refused, not silently run in full.
        #expect(throws: ModelError.self) { _ = try Self.run(DiTCaching(method: "toca", schedule: try Self.toca(ratio: 0.3))) }
    }
}
