import Foundation
import Testing
import ModelIO
import Models
import Tensors
import TokenCompression
@testable import Runtime

/// ToMe-SD inside `DiTPipeline` / `PixArtPipeline` against diffusers 0.42 + tomesd 0.1.3 on the tiny random
/// pipelines (tools/fixtures/make_tomesd_fixtures.py: tomesd's compute_merge and matcher in a mirrored block
/// forward). Final latents within 1e-4 relative; random destinations replayed from the recorded `rand_idx`.
@Suite struct DiffusionTokenMergingTests {
    static let ditFolder = runPath("Tests/Fixtures/models/dit-tiny")
    static let pixArtFolder = runPath("Tests/Fixtures/models/pixart-tiny")
    static let ditReference = Result { try SafetensorsFile(path: ditFolder + "/tomesd_reference.safetensors") }
    static let pixArtReference = Result { try SafetensorsFile(path: pixArtFolder + "/tomesd_reference.safetensors") }
    static let dit = Result { try DiTPipeline(folder: ditFolder) }
    static let pixArt = Result { try PixArtPipeline(folder: pixArtFolder) }
    static let ditNoise = Result { try DiffusionSampling.loadTensor(path: ditFolder + "/noise.safetensors", name: "latents") }
    static let pixArtNoise = Result { try DiffusionSampling.loadTensor(path: pixArtFolder + "/noise.safetensors", name: "latents") }
    static let captions = Result { try PromptEmbeddings(file: pixArtFolder + "/prompt_embeds.safetensors") }

    /// The fixture's settings: ratio 0.5, max_downsample 2 (DiT's patch size), no random destinations.
    static func settings(ratio: Double = 0.5, maxDownsample: Int = 2, useRand: Bool = false, crossAttention: Bool = false,
                         mlp: Bool = false, seed: UInt64 = 0, recorded: [[Int]]? = nil) -> DiTTokenMergingSettings {
        DiTTokenMergingSettings(parameters: ToMeSD.Parameters(ratio: ratio, maxDownsample: maxDownsample, useRand: useRand,
                                                              mergeCrossAttention: crossAttention, mergeMLP: mlp),
                                seed: seed, recordedDestinations: recorded)
    }

    static func runDiT(_ merging: DiTTokenMergingSettings?, guidance: Double = 4, caching: DiTCaching? = nil) throws -> DiffusionGenerationResult {
        try dit.get().generate(DiTGenerationOptions(classLabel: 3, steps: 10, guidance: guidance, noise: try ditNoise.get(),
                                                    caching: caching, tokenMerging: merging))
    }

    static func runPixArt(_ merging: DiTTokenMergingSettings?) throws -> DiffusionGenerationResult {
        try pixArt.get().generate(PixArtGenerationOptions(captions: try captions.get(), steps: 10, guidance: 4, noise: try pixArtNoise.get(),
                                                          tokenMerging: merging))
    }

    /// The recorded `rand_idx` of every block call of a run, one row of cells each.
    static func recorded(_ file: SafetensorsFile, _ run: String, cells: Int = 4) throws -> [[Int]] {
        let flat = try file.integers(run + "_rand_idx").map { Int($0) }
        return stride(from: 0, to: flat.count, by: cells).map { Array(flat[$0..<($0 + cells)]) }
    }

    static func relativeError(_ result: DiffusionGenerationResult, _ file: SafetensorsFile, _ run: String) throws -> Float {
        let expected = try file.tensor(run + "_latents")
        #expect(result.latents.count == expected.count)
        return zip(result.latents.values, expected.values).map { abs($0 - $1) }.max()! / expected.values.map(abs).max()!
    }

    @Test func ditMatchesTomesd() throws {
        let ref = try Self.ditReference.get()
        let runs: [(String, DiTTokenMergingSettings, Double)] = [
            ("dit_g4_r05_norand", Self.settings(), 4),
            ("dit_g4_r05_mlp_norand", Self.settings(mlp: true), 4),
            // no guidance: a batch of 1 turns random destinations off, whatever the seed
            ("dit_g1_r05_rand_odd", Self.settings(useRand: true, seed: 99), 1),
            ("dit_g4_r03_rand", Self.settings(ratio: 0.3, useRand: true, recorded: try Self.recorded(ref, "dit_g4_r03_rand")), 4),
        ]
        for (run, settings, guidance) in runs {
            let result = try Self.runDiT(settings, guidance: guidance)
            let err = try Self.relativeError(result, ref, run)
            #expect(err < 1e-4, "\(run): latents relative error \(err)")
            let report = try #require(result.tokenMerging)
            #expect(report.noOpReason == nil && report.blocks.count == 10 && report.blocks.allSatisfy { $0.count == 2 })
        }
        // Merging really changes the result: the unmerged run is far from the merged reference; and so do
        // the destinations: our own seeded draws instead of tomesd's recorded ones miss its run.
        let plain = try Self.runDiT(nil)
        #expect(try Self.relativeError(plain, ref, "dit_g4_r05_norand") > 1e-2)
        let seeded = try Self.runDiT(Self.settings(ratio: 0.3, useRand: true, seed: 5))
        #expect(try Self.relativeError(seeded, ref, "dit_g4_r03_rand") > 1e-3)
    }

