/// transformers' class defaults for the config fields Hugging Face folders leave out.
///
/// `save_pretrained` omits every field equal to the class default (a llava-hf `text_config` often
/// holds only `model_type` and `vocab_size`), so readers must know them. This is the one table:
/// the model runtime (`Models`) and the FLOPs calculator (`Evaluation`) both read configs through
/// `ConfigReader`, which looks here. An absent `num_key_value_heads` means multi-head attention
/// (transformers sets it to `num_attention_heads` when None) except where the class default is GQA
/// (Mistral: 8).
public enum TransformersDefaults {
    /// Defaults by `model_type`.
    public static let byModelType: [String: [String: JSONValue]] = [
        "llama": ["hidden_size": .number(4096), "intermediate_size": .number(11008), "num_hidden_layers": .number(32),
                  "num_attention_heads": .number(32), "vocab_size": .number(32000), "rms_norm_eps": .number(1e-6),
                  "rope_theta": .number(10000), "hidden_act": .string("silu"), "max_position_embeddings": .number(2048)],
        "mistral": ["hidden_size": .number(4096), "intermediate_size": .number(14336), "num_hidden_layers": .number(32),
                    "num_attention_heads": .number(32), "num_key_value_heads": .number(8), "vocab_size": .number(32000)],
        "qwen2": ["hidden_size": .number(4096), "intermediate_size": .number(22016), "num_hidden_layers": .number(32),
                  "num_attention_heads": .number(32), "vocab_size": .number(151936),
                  "rms_norm_eps": .number(1e-6), "rope_theta": .number(10000), "hidden_act": .string("silu"),
                  "max_position_embeddings": .number(32768)],
        "clip_vision_model": ["hidden_size": .number(768), "intermediate_size": .number(3072), "num_hidden_layers": .number(12),
                              "num_attention_heads": .number(12), "image_size": .number(224), "patch_size": .number(32),
                              "num_channels": .number(3), "hidden_act": .string("quick_gelu"), "layer_norm_eps": .number(1e-5)],
        "siglip_vision_model": ["hidden_size": .number(768), "intermediate_size": .number(3072), "num_hidden_layers": .number(12),
                                "num_attention_heads": .number(12), "image_size": .number(224), "patch_size": .number(16),
                                "num_channels": .number(3), "hidden_act": .string("gelu_pytorch_tanh"), "layer_norm_eps": .number(1e-6)],
        // ViTConfig / DeiTConfig (google/vit-base-patch16-224, facebook/deit-base-distilled-patch16-224 layouts).
        "vit": vitDefaults,
        "deit": vitDefaults,
        // CLIPConfig (top level) and CLIPTextConfig; the vision side is clip_vision_model.
        "clip": ["projection_dim": .number(512), "logit_scale_init_value": .number(2.6592)],
        "clip_text_model": ["vocab_size": .number(49408), "hidden_size": .number(512), "intermediate_size": .number(2048),
                            "num_hidden_layers": .number(12), "num_attention_heads": .number(8),
                            "max_position_embeddings": .number(77), "hidden_act": .string("quick_gelu"),
                            "layer_norm_eps": .number(1e-5), "bos_token_id": .number(49406), "eos_token_id": .number(49407),
                            "pad_token_id": .number(1), "projection_dim": .number(512)],
        // LlavaOnevisionConfig (its text_config defaults to qwen2, its vision_config to siglip_vision_model).
        "llava_onevision": ["image_token_index": .number(151646), "video_token_index": .number(151647),
                            "projector_hidden_act": .string("gelu"), "vision_feature_select_strategy": .string("full"),
                            "vision_feature_layer": .number(-1), "vision_aspect_ratio": .string("anyres_max_9"),
                            "image_grid_pinpoints": onevisionPinpoints],
    ]

    private static let vitDefaults: [String: JSONValue] = [
        "hidden_size": .number(768), "intermediate_size": .number(3072), "num_hidden_layers": .number(12),
        "num_attention_heads": .number(12), "image_size": .number(224), "patch_size": .number(16), "num_channels": .number(3),
        "hidden_act": .string("gelu"), "layer_norm_eps": .number(1e-12), "qkv_bias": .bool(true)]

    /// `LlavaOnevisionConfig`'s (and `LlavaOnevisionImageProcessor`'s) default `image_grid_pinpoints`:
    /// every (height, width) with both sides in 384, 768, …, 2304.
    public static let onevisionPinpoints: JSONValue = .array(
        (1...6).flatMap { h in (1...6).map { w in JSONValue.array([.number(Double(384 * h)), .number(Double(384 * w))]) } })

    public static func value(_ key: String, modelType: String) -> JSONValue? { byModelType[modelType]?[key] }
}
