import Foundation

/// Typed reads of an image or video processor config (`preprocessor_config.json`,
/// `video_preprocessor_config.json`): flags and per-channel triples, errors naming the file kind and key.
struct ProcessorConfigFields {
    let config: JSONValue
    /// "preprocessor config" or "video preprocessor config", for errors.
    let kind: String

    func bool(_ key: String, _ fallback: Bool) throws -> Bool {
        guard let v = config[key], !v.isNull else { return fallback }
        guard let b = v.boolValue else { throw ImageError(path: nil, "\(kind) '\(key)' must be true or false, got \(v)") }
        return b
    }

    /// A number (used for all three channels) or three numbers.
    func triple(_ key: String, _ fallback: [Double]) throws -> [Double] {
        guard let v = config[key], !v.isNull else { return fallback }
        if let d = v.doubleValue { return [d, d, d] }
        let ds = v.arrayValue?.compactMap(\.doubleValue) ?? []
        guard v.arrayValue?.count == 3, ds.count == 3 else {
            throw ImageError(path: nil, "\(kind) '\(key)' must be a number or 3 numbers, got \(v)")
        }
        return ds
    }
}
