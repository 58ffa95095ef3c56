import Foundation

/// The tests (`is string`), filters (`| trim`), methods (`.strip()`) and global functions
/// (`raise_exception`, `namespace`, `range`) that chat templates call, with Python's behaviour.
extension JinjaInterpreter {
    func test(_ name: String, _ v: JinjaValue, _ args: [JinjaValue]) throws -> Bool {
        switch name {
        case "defined": if case .undefined = v { return false } else { return true }
        case "undefined": if case .undefined = v { return true } else { return false }
        case "none": if case .none = v { return true } else { return false }
        case "string": if case .string = v { return true } else { return false }
        case "number": return v.number != nil && !(v.isBool)
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .double = v { return true } else { return false }
        case "boolean": return v.isBool
        case "true": if case .bool(true) = v { return true } else { return false }
        case "false": if case .bool(false) = v { return true } else { return false }
        case "mapping": if case .dict = v { return true } else { return false }
        case "sequence", "iterable":
            switch v { case .list, .string, .dict: return true; default: return false }
        case "equalto", "eq", "sameas", "==":
            guard let o = args.first else { throw TokenizerError("chat template: test '\(name)' needs an argument") }
            return JinjaValue.equal(v, o)
        case "ne", "!=":
            guard let o = args.first else { throw TokenizerError("chat template: test '\(name)' needs an argument") }
            return !JinjaValue.equal(v, o)
        case "in":
            guard let o = args.first else { throw TokenizerError("chat template: test 'in' needs an argument") }
            return try binary("in", v, o).isTruthy
        case "even", "odd":
            guard case .int(let i) = v else { throw TokenizerError("chat template: test '\(name)' needs an integer") }
            return (i % 2 == 0) == (name == "even")
        default:
            throw TokenizerError("chat template: unsupported test 'is \(name)'")
        }
    }

