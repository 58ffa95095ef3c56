import Foundation
import Testing
import ModelIO
import Tensors
@testable import Models

/// Parity of the DiT transformer and the AutoencoderKL decoder with diffusers on the tiny random
/// pipeline of tools/fixtures/make_dit_fixtures.py (transformer stored F16, VAE stored BF16).
@Suite struct DiffusionModelTests {
    let folder = modelsFixture("dit-tiny")

    /// max |a − b| / max |b|.
    func relativeError(_ a: Tensor, _ b: Tensor) -> Float {
        let scale = b.values.map(abs).max() ?? 0
        return modelsMaxAbs(a, b) / max(scale, 1e-12)
    }

    @Test func transformerForwardMatchesDiffusers() throws {
        let model = try DiTTransformer(folder: folder + "/transformer")
        let ref = try ModelsReference("dit-tiny")
        let x = try ref.tensor("transformer_input")  // [2, 4, 8, 8]
        let plane = x.count / 2
        let latents = try (0..<2).map { try Tensor(shape: [4, 8, 8], values: Array(x.values[($0 * plane)..<(($0 + 1) * plane)])) }
        let out = try model(latents, timesteps: try ref.ints("transformer_timesteps").map(Float.init),
                            classes: try ref.ints("transformer_classes"))
        let expected = try ref.tensor("transformer_output")
        #expect(out.count == 2 && out[0].shape == [8, 8, 8])
        let joined = try Tensor(shape: expected.shape, values: out.flatMap(\.values))
        let err = relativeError(joined, expected)
        #expect(err < 2e-5, "relative error \(err)")
        #expect(model.config.learnedSigma && model.config.nullClass == 1000)
    }

    @Test func vaeDecodeMatchesDiffusers() throws {
        let vae = try VAEDecoder(folder: folder + "/vae")
        let ref = try ModelsReference("dit-tiny")
        let z = try ref.tensor("vae_latents").reshaped([4, 8, 8])
        let out = try vae(z)
        let expected = try ref.tensor("vae_sample")
        #expect(out.shape == [3, 16, 16])
        let err = modelsMaxAbs(out, expected)
        #expect(err < 2e-5, "max abs error \(err)")
        #expect(vae.config.upscale == 2 && vae.config.scalingFactor == 0.18215)
    }

    @Test func transformerRejectsBadInput() throws {
        let model = try DiTTransformer(folder: folder + "/transformer")
        let good = Tensor(zeros: [4, 8, 8])
        #expect(throws: ModelError.self) { try model([Tensor(zeros: [4, 6, 6])], timesteps: [1], classes: [0]) }
        #expect(throws: ModelError.self) { try model([good], timesteps: [1], classes: [1001]) }
        #expect(throws: ModelError.self) { try model([good], timesteps: [1, 2], classes: [0]) }
    }

    /// A copy of the fixture's transformer folder with its config edited.
    func editedTransformer(_ edit: (inout [String: JSONValue]) -> Void) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("dit-config-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let src = URL(fileURLWithPath: folder + "/transformer")
        try FileManager.default.copyItem(at: src.appendingPathComponent("diffusion_pytorch_model.safetensors"),
                                         to: dir.appendingPathComponent("diffusion_pytorch_model.safetensors"))
        var json = try JSONValue.parse(try Data(contentsOf: src.appendingPathComponent("config.json"))).objectValue!
        edit(&json)
        try Data(JSONValue.object(json).description.utf8).write(to: dir.appendingPathComponent("config.json"))
        return dir.path
    }

    @Test func inconsistentConfigsAreClearErrors() throws {
        func message(_ edit: (inout [String: JSONValue]) -> Void) throws -> String {
            let dir = try editedTransformer(edit)
            defer { try? FileManager.default.removeItem(atPath: dir) }
            do { _ = try DiTTransformer(folder: dir); return "" } catch { return "\(error)" }
        }
        #expect(try message { $0["num_layers"] = .number(3) }.contains("transformer_blocks.2"))
        #expect(try message { $0["num_attention_heads"] = .number(4) }.contains("config implies"))
        #expect(try message { $0["norm_type"] = .string("ada_norm_single") }.contains("norm_type"))
        #expect(try message { $0["out_channels"] = .number(5) }.contains("out_channels"))
        #expect(try message { $0["sample_size"] = .number(7) }.contains("sample_size"))
        #expect(try message { $0["num_embeds_ada_norm"] = .number(10) }.contains("null class"))
        #expect(try message { $0["_class_name"] = .string("UNet2DModel") }.contains("not a DiT transformer"))
        #expect(try message { $0["num_layers"] = .string("two") }.contains("must be an integer"))
    }

    @Test func sinCosPositionsPutColumnsFirst() {
        let p = DiffusionEmbeddings.sinCos2D(dim: 8, grid: 3, baseSize: 3)
        // Token (row 1, col 2): first half sin/cos of the column 2, second half of the row 1.
        let row = p.row(1 * 3 + 2)
        #expect(abs(row[0] - sin(2)) < 1e-6 && abs(row[2] - cos(2)) < 1e-6)
        #expect(abs(row[4] - sin(1)) < 1e-6 && abs(row[6] - cos(1)) < 1e-6)
    }

    @Test func convolutionMatchesDirectSum() throws {
        // 2 → 3 channels, 3×3 kernel, stride 2, padding 1 on a 5×4 input, against the definition.
        let input = try Tensor(shape: [2, 5, 4], values: (0..<40).map { Float($0 % 7) - 3 })
        let weight = (0..<54).map { Float($0 % 5) * 0.25 - 0.5 }
        let bias = try Tensor(shape: [3], values: [0.5, -1, 2])
        let g = Convolution.Geometry(kernel: 3, stride: 2, padding: 1)
        let out = try weight.withUnsafeBufferPointer { try Convolution.conv2d(input, weight: $0.baseAddress!, outChannels: 3, bias: bias, geometry: g) }
        #expect(out.shape == [3, 3, 2])
        for o in 0..<3 { for y in 0..<3 { for x in 0..<2 {
            var s = bias[flat: o]
            for c in 0..<2 { for i in 0..<3 { for j in 0..<3 {
                let yy = y * 2 - 1 + i, xx = x * 2 - 1 + j
                if yy >= 0, yy < 5, xx >= 0, xx < 4 { s += weight[((o * 2 + c) * 3 + i) * 3 + j] * input[flat: (c * 5 + yy) * 4 + xx] }
            } } }
            #expect(abs(out[flat: (o * 3 + y) * 2 + x] - s) < 1e-5)
        } } }
    }
}
