import Foundation
import Testing
@testable import Models

/// Writes a config.json into a fresh temporary folder.
func modelsConfigFolder(_ json: String) throws -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("models-config-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    try json.write(to: folder.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
    return folder.path
}

@Suite struct ModelConfigTests {
    @Test func supportedArchitecturesAreListed() throws {
        #expect(Models.supportedArchitectures.contains("LlavaNextForConditionalGeneration"))
        #expect(try Models.architecture(ofFolder: modelsFixture("qwen2-bf16")) == "Qwen2ForCausalLM")
    }

    @Test func genericLoaderPicksTheArchitecture() throws {
        guard case .vision = try Models.load(folder: modelsFixture("siglip-vision")) else { Issue.record("siglip"); return }
        guard case .decoder = try Models.load(folder: modelsFixture("qwen2-bf16")) else { Issue.record("qwen2"); return }
        guard case .llava(let m) = try Models.load(folder: modelsFixture("llava-next-tall")) else { Issue.record("next"); return }
        #expect(m.config.variant == .next)
        let folder = try modelsConfigFolder(#"{"architectures": ["BertModel"]}"#)
        #expect(throws: ModelError.self) { try Models.load(folder: folder) }
    }

    @Test func llavaHfStyleTextConfigUsesLlamaDefaults() throws {
        let folder = try modelsConfigFolder("""
        {"architectures": ["LlavaForConditionalGeneration"], "image_token_index": 32000, "model_type": "llava",
         "text_config": {"model_type": "llama", "rms_norm_eps": 1e-05, "vocab_size": 32064, "max_position_embeddings": 4096},
         "vision_config": {"hidden_size": 1024, "image_size": 336, "intermediate_size": 4096, "model_type": "clip_vision_model",
                           "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14},
         "vision_feature_layer": -2, "vision_feature_select_strategy": "default"}
        """)
        let c = try LlavaConfig.load(folder: folder)
        #expect(c.text.hiddenSize == 4096 && c.text.layers == 32 && c.text.vocabSize == 32064)
        #expect(c.vision.hiddenAct == "quick_gelu" && c.vision.tokenCount == 577)
        #expect(c.featuresPerTile == 576 && c.imageTokenID == 32000 && c.visionFeatureLayers == [-2])
    }

    @Test func badConfigsGiveClearErrors() throws {
        func message(_ json: String, _ load: (String) throws -> Void) throws -> String {
            let folder = try modelsConfigFolder(json)
            do { try load(folder) } catch let e as ModelError { return e.message }
            return "no error"
        }
        let llama = { (f: String) in _ = try LlamaConfig.load(folder: f) }
        #expect(try message(#"{"architectures": ["MistralForCausalLM"]}"#, llama).contains("not supported"))
        #expect(try message(#"{"architectures": ["LlamaForCausalLM"], "num_attention_heads": 6, "num_key_value_heads": 4}"#, llama).contains("multiple"))
        #expect(try message(#"{"architectures": ["LlamaForCausalLM"], "rope_scaling": {"rope_type": "linear", "factor": 2}}"#, llama).contains("linear"))
        #expect(try message(#"{"architectures": ["LlamaForCausalLM"], "hidden_size": "big"}"#, llama).contains("hidden_size"))
        #expect(try message(#"{"model_type": "gpt2"}"#, llama).contains("gpt2"))
        let llava = { (f: String) in _ = try LlavaConfig.load(folder: f) }
        #expect(try message(#"{"architectures": ["LlavaForConditionalGeneration"], "vision_config": {}}"#, llava).contains("text_config"))
        #expect(try message(#"{"architectures": ["LlavaForConditionalGeneration"], "text_config": {}, "vision_config": {}, "vision_feature_layer": 40}"#, llava).contains("out of range"))
        #expect(try message(#"{"architectures": ["LlavaForConditionalGeneration"], "text_config": {}, "vision_config": {"model_type": "siglip_vision_model"}}"#, llava).contains("full"))
        #expect(try message(#"{"architectures": ["LlavaNextForConditionalGeneration"], "text_config": {}, "vision_config": {"image_size": 336}, "image_grid_pinpoints": [[336, 500]]}"#, llava).contains("multiple"))
        #expect(try message(#"{"architectures": ["LlavaForConditionalGeneration"], "text_config": {}, "vision_config": {"model_type": "dinov2"}}"#, llava).contains("dinov2"))
    }

    @Test func missingFolderAndWeights() throws {
        #expect(throws: ModelError.self) { try LlavaModel.load(folder: "/nonexistent/folder") }
        // A LLaVA config over a decoder-only checkpoint: no vision tower weights.
        let store = try WeightStore(folder: modelsFixture("llama"))
        let config = try LlavaConfig.load(folder: modelsFixture("llava"))
        #expect(throws: ModelError.self) { try LlavaModel(config: config, store: store) }
    }
}