    func filter(_ name: String, _ v: JinjaValue, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        func kw(_ k: String) -> JinjaValue? { kwargs.first { $0.0 == k }?.1 }
        switch name {
        case "trim":
            return .string(v.printed.trimmingCharacters(in: .whitespacesAndNewlines))
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.unicodeScalars.count)
            case .list(let l): return .int(l.count)
            case .dict(let d): return .int(d.count)
            default: throw TokenizerError("chat template: 'length' of a \(v.typeName)")
            }
        case "upper": return .string(v.printed.uppercased())
        case "lower": return .string(v.printed.lowercased())
        case "capitalize":
            let s = v.printed
            return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "string": return .string(v.printed)
        case "int":
            switch v {
            case .int: return v
            case .double(let d): return .int(Int(exactly: d.rounded(.towardZero)) ?? 0)
            case .string(let s): return .int(Int(s.trimmingCharacters(in: .whitespaces)) ?? 0)
            case .bool(let b): return .int(b ? 1 : 0)
            default: return .int(0)
            }
        case "tojson": return .string(v.json)
        case "default", "d":
            let fallback = args.first ?? .string("")
            let boolean = (args.count > 1 ? args[1] : kw("boolean") ?? .bool(false)).isTruthy
            if case .undefined = v { return fallback }
            return boolean && !v.isTruthy ? fallback : v
        case "first":
            return try iterate(v, what: "'first'").first ?? .undefined
        case "last":
            return try iterate(v, what: "'last'").last ?? .undefined
        case "list":
            return .list(try iterate(v, what: "'list'"))
        case "reverse":
            if case .string(let s) = v { return .string(String(s.reversed())) }
            return .list(try iterate(v, what: "'reverse'").reversed())
        case "join":
            let sep = args.first?.printed ?? kw("d")?.printed ?? ""
            let parts = try iterate(v, what: "'join'").map(\.printed)
            try JinjaBudget.checkSize(parts.reduce(sep.utf8.count * parts.count) { $0 + $1.utf8.count }, "'join'")
            return .string(parts.joined(separator: sep))
        case "replace":
            guard args.count >= 2 else { throw TokenizerError("chat template: 'replace' needs two arguments") }
            return .string(try Self.replacing(v.printed, args[0].printed, args[1].printed))
        case "items":
            guard case .dict(let d) = v else { throw TokenizerError("chat template: 'items' of a \(v.typeName)") }
            return .list(d.map { .list([.string($0.0), $0.1]) })
        case "selectattr", "rejectattr":
            guard let attr = args.first?.printed else { throw TokenizerError("chat template: '\(name)' needs an attribute name") }
            let keep = name == "selectattr"
            return .list(try iterate(v, what: "'\(name)'").filter { item in
                let value = item.lookup(attr) ?? .undefined
                let passed = args.count > 1 ? try test(args[1].printed, value, Array(args.dropFirst(2))) : value.isTruthy
                return passed == keep
            })
        case "select", "reject":
            let keep = name == "select"
            return .list(try iterate(v, what: "'\(name)'").filter { item in
                let passed = args.isEmpty ? item.isTruthy : try test(args[0].printed, item, Array(args.dropFirst()))
                return passed == keep
            })
        case "map":
            if let attr = kw("attribute")?.printed {
                return .list(try iterate(v, what: "'map'").map { $0.lookup(attr) ?? kw("default") ?? .undefined })
            }
            guard let f = args.first?.printed else { throw TokenizerError("chat template: 'map' needs a filter or attribute=") }
            return .list(try iterate(v, what: "'map'").map { try filter(f, $0, Array(args.dropFirst()), []) })
        default:
            throw TokenizerError("chat template: unsupported filter '|\(name)'")
        }
    }

    /// `replace` with its result's size checked first (each match may grow by the replacement's length).
    static func replacing(_ s: String, _ old: String, _ new: String) throws -> String {
        let n = s.utf8.count, growth = new.utf8.count - old.utf8.count
        if growth > 0 { try JinjaBudget.checkSize(n + (n / max(old.utf8.count, 1) + 1) * growth, "replace()") }
        return s.replacingOccurrences(of: old, with: new)
    }

    func callMethod(_ base: JinjaValue, _ method: String, _ args: [JinjaValue]) throws -> JinjaValue {
        switch (base, method) {
        case (.string(let s), "strip"), (.string(let s), "lstrip"), (.string(let s), "rstrip"):
            let chars = args.first.map { CharacterSet(charactersIn: $0.printed) } ?? .whitespacesAndNewlines
            var scalars = Substring(s).unicodeScalars[...]
            if method != "rstrip" { while let f = scalars.first, chars.contains(f) { scalars = scalars.dropFirst() } }
            if method != "lstrip" { while let l = scalars.last, chars.contains(l) { scalars = scalars.dropLast() } }
            return .string(String(String.UnicodeScalarView(scalars)))
        case (.string(let s), "upper"): return .string(s.uppercased())
        case (.string(let s), "lower"): return .string(s.lowercased())
        case (.string(let s), "title"): return .string(s.capitalized)
        case (.string(let s), "capitalize"): return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case (.string(let s), "startswith"): return .bool(s.hasPrefix(args.first?.printed ?? ""))
        case (.string(let s), "endswith"): return .bool(s.hasSuffix(args.first?.printed ?? ""))
        case (.string(let s), "replace"):
            guard args.count >= 2 else { throw TokenizerError("chat template: replace() needs two arguments") }
            return .string(try Self.replacing(s, args[0].printed, args[1].printed))
        case (.string(let s), "split"):
            if let sep = args.first, case .string(let sp) = sep {
                return .list(s.components(separatedBy: sp).map { .string($0) })
            }
            return .list(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
        case (.dict(let d), "items"): return .list(d.map { .list([.string($0.0), $0.1]) })
        case (.dict(let d), "keys"): return .list(d.map { .string($0.0) })
        case (.dict(let d), "values"): return .list(d.map { $0.1 })
        case (.dict, "get"):
            guard let key = args.first?.printed else { throw TokenizerError("chat template: get() needs a key") }
            return base.lookup(key) ?? (args.count > 1 ? args[1] : .none)
        default:
            throw TokenizerError("chat template: unsupported method '\(method)' on a \(base.typeName)")
        }
    }

    func callFunction(_ name: String, _ args: [JinjaValue], _ kwargs: [(String, JinjaValue)]) throws -> JinjaValue {
        switch name {
        case "raise_exception":
            throw TokenizerError("chat template raised an exception: \(args.first?.printed ?? "")")
        case "namespace":
            var values: [String: JinjaValue] = [:]
            for (k, v) in kwargs { values[k] = v }
            return .namespace(JinjaNamespace(values))
        case "range":
            let ints = try args.map { a -> Int in
                guard case .int(let i) = a else { throw TokenizerError("chat template: range() needs integers") }
                return i
            }
            let (lo, hi, step) = ints.count == 1 ? (0, ints[0], 1) : (ints[0], ints[1], ints.count > 2 ? ints[2] : 1)
            guard step != 0 else { throw TokenizerError("chat template: range() step cannot be zero") }
            // Length from Doubles: hi - lo may overflow Int, and the list must not be built to find out.
            let length = max(0, ((Double(hi) - Double(lo)) / Double(step)).rounded(.up))
            try JinjaBudget.checkCount(length > Double(JinjaBudget.maxListCount) ? Int.max : Int(length), "range()")
            return .list(Array(stride(from: lo, to: hi, by: step)).map { .int($0) })
        case "strftime_now":
            let f = DateFormatter()
            f.locale = Locale(identifier: "en_US_POSIX")
            let fmt = (args.first?.printed ?? "").replacingOccurrences(of: "%d", with: "dd").replacingOccurrences(of: "%b", with: "MMM")
                .replacingOccurrences(of: "%B", with: "MMMM").replacingOccurrences(of: "%Y", with: "yyyy").replacingOccurrences(of: "%m", with: "MM")
            f.dateFormat = fmt
            return .string(f.string(from: Date()))
        default:
            throw TokenizerError("chat template: unsupported function '\(name)()'")
        }
    }
}
