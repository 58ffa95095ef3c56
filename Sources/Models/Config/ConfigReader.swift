import Foundation
import ModelIO

/// Typed access to one JSON object of a config, with errors that name the file and the key.
///
/// Hugging Face configs omit fields that equal the library's defaults (llava-hf `text_config`
/// often has only `vocab_size`), so every accessor takes the default transformers would use.
struct ConfigReader {
    let json: JSONValue
    /// Where this object lives, e.g. "config.json text_config".
    let context: String

    init(_ json: JSONValue, context: String) throws {
        guard json.objectValue != nil else { throw ModelError("\(context): expected a JSON object") }
        self.json = json
        self.context = context
    }

    func has(_ key: String) -> Bool { if let v = json[key] { return !v.isNull } else { return false } }

    func int(_ key: String, default value: Int? = nil) throws -> Int {
        guard let v = json[key], !v.isNull else {
            if let value { return value }
            throw ModelError("\(context): missing required integer field '\(key)'")
        }
        guard let i = v.intValue else { throw ModelError("\(context): field '\(key)' must be an integer, found \(v)") }
        return i
    }

    func positiveInt(_ key: String, default value: Int? = nil) throws -> Int {
        let i = try int(key, default: value)
        guard i > 0 else { throw ModelError("\(context): field '\(key)' must be positive, found \(i)") }
        return i
    }

    func double(_ key: String, default value: Double? = nil) throws -> Double {
        guard let v = json[key], !v.isNull else {
            if let value { return value }
            throw ModelError("\(context): missing required number field '\(key)'")
        }
        guard let d = v.doubleValue else { throw ModelError("\(context): field '\(key)' must be a number, found \(v)") }
        return d
    }

    func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let v = json[key], !v.isNull else { return value }
        guard let b = v.boolValue else { throw ModelError("\(context): field '\(key)' must be true or false, found \(v)") }
        return b
    }

    func string(_ key: String, default value: String? = nil) throws -> String {
        guard let v = json[key], !v.isNull else {
            if let value { return value }
            throw ModelError("\(context): missing required string field '\(key)'")
        }
        guard let s = v.stringValue else { throw ModelError("\(context): field '\(key)' must be a string, found \(v)") }
        return s
    }

    /// An integer or a list of integers (`eos_token_id`, `vision_feature_layer`).
    func intList(_ key: String) throws -> [Int]? {
        guard let v = json[key], !v.isNull else { return nil }
        if let i = v.intValue { return [i] }
        guard let a = v.arrayValue else { throw ModelError("\(context): field '\(key)' must be an integer or a list of integers, found \(v)") }
        let ints = a.compactMap(\.intValue)
        guard ints.count == a.count else { throw ModelError("\(context): field '\(key)' must be a list of integers, found \(v)") }
        return ints
    }

    func child(_ key: String) throws -> ConfigReader? {
        guard let v = json[key], !v.isNull else { return nil }
        return try ConfigReader(v, context: "\(context) \(key)")
    }
}

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
        reader = try ConfigReader(json, context: path)
        if let first = json["architectures"]?.arrayValue?.first?.stringValue {
            architecture = first
        } else if let type = json["model_type"]?.stringValue {
            let byType = ["llama": "LlamaForCausalLM", "qwen2": "Qwen2ForCausalLM", "clip_vision_model": "CLIPVisionModel",
                          "siglip_vision_model": "SiglipVisionModel", "llava": "LlavaForConditionalGeneration",
                          "llava_next": "LlavaNextForConditionalGeneration"]
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
