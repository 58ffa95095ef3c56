import Foundation
import Testing
import ModelIO
import Tensors
import TokenCompression
@testable import Models

/// `DiTTokenMerging` (ToMe-SD in the DiT / PixArt-α blocks) on the tiny random DiT, and its catalog adapter
/// `DiffusionToMeSDCompression`. The parity with diffusers + tomesd is in RuntimeTests/DiffusionTokenMergingTests.
@Suite struct DiffusionTokenMergingTests {
    let folder = modelsFixture("dit-tiny")

    func inputs() throws -> (latents: [Tensor], timesteps: [Float], classes: [Int]) {
        let ref = try ModelsReference("dit-tiny")
        let x = try ref.tensor("transformer_input")
        let plane = x.count / 2
        let latents = try (0..<2).map { try Tensor(shape: [4, 8, 8], values: Array(x.values[($0 * plane)..<(($0 + 1) * plane)])) }
        return (latents, try ref.ints("transformer_timesteps").map(Float.init), try ref.ints("transformer_classes"))
    }

    func merging(_ p: ToMeSD.Parameters, batch: Int = 2) throws -> DiTTokenMerging {
        try DiTTokenMerging(settings: DiTTokenMergingSettings(parameters: p), latentSize: (8, 8), tokenCount: 16, batch: batch)
    }

    @Test func mergingChangesOnlyTheSublayersItWraps() throws {
        let model = try DiTTransformer(folder: folder + "/transformer")
        let (latents, t, y) = try inputs()
        let plain = try model(latents, timesteps: t, classes: y)
        // A matching is computed in every block, but no sub-layer uses it: the same arithmetic, bit for bit.
        let unused = try merging(ToMeSD.Parameters(maxDownsample: 2, useRand: false, mergeAttention: false))
        let same = try model(latents, timesteps: t, classes: y, merging: unused)
        #expect(same.map(\.values) == plain.map(\.values))
        #expect(unused.blocks.count == 1 && unused.blocks[0].allSatisfy { $0.attentionTokens == 16 && $0.mlpTokens == 16 && $0.similarityPairs == 12 * 4 })

        let on = try merging(ToMeSD.Parameters(maxDownsample: 2, useRand: false))
        let merged = try model(latents, timesteps: t, classes: y, merging: on)
        _ = try model(latents, timesteps: t, classes: y, merging: on)
        #expect(merged.map(\.values) != plain.map(\.values))
        #expect(on.blocks.count == 2 && on.blocks.joined().allSatisfy { $0.attentionTokens == 8 && $0.mlpTokens == 16 && $0.crossAttentionTokens == 16 })
        // The output keeps every token (unmerge restores them after each sub-layer).
        #expect(merged[0].shape == [8, 8, 8])

        // The batch the plan was made for: an odd one turns random destinations off (tomesd's rule).
        let single = try merging(ToMeSD.Parameters(maxDownsample: 2, useRand: true), batch: 1)
        #expect(!single.plan.useRand)
        #expect(throws: ModelError.self) { _ = try model(latents, timesteps: t, classes: y, merging: single) }
        #expect(throws: ModelError.self) {
            _ = try model(latents, timesteps: t, classes: y, cache: try DiTFeatureCache(method: "fora", schedule: try FORA.schedule(
                FORA.Parameters(numSteps: 1, interval: 1, numLayers: 2)), layers: 2), merging: on)
        }
    }

    @Test func defaultMaxDownsampleIsAnExplicitNoOpOnPatchSizeTwo() throws {
        let m = try merging(ToMeSD.Parameters())
        #expect(m.plan.downsample == 2 && !m.plan.applies)
        let reason = try #require(m.noOpReason)
        #expect(reason.contains("patch size of 2") && reason.contains("max_downsample ≥ 2"), "\(reason)")
        #expect(try merging(ToMeSD.Parameters(maxDownsample: 2)).noOpReason == nil)
        #expect(try merging(ToMeSD.Parameters(ratio: 0, maxDownsample: 2)).noOpReason?.contains("nothing to merge") == true)
        // A grid with no whole cell fails before the run, as the code would at its first block.
        #expect(throws: ModelError.self) { _ = try merging(ToMeSD.Parameters(maxDownsample: 2, sx: 5)) }
    }

    @Test func adapterReadsTomesdsArguments() throws {
        let a = DiffusionToMeSDCompression.adapter
        #expect(a.method == "tomesd")
        guard case .tokenMerging(let d) = try a.make() else { Issue.record("not token merging"); return }
        #expect(d.parameters == ToMeSD.Parameters() && d.seed == 0 && d.recordedDestinations == nil)
        guard case .tokenMerging(let s) = try a.make(parameters: ["ratio": "0.3", "max_downsample": "2", "sx": "1", "sy": "2", "use_rand": "false",
                                                                   "merge_attn": "0", "merge_crossattn": "1", "merge_mlp": "yes", "seed": "7"]) else {
            Issue.record("not token merging"); return
        }
        #expect(s.parameters == ToMeSD.Parameters(ratio: 0.3, maxDownsample: 2, sx: 1, sy: 2, useRand: false, mergeAttention: false,
                                                  mergeCrossAttention: true, mergeMLP: true))
        #expect(s.seed == 7)
        func message(_ values: [String: String]) -> String { do { _ = try a.make(parameters: values); return "" } catch { return "\(error)" } }
        #expect(message(["r": "4"]).contains("unknown parameter(s) r"))
        #expect(message(["ratio": "1.5"]).contains("ratio"))
        #expect(message(["max_downsample": "0"]).contains("maxDownsample"))
        #expect(message(["seed": "-1"]).contains("seed"))
        #expect(message(["use_rand": "maybe"]).contains("boolean"))
    }
}
