import Foundation
import ModelIO

/// One JSON config of a diffusers folder (`transformer/config.json`, `vae/config.json`,
/// `scheduler/scheduler_config.json`, `model_index.json`), parsed, with its `_class_name`.
///
/// diffusers writes every `__init__` argument when it saves, but older folders (the DiT checkpoints on
/// the Hub) leave some out: absent fields take the class's `__init__` default, given by each reader.
public struct DiffusersConfigFile {
    public let path: String
    public let reader: ConfigReader
    /// `_class_name` (nil when the file has none).
    public let className: String?

    public init(path: String) throws {
        self.path = path
        guard FileManager.default.fileExists(atPath: path) else {
            throw ModelError("\(path): no such file (expected a diffusers pipeline folder as save_pretrained writes it)")
        }
        let json: JSONValue
        do { json = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: path))) } catch {
            throw ModelError("\(path): cannot parse: \(error)")
        }
        reader = try ConfigReader(json, context: path) { ModelError($0) }
        className = json["_class_name"]?.stringValue
    }

    /// A list of positive integers (`block_out_channels`).
    func positiveInts(_ key: String, default value: [Int]) throws -> [Int] {
        guard let v = reader.value(key) else { return value }
        guard let a = v.arrayValue, !a.isEmpty else { throw ModelError("\(path): field '\(key)' must be a non-empty list of integers, found \(v)") }
        let ints = a.compactMap(\.intValue)
        guard ints.count == a.count, ints.allSatisfy({ $0 > 0 }) else {
            throw ModelError("\(path): field '\(key)' must be a list of positive integers, found \(v)")
        }
        return ints
    }

    /// A list of strings (`up_block_types`).
    func strings(_ key: String, default value: [String]) throws -> [String] {
        guard let v = reader.value(key) else { return value }
        guard let a = v.arrayValue else { throw ModelError("\(path): field '\(key)' must be a list of strings, found \(v)") }
        let s = a.compactMap(\.stringValue)
        guard s.count == a.count else { throw ModelError("\(path): field '\(key)' must be a list of strings, found \(v)") }
        return s
    }

    /// A number that may be null (`shift_factor`).
    func optionalDouble(_ key: String) throws -> Double? {
        guard let v = reader.value(key) else { return nil }
        guard let d = v.doubleValue else { throw ModelError("\(path): field '\(key)' must be a number or null, found \(v)") }
        return d
    }
}
