import Foundation

/// Parser of one expression's tokens.
struct JinjaExprParser {
    private var tokens: [JinjaToken]
    private var i = 0
    private let source: String

    init(_ tokens: [JinjaToken], source: String) {
        self.tokens = tokens
        self.source = source
    }

    mutating func next() -> JinjaToken? {
        guard i < tokens.count else { return nil }
        i += 1
        return tokens[i - 1]
    }

    func peek() -> JinjaToken? { i < tokens.count ? tokens[i] : nil }

    mutating func accept(_ t: JinjaToken) -> Bool {
        if peek() == t { i += 1; return true }
        return false
    }

    mutating func expect(_ t: JinjaToken) throws {
        guard accept(t) else { throw error("expected \(t)") }
    }

    func expectEnd() throws {
        if let t = peek() { throw error("unexpected \(t)") }
    }

    func error(_ what: String) -> TokenizerError {
        TokenizerError("chat template: \(what) in '\(source)'")
    }

    mutating func parseAll() throws -> JinjaExpr {
        let e = try parseExpression()
        try expectEnd()
        return e
    }

    mutating func parseExpression() throws -> JinjaExpr {
        let value = try parseOr()
        if accept(.name("if")) {
            let condition = try parseOr()
            var otherwise: JinjaExpr?
            if accept(.name("else")) { otherwise = try parseExpression() }
            return .conditional(value, condition: condition, otherwise: otherwise)
        }
        return value
    }

    mutating func parseOr() throws -> JinjaExpr {
        var l = try parseAnd()
        while accept(.name("or")) { l = .or(l, try parseAnd()) }
        return l
    }

    mutating func parseAnd() throws -> JinjaExpr {
        var l = try parseNot()
        while accept(.name("and")) { l = .and(l, try parseNot()) }
        return l
    }

    mutating func parseNot() throws -> JinjaExpr {
        if accept(.name("not")) { return .not(try parseNot()) }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> JinjaExpr {
        var l = try parseAdditive()
        while true {
            if case .op(let o) = peek(), ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                i += 1
                l = .binary(o, l, try parseAdditive())
            } else if accept(.name("in")) {
                l = .binary("in", l, try parseAdditive())
            } else if peek() == .name("not"), i + 1 < tokens.count, tokens[i + 1] == .name("in") {
                i += 2
                l = .not(.binary("in", l, try parseAdditive()))
            } else {
                return l
            }
        }
    }

    mutating func parseAdditive() throws -> JinjaExpr {
        var l = try parseConcat()
        while case .op(let o) = peek(), o == "+" || o == "-" {
            i += 1
            l = .binary(o, l, try parseConcat())
        }
        return l
    }

    mutating func parseConcat() throws -> JinjaExpr {
        var l = try parseMultiplicative()
        while accept(.op("~")) { l = .binary("~", l, try parseMultiplicative()) }
        return l
    }

    mutating func parseMultiplicative() throws -> JinjaExpr {
        var l = try parseUnary()
        while case .op(let o) = peek(), ["*", "/", "//", "%"].contains(o) {
            i += 1
            l = .binary(o, l, try parseUnary())
        }
        return l
    }

    mutating func parseUnary() throws -> JinjaExpr {
        if accept(.op("-")) { return .negate(try parseUnary()) }
        if accept(.op("+")) { return try parseUnary() }
        var e = try parsePostfix(try parsePrimary())
        // Filters and tests bind to the operand they follow.
        while true {
            if accept(.op("|")) {
                guard case .name(let name) = next() else { throw error("expected a filter name") }
                var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
                if accept(.op("(")) { (args, kwargs) = try parseArguments() }
                e = try parsePostfix(.filter(e, name, args, kwargs))
            } else if accept(.name("is")) {
                let negated = accept(.name("not"))
                guard case .name(let name) = next() else { throw error("expected a test name") }
                var args: [JinjaExpr] = []
                if accept(.op("(")) {
                    args = try parseArguments().0
                } else if let t = peek(), Self.startsOperand(t) {
                    args = [try parsePostfix(try parsePrimary())]
                }
                e = .test(e, name, args, negated: negated)
            } else {
                return e
            }
        }
    }

    private static func startsOperand(_ t: JinjaToken) -> Bool {
        switch t {
        case .string, .int, .double: return true
        case .name(let n): return !["and", "or", "if", "else", "in", "not", "is"].contains(n)
        default: return false
        }
    }

    mutating func parsePrimary() throws -> JinjaExpr {
        guard let t = next() else { throw error("unexpected end of expression") }
        switch t {
        case .string(var s):
            // Adjacent string literals concatenate, as in Python.
            while case .string(let more) = peek() { s += more; i += 1 }
            return .literal(.string(s))
        case .int(let v): return .literal(.int(v))
        case .double(let v): return .literal(.double(v))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            let e = try parseExpression()
            if accept(.op(",")) {
                throw error("tuples are not supported")
            }
            try expect(.op(")"))
            return e
        case .op("["):
            var items: [JinjaExpr] = []
            while !accept(.op("]")) {
                items.append(try parseExpression())
                if !accept(.op(",")) { try expect(.op("]")); break }
            }
            return .list(items)
        case .op("{"):
            var pairs: [(JinjaExpr, JinjaExpr)] = []
            while !accept(.op("}")) {
                let k = try parseExpression()
                try expect(.op(":"))
                pairs.append((k, try parseExpression()))
                if !accept(.op(",")) { try expect(.op("}")); break }
            }
            return .dict(pairs)
        default:
            throw error("unexpected \(t)")
        }
    }

    mutating func parsePostfix(_ base: JinjaExpr) throws -> JinjaExpr {
        var e = base
        while true {
            if accept(.op(".")) {
                guard case .name(let n) = next() else { throw error("expected an attribute name") }
                e = .attribute(e, n)
            } else if accept(.op("[")) {
                var parts: [JinjaExpr?] = [nil]
                var colons = 0
                while !accept(.op("]")) {
                    if accept(.op(":")) { colons += 1; parts.append(nil); continue }
                    parts[parts.count - 1] = try parseExpression()
                }
                if colons == 0 {
                    guard let index = parts[0] else { throw error("empty subscript") }
                    e = .item(e, index)
                } else {
                    guard colons <= 2 else { throw error("bad slice") }
                    e = .slice(e, parts[0], parts[1], parts.count > 2 ? parts[2] : nil)
                }
            } else if accept(.op("(")) {
                let (args, kwargs) = try parseArguments()
                e = .call(e, args, kwargs)
            } else {
                return e
            }
        }
    }

    /// After "(": positional and keyword arguments up to ")".
    mutating func parseArguments() throws -> ([JinjaExpr], [(String, JinjaExpr)]) {
        var args: [JinjaExpr] = [], kwargs: [(String, JinjaExpr)] = []
        while !accept(.op(")")) {
            if case .name(let n) = peek(), i + 1 < tokens.count, tokens[i + 1] == .op("=") {
                i += 2
                kwargs.append((n, try parseExpression()))
            } else {
                args.append(try parseExpression())
            }
            if !accept(.op(",")) { try expect(.op(")")); break }
        }
        return (args, kwargs)
    }
}