    @Test func pixArtMatchesTomesd() throws {
        let ref = try Self.pixArtReference.get()
        let runs: [(String, DiTTokenMergingSettings)] = [
            ("pixart_g4_r05_norand", Self.settings()),
            ("pixart_g4_r05_all_norand", Self.settings(crossAttention: true, mlp: true)),
            ("pixart_g4_r05_rand", Self.settings(useRand: true, recorded: try Self.recorded(ref, "pixart_g4_r05_rand"))),
        ]
        for (run, settings) in runs {
            let result = try Self.runPixArt(settings)
            let err = try Self.relativeError(result, ref, run)
            #expect(err < 1e-4, "\(run): latents relative error \(err)")
        }
    }

    @Test func ratioZeroAndDefaultMaxDownsampleAreExplicitNoOps() throws {
        let plain = try Self.runDiT(nil)
        let ref = try Self.ditReference.get()
        for (settings, run, reason) in [(Self.settings(ratio: 0), "dit_g4_r0", "nothing to merge"),
                                        (Self.settings(maxDownsample: 1), "dit_g4_default_md1", "max_downsample ≥ 2")] {
            let result = try Self.runDiT(settings)
            #expect(result.latents.values == plain.latents.values, "\(run): bit-identical to the unmerged run")
            #expect(try Self.relativeError(result, ref, run) < 1e-4)
            let report = try #require(result.tokenMerging)
            #expect(report.noOpReason?.contains(reason) == true, "\(report.noOpReason ?? "no reason")")
            #expect(report.flopsSaved == 0 && report.matchingFLOPs == 0)
            #expect(result.transformerFLOPsTotal == plain.transformerFLOPsTotal)
        }
        let pixArtPlain = try Self.runPixArt(nil)
        let pixArtOff = try Self.runPixArt(Self.settings(ratio: 0, crossAttention: true, mlp: true))
        #expect(pixArtOff.latents.values == pixArtPlain.latents.values)
    }

    @Test func flopsCountTheMergedSublayersAndTheMatching() throws {
        // DiT-tiny: N = 16 tokens, width 32, r = 8, 4 destinations and 12 sources, 2 blocks, 10 steps, batch 2.
        let plain = try Self.runDiT(nil)
        let attnOnly = try Self.runDiT(Self.settings())
        let withMLP = try Self.runDiT(Self.settings(mlp: true))
        let d = 32.0
        func attention(_ n: Double) -> Double { 2 * n * d * d * 4 + 2 * 2 * n * n * d }
        let calls = 10.0 * 2 * 2  // steps × blocks × samples
        let attnSaved = calls * (attention(16) - attention(8))
        let mlpSaved = calls * (2 * 2 * 8 * d * 4 * d)
        let matching = calls * 2 * 12 * 4 * d
        let a = try #require(attnOnly.tokenMerging), m = try #require(withMLP.tokenMerging)
        #expect(a.flopsSaved == attnSaved && a.matchingFLOPs == matching)
        #expect(m.flopsSaved == attnSaved + mlpSaved && m.matchingFLOPs == matching)
        #expect(abs(attnOnly.transformerFLOPsTotal - (plain.transformerFLOPsTotal - attnSaved + matching)) < 1)
        #expect(a.mergedPerLayer?.map(\.attention) == [8, 8] && a.mergedPerLayer?.map(\.mlp) == [0, 0])
        #expect(m.mergedPerLayer?.map(\.mlp) == [8, 8])
        // PixArt: the cross-attention's Q/out projections and its n·L scores shrink too (L = 6 caption tokens).
        let pixArt = try #require(try Self.runPixArt(Self.settings(crossAttention: true)).tokenMerging)
        let crossSaved = calls * (2 * 8 * d * d * 2 + 2 * 2 * 8 * 6 * d)
        #expect(pixArt.flopsSaved == attnSaved + crossSaved)
    }

    @Test func seededDestinationsAreReproducible() throws {
        let a = try Self.runDiT(Self.settings(useRand: true, seed: 1))
        let b = try Self.runDiT(Self.settings(useRand: true, seed: 1))
        let c = try Self.runDiT(Self.settings(useRand: true, seed: 2))
        let fixed = try Self.runDiT(Self.settings())
        #expect(a.latents.values == b.latents.values)
        #expect(a.latents.values != c.latents.values)
        #expect(a.latents.values != fixed.latents.values)
        // A batch of 1 (no guidance) ignores the seed: tomesd's odd-batch rule.
        let odd1 = try Self.runDiT(Self.settings(useRand: true, seed: 1), guidance: 1)
        let odd2 = try Self.runDiT(Self.settings(useRand: true, seed: 2), guidance: 1)
        #expect(odd1.latents.values == odd2.latents.values)
        #expect(odd1.tokenMerging?.plan.useRand == false)
    }

    @Test func badSettingsAreClearErrors() throws {
        func message(_ body: () throws -> Void) -> String { do { try body(); return "" } catch { return "\(error)" } }
        let fora = DiTCaching(method: "fora", schedule: try FORA.schedule(FORA.Parameters(numSteps: 10, interval: 2, numLayers: 2)))
        #expect(message { _ = try Self.runDiT(Self.settings(), caching: fora) }.contains("cannot run together"))
        // A 4×4 token grid has no 8×8 cell: refused before sampling, as the code's max over no destination fails.
        #expect(message { _ = try Self.runDiT(DiTTokenMergingSettings(parameters: ToMeSD.Parameters(maxDownsample: 2, sx: 8, sy: 8))) }
            .contains("smaller than one"))
        // Fewer recorded draws than the run needs.
        #expect(message { _ = try Self.runDiT(Self.settings(useRand: true, recorded: [[0, 0, 0, 0]])) }.contains("recorded destination draws"))
    }
}
