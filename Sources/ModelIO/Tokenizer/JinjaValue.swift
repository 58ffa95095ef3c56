import Foundation

/// A value inside the chat-template interpreter, with Python/Jinja semantics where templates rely
/// on them (truthiness, `str()` forms, equality across int and float).
public indirect enum JinjaValue: Sendable {
    case undefined
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    /// Keys in insertion order, as Python dicts keep them.
    case dict([(String, JinjaValue)])
    /// `namespace(...)`: the one mutable object, so that `set ns.x` inside a loop is seen outside.
    case namespace(JinjaNamespace)

    public static func object(_ pairs: KeyValuePairs<String, JinjaValue>) -> JinjaValue {
        .dict(pairs.map { ($0.key, $0.value) })
    }

    var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace: return true
        }
    }

    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        }
    }

    func lookup(_ key: String) -> JinjaValue? {
        switch self {
        case .dict(let pairs): return pairs.first { $0.0 == key }?.1
        case .namespace(let ns): return ns.values[key]
        default: return nil
        }
    }

    /// Python's `str()`: what `{{ }}` and `~` print.
    var printed: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return repr
        }
    }

    /// Python's `repr()`, used for items inside printed lists and dicts.
    var repr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return d == d.rounded() && abs(d) < 1e16 ? String(format: "%.1f", d) : String(d)
        case .string(let s):
            let escaped = s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
                .replacingOccurrences(of: "\n", with: "\\n")
            return "'" + escaped + "'"
        case .list(let l): return "[" + l.map(\.repr).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.map { "'\($0.0)': \($0.1.repr)" }.joined(separator: ", ") + "}"
        case .namespace: return "<Namespace>"
        }
    }

    /// JSON text, for the `tojson` filter.
    var json: String {
        switch self {
        case .undefined, .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int(let i): return String(i)
        case .double(let d): return String(d)
        case .string(let s): return JSONValue.quoted(s)
        case .list(let l): return "[" + l.map(\.json).joined(separator: ", ") + "]"
        case .dict(let d): return "{" + d.map { JinjaValue.string($0.0).json + ": " + $0.1.json }.joined(separator: ", ") + "}"
        case .namespace(let ns): return JinjaValue.dict(ns.values.sorted { $0.key < $1.key }.map { ($0.key, $0.value) }).json
        }
    }

    static func equal(_ a: JinjaValue, _ b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        case (.double(let x), .double(let y)): return x == y
        case (.string(let x), .string(let y)): return x == y
        case (.list(let x), .list(let y)): return x.count == y.count && zip(x, y).allSatisfy { equal($0, $1) }
        case (.dict(let x), .dict(let y)):
            return x.count == y.count && x.allSatisfy { kv in y.contains { $0.0 == kv.0 && equal($0.1, kv.1) } }
        default: return false
        }
    }
}

/// Storage of a Jinja `namespace()` object.
public final class JinjaNamespace: @unchecked Sendable {
    var values: [String: JinjaValue]
    init(_ values: [String: JinjaValue]) { self.values = values }
}
