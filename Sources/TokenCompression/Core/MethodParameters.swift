/// The NAME=VALUE settings of one method (`tokc run --param layer=3`, `tokc bench --param
/// fastv.layer=3`, `tokc schedule --param threshold=0.2`), parsed in one place and read with types.
///
/// Which names a method accepts is its adapter's business; this type only parses and converts,
/// naming the method and the offending item in every error.
public struct MethodParameters: Sendable, Equatable {
    /// Method the values belong to (for error messages; may be empty).
    public let method: String
    public let values: [String: String]

    public init(_ method: String = "", _ values: [String: String] = [:]) {
        self.method = method
        self.values = values
    }

    /// Parses `NAME=VALUE` items; a later item overrides an earlier one with the same name.
    public static func parse(_ items: [String], method: String = "") throws -> MethodParameters {
        var out: [String: String] = [:]
        for item in items {
            let (name, value) = try split(item, form: "NAME=VALUE")
            out[name] = value
        }
        return MethodParameters(method, out)
    }

    /// Parses `METHOD.NAME=VALUE` items into values per (lower-cased) method.
    public static func parseQualified(_ items: [String]) throws -> [String: [String: String]] {
        var out: [String: [String: String]] = [:]
        for item in items {
            let (qualified, value) = try split(item, form: "METHOD.NAME=VALUE")
            guard let dot = qualified.firstIndex(of: "."), dot != qualified.startIndex, qualified.index(after: dot) != qualified.endIndex else {
                throw CompressionError.invalidParameter("'\(item)' must be METHOD.NAME=VALUE")
            }
            out[String(qualified[..<dot]).lowercased(), default: [:]][String(qualified[qualified.index(after: dot)...])] = value
        }
        return out
    }

    static func split(_ item: String, form: String) throws -> (String, String) {
        guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
            throw CompressionError.invalidParameter("'\(item)' must be \(form)")
        }
        return (String(item[..<eq]), String(item[item.index(after: eq)...]))
    }

    public func has(_ key: String) -> Bool { values[key] != nil }
    public func string(_ key: String) -> String? { values[key] }

    private func fail(_ key: String, _ value: String, _ what: String) -> CompressionError {
        .invalidParameter("\(method.isEmpty ? "" : method + ": ")\(key)=\(value) is not \(what)")
    }

    /// The integer `key`, nil when absent.
    public func int(_ key: String) throws -> Int? {
        guard let s = values[key] else { return nil }
        guard let v = Int(s.trimmingWhitespace) else { throw fail(key, s, "an integer") }
        return v
    }

    public func int(_ key: String, default d: Int) throws -> Int { try int(key) ?? d }

    /// The finite number `key`, nil when absent.
    public func double(_ key: String) throws -> Double? {
        guard let s = values[key] else { return nil }
        guard let v = Double(s.trimmingWhitespace), v.isFinite else { throw fail(key, s, "a finite number") }
        return v
    }

    public func double(_ key: String, default d: Double) throws -> Double { try double(key) ?? d }

    /// `1/true/yes` or `0/false/no` (any case), nil when absent.
    public func bool(_ key: String) throws -> Bool? {
        guard let s = values[key] else { return nil }
        switch s.trimmingWhitespace.lowercased() {
        case "1", "true", "yes": return true
        case "0", "false", "no": return false
        default: throw fail(key, s, "a boolean (true/false)")
        }
    }

    public func bool(_ key: String, default d: Bool) throws -> Bool { try bool(key) ?? d }

    /// A comma-separated list of integers (`layers=8,16,24`), nil when absent.
    public func intList(_ key: String) throws -> [Int]? {
        guard let s = values[key] else { return nil }
        return try s.split(separator: ",").map { part in
            guard let v = Int(String(part).trimmingWhitespace) else { throw fail(key, s, "a comma-separated list of integers") }
            return v
        }
    }
}

extension String {
    /// Without leading and trailing spaces and tabs (no Foundation needed here).
    var trimmingWhitespace: String {
        var s = Substring(self)
        while let f = s.first, f == " " || f == "\t" { s.removeFirst() }
        while let l = s.last, l == " " || l == "\t" { s.removeLast() }
        return String(s)
    }
}
