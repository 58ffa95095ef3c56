import Foundation
import ModelIO

/// A folder's config.json, parsed, with its architecture name.
struct ModelConfigFile {
    let path: String
    let reader: ConfigReader
    let architecture: String

    init(folder: String) throws {
        path = URL(fileURLWithPath: folder).appendingPathComponent("config.json").path
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError("\(folder): no config.json (expected a Hugging Face model folder)")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw ModelError("\(path): cannot parse: \(error)")
        }
        reader = try ConfigReader(json, context: path, defaultsType: json["model_type"]?.stringValue) { ModelError($0) }
        if let first = json["architectures"]?.arrayValue?.first?.stringValue {
            architecture = first
        } else if let type = json["model_type"]?.stringValue {
            let byType = ["llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "clip_vision_model": "CLIPVisionModel",
                          "siglip_vision_model": "SiglipVisionModel", "llava": "LlavaForConditionalGeneration",
                          "llava_next": "LlavaNextForConditionalGeneration",
                          "llava_onevision": "LlavaOnevisionForConditionalGeneration", "vit": "ViTForImageClassification",
                          "deit": "DeiTForImageClassification", "clip": "CLIPModel"]
            guard let a = byType[type] else {
                throw ModelError("\(path): unsupported model_type '\(type)' (supported: \(byType.keys.sorted().joined(separator: ", ")))")
            }
            architecture = a
        } else {
            throw ModelError("\(path): neither 'architectures' nor 'model_type' says which model this is")
        }
    }

    func require(_ allowed: [String]) throws {
        guard allowed.contains(architecture) else {
            throw ModelError("\(path): architecture '\(architecture)' is not supported here (expected \(allowed.joined(separator: " or ")); this module runs \(Models.supportedArchitectures.joined(separator: ", ")))")
        }
    }
}
