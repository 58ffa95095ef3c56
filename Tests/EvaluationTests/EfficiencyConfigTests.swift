import Foundation
import ModelIO
import Testing
@testable import Evaluation

/// Hugging Face config.json parsing: full text configs, llava-hf's default-omitting wrappers,
/// Qwen2-VL, and the errors for what cannot be read.
@Suite struct EfficiencyConfigTests {
    static func efficiencyParse(_ text: String) throws -> ShapeConfigParser.Parsed {
        try ShapeConfigParser.parse(try JSONValue.parse(Data(text.utf8)))
    }

    /// llava-hf/llava-1.5-7b-hf style: text_config gives only model_type and vocab; the rest are
    /// LlamaConfig defaults, which must equal the preset.
    @Test func llavaHFWrapperWithDefaults() throws {
        let p = try Self.efficiencyParse("""
        {"model_type": "llava", "text_config": {"model_type": "llama", "vocab_size": 32000},
         "vision_config": {"model_type": "clip_vision_model", "hidden_size": 1024, "image_size": 336,
           "intermediate_size": 4096, "num_attention_heads": 16, "num_hidden_layers": 24, "patch_size": 14}}
        """)
        let preset = try ShapePresets.named("llava-1.5-7b")
        #expect(p.shape.llm == preset.llm)
        #expect(p.shape.vision == preset.vision)
        #expect(p.shape.defaultVisualTokens == 576)
        #expect(p.defaulted.contains { $0.hasPrefix("text_config.hidden_size = 4096") })
    }

    @Test func qwen2TextConfigWithGQA() throws {
        let p = try Self.efficiencyParse("""
        {"model_type": "qwen2", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
         "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064}
        """)
        #expect(p.shape.llm == ShapePresets.qwen2_7B)
        #expect(p.shape.vision == nil)
        #expect(p.defaulted.isEmpty)
    }

    /// llava-v1.6-mistral style: Mistral defaults include GQA with 8 KV heads.
    @Test func mistralDefaultsKeepGQA() throws {
        let p = try Self.efficiencyParse(#"{"model_type": "llava_next", "text_config": {"model_type": "mistral"}}"#)
        #expect(p.shape.llm.kvHeads == 8 && p.shape.llm.mlpWidth == 14336)
        #expect(p.defaulted.contains { $0.hasPrefix("text_config.num_key_value_heads = 8") })
    }

    @Test func qwen2VLConfig() throws {
        let p = try Self.efficiencyParse("""
        {"model_type": "qwen2_vl", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
         "num_attention_heads": 28, "num_key_value_heads": 4, "vocab_size": 152064,
         "vision_config": {"depth": 32, "embed_dim": 1280, "mlp_ratio": 4, "num_heads": 16, "in_chans": 3,
           "hidden_size": 3584, "patch_size": 14, "spatial_merge_size": 2, "temporal_patch_size": 2}}
        """)
        let preset = try ShapePresets.named("qwen2-vl-7b")
        #expect(p.shape.llm == preset.llm)
        #expect(p.shape.vision == preset.vision)
    }

    @Test func onevisionSigLIP() throws {
        let p = try Self.efficiencyParse("""
        {"model_type": "llava_onevision", "text_config": {"model_type": "qwen2", "hidden_size": 3584,
           "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4,
           "vocab_size": 152064},
         "vision_config": {"model_type": "siglip_vision_model", "hidden_size": 1152, "image_size": 384,
           "intermediate_size": 4304, "num_attention_heads": 16, "num_hidden_layers": 26, "patch_size": 14}}
        """)
        #expect(p.shape.vision == ShapePresets.siglip384)
        #expect(p.shape.defaultVisualTokens == 729)
    }

    /// Sub-configs without `model_type` are what LlavaOnevisionConfig makes them: Qwen2 and SigLIP.
    @Test func onevisionSubConfigDefaults() throws {
        let p = try Self.efficiencyParse("""
        {"model_type": "llava_onevision", "text_config": {"hidden_size": 3584,
           "intermediate_size": 18944, "num_hidden_layers": 28, "num_attention_heads": 28, "num_key_value_heads": 4},
         "vision_config": {"hidden_size": 1152, "image_size": 384,
           "intermediate_size": 4304, "num_attention_heads": 16, "num_hidden_layers": 26, "patch_size": 14}}
        """)
        #expect(p.shape.vision == ShapePresets.siglip384)
        #expect(p.shape.llm.vocab == 151936)
    }

    @Test func clearErrors() throws {
        // Qwen2-VL vision fields have no class default here: name the missing one.
        do {
            _ = try Self.efficiencyParse("""
            {"model_type": "qwen2_vl", "hidden_size": 3584, "intermediate_size": 18944, "num_hidden_layers": 28,
             "num_attention_heads": 28, "vocab_size": 152064, "vision_config": {"model_type": "qwen2_vl", "embed_dim": 1280}}
            """)
            Issue.record("no error")
        } catch let e as FlopsError {
            #expect(e.description.contains("vision_config.depth"))
        }
        #expect(throws: FlopsError.self) { try Self.efficiencyParse(#"{"model_type": "t5"}"#) }
        #expect(throws: FlopsError.self) { try Self.efficiencyParse(#"{"model_type": "llama", "hidden_size": "big"}"#) }
        #expect(throws: FlopsError.self) { try Self.efficiencyParse(#"{"model_type": "llama", "num_attention_heads": 32, "num_key_value_heads": 5}"#) }
        #expect(throws: FlopsError.self) { try Self.efficiencyParse("[1, 2]") }
        #expect(throws: FlopsError.self) { try ShapeConfigParser.parse(fileAt: "/nonexistent/config.json") }
    }
}
