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
        guard json.objectValue != nil else { throw FlopsError.config("top level is not a JSON object") }
        var reader = ConfigFieldReader()
        let modelType = json["model_type"]?.stringValue ?? ""
        let textSection: JSONValue
        let textName: String
        if let t = json["text_config"], t.objectValue != nil {
            (textSection, textName) = (t, "text_config")
        } else {
            (textSection, textName) = (json, "config")
        }
        let llm = try reader.textShape(textSection, section: textName,
                                       fallbackType: modelType == "qwen2_vl" ? "qwen2" : "llama")
        var vision: VisionTowerShape? = nil
        var visualTokens = 0
        if let v = json["vision_config"], v.objectValue != nil {
            let parsed = try reader.visionShape(v, llmHidden: llm.hidden, wrapper: json)
            vision = parsed
            // LLaVA-NeXT's anyres default: base + 4 crops (2880); others: one pass.
            let passes = modelType == "llava_next" ? 5 : 1
            visualTokens = parsed.tokensPerPass > 0 ? parsed.tokensPerPass * passes : 1024
        }
        try llm.validate("\(textName)")
        try vision?.encoder.validate("vision_config")
        let shape = ModelShape(name: name, llm: llm, vision: vision, defaultVisualTokens: visualTokens)
        return Parsed(shape: shape, defaulted: reader.defaulted)
    }
}

/// Field access with per-`model_type` defaults, recording what was defaulted.
struct ConfigFieldReader {
    var defaulted: [String] = []

    /// transformers' class defaults for the fields llava-hf configs omit.
    static let classDefaults: [String: [String: Int]] = [
        "llama": ["hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "vocab_size": 32000],
        "mistral": ["hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32,
                    "num_attention_heads": 32, "num_key_value_heads": 8, "vocab_size": 32000],
        "qwen2": ["hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32,
                  "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 151936],
        "clip_vision_model": ["hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                              "num_attention_heads": 12, "image_size": 224, "patch_size": 32, "num_channels": 3],
        "siglip_vision_model": ["hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
                                "num_attention_heads": 12, "image_size": 224, "patch_size": 16, "num_channels": 3],
    ]

    mutating func int(_ section: JSONValue, _ key: String, sectionName: String, type: String) throws -> Int {
        if let value = section[key], !value.isNull {
            guard let i = value.intValue else { throw FlopsError.config("\(sectionName).\(key) is not an integer: \(value)") }
            return i
        }
        if let d = Self.classDefaults[type]?[key] {
            defaulted.append("\(sectionName).\(key) = \(d) (\(type) default)")
            return d
        }
        throw FlopsError.config("\(sectionName).\(key) is missing (model_type '\(type)' has no default for it)")
    }

    mutating func textShape(_ s: JSONValue, section: String, fallbackType: String) throws -> TransformerShape {
        let type = s["model_type"]?.stringValue ?? fallbackType
        guard ["llama", "mistral", "qwen2", "qwen2_vl", "qwen2_vl_text", "vicuna"].contains(type) else {
            throw FlopsError.config("\(section).model_type '\(type)' is not a supported decoder (llama, mistral, qwen2, qwen2_vl)")
        }
        let family = type.hasPrefix("qwen2") ? "qwen2" : (type == "vicuna" ? "llama" : type)
        let hidden = try int(s, "hidden_size", sectionName: section, type: family)
        let heads = try int(s, "num_attention_heads", sectionName: section, type: family)
        // Absent KV heads mean multi-head attention, except where the class default says GQA (Mistral: 8).
        let kvHeads = s["num_key_value_heads"]?.intValue != nil
            ? try int(s, "num_key_value_heads", sectionName: section, type: family)
            : (Self.classDefaults[family]?["num_key_value_heads"] != nil ? try int(s, "num_key_value_heads", sectionName: section, type: family) : heads)
        let headDim = s["head_dim"]?.intValue ?? (heads > 0 ? hidden / heads : 0)
        return TransformerShape(
            layers: try int(s, "num_hidden_layers", sectionName: section, type: family),
            hidden: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim,
            mlpWidth: try int(s, "intermediate_size", sectionName: section, type: family),
            gatedMLP: true, vocab: try int(s, "vocab_size", sectionName: section, type: family))
    }

    mutating func visionShape(_ v: JSONValue, llmHidden: Int, wrapper: JSONValue) throws -> VisionTowerShape {
        // Older Qwen2-VL configs leave the vision model_type out; the wrapper's says it.
        let wrapperType = wrapper["model_type"]?.stringValue ?? ""
        let type = v["model_type"]?.stringValue ?? (wrapperType.hasPrefix("qwen2_vl") ? "qwen2_vl" : "clip_vision_model")
        let s = "vision_config"
        switch type {
        case "clip_vision_model", "siglip_vision_model":
            let hidden = try int(v, "hidden_size", sectionName: s, type: type)
            let heads = try int(v, "num_attention_heads", sectionName: s, type: type)
            let patch = try int(v, "patch_size", sectionName: s, type: type)
            let image = try int(v, "image_size", sectionName: s, type: type)
            guard patch > 0, image >= patch else { throw FlopsError.config("\(s): image_size \(image) / patch_size \(patch) gives no patches") }
            let encoder = TransformerShape(
                layers: try int(v, "num_hidden_layers", sectionName: s, type: type), hidden: hidden, heads: heads,
                mlpWidth: try int(v, "intermediate_size", sectionName: s, type: type), gatedMLP: false)
            let side = image / patch
            return VisionTowerShape(encoder: encoder, patchSize: patch,
                                    channels: try int(v, "num_channels", sectionName: s, type: type),
                                    patchesPerPass: side * side, hasCLS: type == "clip_vision_model",
                                    projector: [hidden, llmHidden, llmHidden])
        case "qwen2_vl", "qwen2_vl_vision":
            let required = ["depth", "embed_dim", "num_heads", "patch_size", "spatial_merge_size"]
            let missing = required.filter { v[$0]?.intValue == nil }
            guard missing.isEmpty else {
                throw FlopsError.config("Qwen2-VL vision fields missing or not integers: \(missing.map { "\(s).\($0)" }.joined(separator: ", "))")
            }
            func need(_ key: String) throws -> Int {
                guard let i = v[key]?.intValue else { throw FlopsError.config("\(s).\(key) is missing or not an integer (Qwen2-VL vision)") }
                return i
            }
            let embed = try need("embed_dim"), heads = try need("num_heads"), merge = try need("spatial_merge_size")
            let ratio = v["mlp_ratio"]?.doubleValue ?? 4
            let encoder = TransformerShape(layers: try need("depth"), hidden: embed, heads: heads,
                                           mlpWidth: Int(Double(embed) * ratio), gatedMLP: false)
            let merged = embed * merge * merge
            let out = v["hidden_size"]?.intValue ?? llmHidden
            return VisionTowerShape(encoder: encoder, patchSize: try need("patch_size"),
                                    channels: v["in_chans"]?.intValue ?? v["in_channels"]?.intValue ?? 3,
                                    temporalPatch: v["temporal_patch_size"]?.intValue ?? 2,
                                    patchesPerPass: 0, hasCLS: false, mergeFactor: merge * merge,
                                    projector: [merged, merged, out])
        default:
            throw FlopsError.config("vision_config.model_type '\(type)' is not supported (clip_vision_model, siglip_vision_model, qwen2_vl)")
        }
    }
}
