import Foundation
import ModelIO

/// Reads a `ModelShape` from a Hugging Face `config.json`.
///
/// Accepted: plain LLaMA / Qwen2 / Mistral / Vicuna text configs, and the VLM wrappers whose
/// `text_config` + `vision_config` describe LLaVA, LLaVA-NeXT, LLaVA-OneVision (CLIP or SigLIP
/// towers) and Qwen2-VL (its vision fields, `depth` / `embed_dim` / `mlp_ratio`, and text fields at
/// top level or in `text_config`). The llava-hf configs leave out every field equal to the
/// transformers class default (their `text_config` often has only `model_type` and `vocab_size`),
/// so those defaults are applied per `model_type`, and every defaulted field is listed in
/// `defaulted` so the caller can show what was assumed. A field with neither a value nor a known
/// default is an error naming it.
public enum ShapeConfigParser {
    public struct Parsed: Sendable {
        public var shape: ModelShape
        /// `section.field = value` for each field taken from a class default, not the file.
        public var defaulted: [String]
    }

    public static func parse(fileAt path: String) throws -> Parsed {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw FlopsError.config("cannot read \(path)")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch { throw FlopsError.config("\(path) is not valid JSON: \(error)") }
        let name = URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
        return try parse(json, name: name.isEmpty ? path : name)
    }

    public static func parse(_ json: JSONValue, name: String = "config") throws -> Parsed {
        let top = try ConfigReader(json, context: "config.json", defaultsType: json["model_type"]?.stringValue) { FlopsError.config($0) }
        let modelType = json["model_type"]?.stringValue ?? ""
        // LlavaOnevisionConfig's text_config defaults to qwen2 (and its vision_config to SigLIP).
        let fallbackType = modelType == "qwen2_vl" || modelType == "llava_onevision" ? "qwen2" : "llama"
        let text = try top.child("text_config", defaultsType: nil) ?? top.withDefaults(of: nil)
        let textName = text.section == "text_config" ? "text_config" : "config"
        let llm = try textShape(text, fallbackType: fallbackType)
        var vision: VisionTowerShape? = nil
        var visualTokens = 0
        if let v = try top.child("vision_config", defaultsType: nil) {
            let parsed = try visionShape(v, llmHidden: llm.hidden, wrapperType: modelType)
            vision = parsed
            // LLaVA-NeXT's anyres default: base + 4 crops (2880); others: one pass.
            let passes = modelType == "llava_next" ? 5 : 1
            visualTokens = parsed.tokensPerPass > 0 ? parsed.tokensPerPass * passes : 1024
        }
        try llm.validate("\(textName)")
        try vision?.encoder.validate("vision_config")
        let perFrame = modelType == "llava_onevision" && (vision?.patchesPerPass ?? 0) > 0
            ? ModelShape.onevisionPooledTokens(patchesPerFrame: vision!.patchesPerPass) : nil
        let shape = ModelShape(name: name, llm: llm, vision: vision, defaultVisualTokens: visualTokens, videoTokensPerFrame: perFrame)
        return Parsed(shape: shape, defaulted: top.defaulted)
    }

    static func textShape(_ section: ConfigReader, fallbackType: String) throws -> TransformerShape {
        let type = section.json["model_type"]?.stringValue ?? fallbackType
        guard ["llama", "mistral", "qwen2", "qwen2_vl", "qwen2_vl_text", "vicuna"].contains(type) else {
            throw FlopsError.config("\(section.section).model_type '\(type)' is not a supported decoder (llama, mistral, qwen2, qwen2_vl)")
        }
        let r = section.withDefaults(of: type.hasPrefix("qwen2") ? "qwen2" : (type == "vicuna" ? "llama" : type))
        let hidden = try r.int("hidden_size")
        let heads = try r.int("num_attention_heads")
        let headDim = try r.int("head_dim", default: heads > 0 ? hidden / heads : 0)
        return TransformerShape(
            layers: try r.int("num_hidden_layers"), hidden: hidden, heads: heads,
            kvHeads: try r.int("num_key_value_heads", default: heads), headDim: headDim,
            mlpWidth: try r.int("intermediate_size"), gatedMLP: true, vocab: try r.int("vocab_size"))
    }

    static func visionShape(_ section: ConfigReader, llmHidden: Int, wrapperType: String) throws -> VisionTowerShape {
        // Older Qwen2-VL configs leave the vision model_type out; the wrapper's says it.
        let v = section.json
        let type = v["model_type"]?.stringValue
            ?? (wrapperType.hasPrefix("qwen2_vl") ? "qwen2_vl" : wrapperType == "llava_onevision" ? "siglip_vision_model" : "clip_vision_model")
        let s = "vision_config"
        switch type {
        case "clip_vision_model", "siglip_vision_model":
            let r = section.withDefaults(of: type)
            let hidden = try r.int("hidden_size")
            let heads = try r.int("num_attention_heads")
            let patch = try r.int("patch_size")
            let image = try r.int("image_size")
            guard patch > 0, image >= patch else { throw FlopsError.config("\(s): image_size \(image) / patch_size \(patch) gives no patches") }
            let encoder = TransformerShape(layers: try r.int("num_hidden_layers"), hidden: hidden, heads: heads,
                                           mlpWidth: try r.int("intermediate_size"), gatedMLP: false)
            let side = image / patch
            return VisionTowerShape(encoder: encoder, patchSize: patch, channels: try r.int("num_channels"),
                                    patchesPerPass: side * side, hasCLS: type == "clip_vision_model",
                                    projector: [hidden, llmHidden, llmHidden])
        case "qwen2_vl", "qwen2_vl_vision":
            let required = ["depth", "embed_dim", "num_heads", "patch_size", "spatial_merge_size"]
            let missing = required.filter { v[$0]?.intValue == nil }
            guard missing.isEmpty else {
                throw FlopsError.config("Qwen2-VL vision fields missing or not integers: \(missing.map { "\(s).\($0)" }.joined(separator: ", "))")
            }
            let r = section.withDefaults(of: nil)
            let embed = try r.int("embed_dim"), heads = try r.int("num_heads"), merge = try r.int("spatial_merge_size")
            let ratio = try r.double("mlp_ratio", default: 4)
            let encoder = TransformerShape(layers: try r.int("depth"), hidden: embed, heads: heads,
                                           mlpWidth: Int(Double(embed) * ratio), gatedMLP: false)
            let merged = embed * merge * merge
            return VisionTowerShape(encoder: encoder, patchSize: try r.int("patch_size"),
                                    channels: try r.int("in_chans", default: try r.int("in_channels", default: 3)),
                                    temporalPatch: try r.int("temporal_patch_size", default: 2),
                                    patchesPerPass: 0, hasCLS: false, mergeFactor: merge * merge,
                                    projector: [merged, merged, try r.int("hidden_size", default: llmHidden)])
        default:
            throw FlopsError.config("vision_config.model_type '\(type)' is not supported (clip_vision_model, siglip_vision_model, qwen2_vl)")
        }
    }
}
