import Foundation
import Testing
import ModelIO
import Tensors
@testable import Models

/// PixArt-α's transformer against diffusers' `PixArtTransformer2DModel` on the tiny random model of
/// tools/fixtures/make_dit_fixtures.py (stored F16): one forward of the guided batch (negative then
/// positive caption embeddings, each with padding masked out).
@Suite struct DiffusionPixArtTests {
    let folder = modelsFixture("pixart-tiny")

    func captions() throws -> (embeddings: [Tensor], masks: [[Float]]) {
        let file = try SafetensorsFile(path: folder + "/prompt_embeds.safetensors")
        let pos = try file.tensor("prompt_embeds").reshaped([6, 24]), neg = try file.tensor("negative_prompt_embeds").reshaped([6, 24])
        return ([neg, pos], [try file.tensor("negative_prompt_attention_mask").values, try file.tensor("prompt_attention_mask").values])
    }

    @Test func forwardMatchesDiffusers() throws {
        let model = try PixArtTransformer(folder: folder + "/transformer")
        let ref = try ModelsReference("pixart-tiny")
        let x = try ref.tensor("transformer_input").reshaped([4, 8, 8])
        let (embeddings, masks) = try captions()
        let out = try model([x, x], timesteps: try ref.ints("transformer_timesteps").map(Float.init), captions: embeddings, masks: masks)
        let expected = try ref.tensor("transformer_output")
        let joined = try Tensor(shape: expected.shape, values: out.flatMap(\.values))
        let err = modelsMaxAbs(joined, expected) / expected.values.map(abs).max()!
        #expect(err < 2e-5, "relative error \(err)")
        // The mask matters: attending to the padding changes the output.
        let unmasked = try model([x], timesteps: [723], captions: [embeddings[1]], masks: [nil])
        #expect(modelsMaxAbs(unmasked[0], out[1]) > 1e-3)
    }

    @Test func badInputAndConfigsAreClearErrors() throws {
        let model = try PixArtTransformer(folder: folder + "/transformer")
        let x = Tensor(zeros: [4, 8, 8])
        #expect(throws: ModelError.self) { try model([x], timesteps: [1], captions: [Tensor(zeros: [6, 23])], masks: [nil]) }
        #expect(throws: ModelError.self) { try model([x], timesteps: [1], captions: [Tensor(zeros: [6, 24])], masks: [[1, 1]]) }
        func message(_ edit: (inout [String: JSONValue]) -> Void) throws -> String {
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("pixart-config-\(UUID().uuidString)")
            try FileManager.default.copyItem(atPath: folder + "/transformer", toPath: dir.path)
            defer { try? FileManager.default.removeItem(at: dir) }
            let path = dir.appendingPathComponent("config.json")
            var json = try JSONValue.parse(try Data(contentsOf: path)).objectValue!
            edit(&json)
            try Data(JSONValue.object(json).description.utf8).write(to: path)
            do { _ = try PixArtTransformer(folder: dir.path); return "" } catch { return "\(error)" }
        }
        #expect(try message { $0["caption_channels"] = .null }.contains("caption_channels"))
        #expect(try message { $0["use_additional_conditions"] = .bool(true) }.contains("use_additional_conditions"))
        #expect(try message { $0["cross_attention_dim"] = .number(48) }.contains("cross_attention_dim"))
        #expect(try message { $0["caption_channels"] = .number(16) }.contains("config implies"))
        #expect(try message { $0["norm_type"] = .string("ada_norm_zero") }.contains("norm_type"))
    }
}
