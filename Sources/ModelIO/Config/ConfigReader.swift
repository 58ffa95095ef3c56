/// Typed access to one JSON object of a Hugging Face config, with errors that name the file and
/// the key, and transformers' defaults for the fields a folder leaves out.
///
/// A value comes from the file, else from `TransformersDefaults` for `defaultsType`, else from the
/// caller's `default:`; a field with none of the three is an error naming it. Every value taken
/// from the table is listed in `defaulted` (shared by a reader and its children), so a tool can
/// say what it assumed. Each module throws its own error type (`makeError`).
public struct ConfigReader {
    public let json: JSONValue
    /// Where this object lives, for errors, e.g. "/m/config.json text_config".
    public let context: String
    /// Its name in `defaulted` entries, e.g. "text_config".
    public let section: String
    /// The `model_type` whose transformers defaults fill absent fields (nil: no table defaults).
    public let defaultsType: String?
    let makeError: (String) -> Error
    private let log: DefaultsLog

    final class DefaultsLog { var entries: [String] = [] }

    public init(_ json: JSONValue, context: String, section: String = "config", defaultsType: String? = nil,
                error makeError: @escaping (String) -> Error) throws {
        self.init(json: json, context: context, section: section, defaultsType: defaultsType, makeError: makeError, log: DefaultsLog())
        guard json.objectValue != nil else { throw makeError("\(context): expected a JSON object") }
    }

    private init(json: JSONValue, context: String, section: String, defaultsType: String?, makeError: @escaping (String) -> Error,
                 log: DefaultsLog) {
        self.json = json
        self.context = context
        self.section = section
        self.defaultsType = defaultsType
        self.makeError = makeError
        self.log = log
    }

    /// `section.key = value (model_type default)` for each value taken from the defaults table.
    public var defaulted: [String] { log.entries }

    public func has(_ key: String) -> Bool { if let v = json[key] { return !v.isNull } else { return false } }

    /// The same reader with defaults of another `model_type`.
    public func withDefaults(of modelType: String?) -> ConfigReader {
        ConfigReader(json: json, context: context, section: section, defaultsType: modelType, makeError: makeError, log: log)
    }

    /// The file's value, else the table's (recorded), else nil.
    private func lookup(_ key: String) -> JSONValue? {
        if let v = json[key], !v.isNull { return v }
        guard let type = defaultsType, let d = TransformersDefaults.value(key, modelType: type) else { return nil }
        log.entries.append("\(section).\(key) = \(d) (\(type) default)")
        return d
    }

    public func int(_ key: String, default value: Int? = nil) throws -> Int {
        guard let v = lookup(key) else {
            if let value { return value }
            throw makeError("\(context): missing required integer field '\(key)'\(defaultsType.map { " (model_type '\($0)' has no default for it)" } ?? "")")
        }
        guard let i = v.intValue else { throw makeError("\(context): field '\(key)' must be an integer, found \(v)") }
        return i
    }

    public func positiveInt(_ key: String, default value: Int? = nil) throws -> Int {
        let i = try int(key, default: value)
        guard i > 0 else { throw makeError("\(context): field '\(key)' must be positive, found \(i)") }
        return i
    }

    public func double(_ key: String, default value: Double? = nil) throws -> Double {
        guard let v = lookup(key) else {
            if let value { return value }
            throw makeError("\(context): missing required number field '\(key)'")
        }
        guard let d = v.doubleValue else { throw makeError("\(context): field '\(key)' must be a number, found \(v)") }
        return d
    }

    public func bool(_ key: String, default value: Bool) throws -> Bool {
        guard let v = lookup(key) else { return value }
        guard let b = v.boolValue else { throw makeError("\(context): field '\(key)' must be true or false, found \(v)") }
        return b
    }

    public func string(_ key: String, default value: String? = nil) throws -> String {
        guard let v = lookup(key) else {
            if let value { return value }
            throw makeError("\(context): missing required string field '\(key)'")
        }
        guard let s = v.stringValue else { throw makeError("\(context): field '\(key)' must be a string, found \(v)") }
        return s
    }

    /// An integer or a list of integers (`eos_token_id`, `vision_feature_layer`), from the file or
    /// the defaults table; nil when neither has it.
    public func intList(_ key: String) throws -> [Int]? {
        guard let v = lookup(key) else { return nil }
        if let i = v.intValue { return [i] }
        guard let a = v.arrayValue else { throw makeError("\(context): field '\(key)' must be an integer or a list of integers, found \(v)") }
        let ints = a.compactMap(\.intValue)
        guard ints.count == a.count else { throw makeError("\(context): field '\(key)' must be a list of integers, found \(v)") }
        return ints
    }

    /// The raw value at `key` from the file, else from the defaults table (recorded), else nil: for
    /// structured fields such as `image_grid_pinpoints`.
    public func value(_ key: String) -> JSONValue? { lookup(key) }

    /// The object at `key` (nil when absent), with the defaults of its own `model_type` unless given.
    public func child(_ key: String, defaultsType: String? = nil) throws -> ConfigReader? {
        guard let v = json[key], !v.isNull else { return nil }
        guard v.objectValue != nil else { throw makeError("\(context) \(key): expected a JSON object") }
        return ConfigReader(json: v, context: "\(context) \(key)", section: key,
                            defaultsType: defaultsType ?? v["model_type"]?.stringValue, makeError: makeError, log: log)
    }
}
