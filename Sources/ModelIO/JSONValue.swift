import Foundation

/// A parsed JSON document (config.json, safetensors headers, conformance params).
///
/// Hugging Face configs and case parameters are open-ended, so they are read as a tree and
/// queried by key with typed accessors that explain what was missing or mistyped.
public enum JSONValue: Sendable, Equatable, CustomStringConvertible {
    case null
    case bool(Bool)
    case number(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    /// Parses UTF-8 JSON text; errors give the byte offset of the problem.
    public static func parse(_ data: Data) throws -> JSONValue {
        var parser = JSONParser(bytes: [UInt8](data))
        let value = try parser.parseDocument()
        return value
    }

    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] }
        return nil
    }

    public var isNull: Bool { self == .null }
    public var objectValue: [String: JSONValue]? { if case .object(let o) = self { return o } else { return nil } }
    public var arrayValue: [JSONValue]? { if case .array(let a) = self { return a } else { return nil } }
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    public var boolValue: Bool? { if case .bool(let b) = self { return b } else { return nil } }
    public var doubleValue: Double? { if case .number(let d) = self { return d } else { return nil } }
    /// The number as an integer when it is integral.
    public var intValue: Int? {
        if case .number(let d) = self, d.rounded() == d, abs(d) < 9.0e15 { return Int(d) }
        return nil
    }

    public var description: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return String(b)
        // JSON has no NaN or infinity: such a value (e.g. the PSNR of identical images) is written as null.
        case .number(let d): return !d.isFinite ? "null" : d.rounded() == d && abs(d) < 1e15 ? String(Int(d)) : String(d)
        case .string(let s): return Self.quoted(s)
        case .array(let a): return "[" + a.map(\.description).joined(separator: ", ") + "]"
        case .object(let o):
            return "{" + o.keys.sorted().map { "\(Self.quoted($0)): \(o[$0]!.description)" }.joined(separator: ", ") + "}"
        }
    }

    /// `s` as a JSON string literal: quotes, backslashes and control characters escaped (a model path or
    /// a prompt may hold any of them), everything else as is (JSON text is UTF-8).
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// Pretty, key-sorted JSON text.
    public func formatted(indent: String = "") -> String {
        let next = indent + "  "
        switch self {
        case .array(let a) where !a.isEmpty && a.contains(where: { $0.objectValue != nil || $0.arrayValue != nil }):
            return "[\n" + a.map { next + $0.formatted(indent: next) }.joined(separator: ",\n") + "\n\(indent)]"
        case .object(let o) where !o.isEmpty:
            return "{\n" + o.keys.sorted().map { "\(next)\(Self.quoted($0)): \(o[$0]!.formatted(indent: next))" }
                .joined(separator: ",\n") + "\n\(indent)}"
        default: return description
        }
    }
}

/// A JSON document that could not be parsed or did not have the expected shape.
public struct JSONError: Error, CustomStringConvertible {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}
