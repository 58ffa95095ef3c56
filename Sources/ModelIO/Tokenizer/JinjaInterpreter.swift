import Foundation

/// Runs a parsed template. Variables live in a stack of scopes: a `for` body gets its own scope
/// (so `set` inside a loop does not leak, as in Jinja, and templates use `namespace()` instead).
struct JinjaInterpreter {
    private var scopes: [[String: JinjaValue]]
    private var output = ""
    /// What this render has spent so far (shared by the copies `eval` works on).
    let budget = JinjaBudget()

    init(context: [String: JinjaValue]) { scopes = [context] }

    static func render(_ nodes: [JinjaNode], context: [String: JinjaValue]) throws -> String {
        var r = JinjaInterpreter(context: context)
        if try r.run(nodes) != .normal { throw TokenizerError("chat template: break/continue outside a loop") }
        return r.output
    }

    private func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() { if let v = scope[name] { return v } }
        return .undefined
    }

    /// How a block ended: normally, or by `break`/`continue` that the enclosing loop must honour.
    enum Flow { case normal, breakLoop, continueLoop }

    private mutating func run(_ nodes: [JinjaNode]) throws -> Flow {
        for node in nodes {
            try budget.step()
            switch node {
            case .text(let t): output += t; try budget.checkOutput(output)
            case .output(let e): output += try eval(e).printed; try budget.checkOutput(output)
            case .ifChain(let branches, let otherwise):
                var chosen = otherwise
                for (condition, body) in branches where try eval(condition).isTruthy {
                    chosen = body
                    break
                }
                let flow = try run(chosen)
                if flow != .normal { return flow }
            case .set(let name, let attribute, let value):
                let v = try eval(value)
                if let attribute {
                    guard case .namespace(let ns) = lookup(name) else {
                        throw TokenizerError("chat template: cannot set '\(name).\(attribute)': '\(name)' is not a namespace")
                    }
                    ns.values[attribute] = v
                } else {
                    scopes[scopes.count - 1][name] = v
                }
            case .setBlock(let name, let body):
                let saved = output
                output = ""
                _ = try run(body)
                scopes[scopes.count - 1][name] = .string(output)
                output = saved
            case .loopBreak: return .breakLoop
            case .loopContinue: return .continueLoop
            case .forLoop(let targets, let iterable, let condition, let body, let otherwise):
                try runLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise)
            }
        }
        return .normal
    }

    private mutating func runLoop(targets: [String], iterable: JinjaExpr, condition: JinjaExpr?,
                                  body: [JinjaNode], otherwise: [JinjaNode]) throws {
        let items = try iterate(try eval(iterable), what: "for loop")
        func bind(_ item: JinjaValue, into scope: inout [String: JinjaValue]) throws {
            if targets.count == 1 { scope[targets[0]] = item; return }
            guard case .list(let parts) = item, parts.count == targets.count else {
                throw TokenizerError("chat template: cannot unpack \(item.repr) into \(targets.joined(separator: ", "))")
            }
            for (t, p) in zip(targets, parts) { scope[t] = p }
        }
        var selected = items
        if let condition {
            selected = []
            for item in items {
                try budget.step()
                var scope: [String: JinjaValue] = [:]
                try bind(item, into: &scope)
                scopes.append(scope)
                defer { scopes.removeLast() }
                if try eval(condition).isTruthy { selected.append(item) }
            }
        }
        if selected.isEmpty {
            if try run(otherwise) != .normal { throw TokenizerError("chat template: break/continue outside a loop") }
            return
        }
        let n = selected.count
        for (k, item) in selected.enumerated() {
            try budget.step()
            var scope: [String: JinjaValue] = [:]
            try bind(item, into: &scope)
            scope["loop"] = .object([
                "index0": .int(k), "index": .int(k + 1), "first": .bool(k == 0), "last": .bool(k == n - 1),
                "length": .int(n), "revindex": .int(n - k), "revindex0": .int(n - k - 1),
                "previtem": k > 0 ? selected[k - 1] : .undefined, "nextitem": k + 1 < n ? selected[k + 1] : .undefined,
            ])
            scopes.append(scope)
            let flow = try run(body)
            scopes.removeLast()
            if flow == .breakLoop { break }
        }
    }

    func iterate(_ v: JinjaValue, what: String) throws -> [JinjaValue] {
        switch v {
        case .list(let l): return l
        case .dict(let d): return d.map { .string($0.0) }
        case .string(let s): return s.map { .string(String($0)) }
        case .undefined, .none: return []
        default: throw TokenizerError("chat template: \(what) over a \(v.typeName), which is not iterable")
        }
    }

    // MARK: expressions

    /// Every value an expression produces is charged to the budget (strings by bytes, lists by items).
    private func eval(_ e: JinjaExpr) throws -> JinjaValue {
        let v = try evalUncharged(e)
        try budget.charge(v)
        return v
    }

    private func evalUncharged(_ e: JinjaExpr) throws -> JinjaValue {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items): return .list(try items.map { try eval($0) })
        case .dict(let pairs):
            return .dict(try pairs.map { k, v in
                guard case .string(let key) = try eval(k) else { throw TokenizerError("chat template: dict keys must be strings") }
                return (key, try eval(v))
            })
        case .attribute(let base, let name):
            let b = try eval(base)
            if case .undefined = b { throw TokenizerError("chat template: '\(name)' of an undefined value") }
            return b.lookup(name) ?? .undefined
        case .item(let base, let index):
            return try subscriptValue(try eval(base), try eval(index))
        case .slice(let base, let start, let stop, let step):
            return try slice(try eval(base), try start.map { try eval($0) }, try stop.map { try eval($0) }, try step.map { try eval($0) })
        case .not(let x): return .bool(!(try eval(x).isTruthy))
        case .negate(let x):
            switch try eval(x) {
            case .int(let i): return try Self.checked(0.subtractingReportingOverflow(i), "-")
            case .double(let d): return .double(-d)
            case let v: throw TokenizerError("chat template: cannot negate a \(v.typeName)")
            }
        case .and(let l, let r):
            let a = try eval(l)
            return a.isTruthy ? try eval(r) : a
        case .or(let l, let r):
            let a = try eval(l)
            return a.isTruthy ? a : try eval(r)
        case .conditional(let value, let condition, let otherwise):
            if try eval(condition).isTruthy { return try eval(value) }
            return try otherwise.map { try eval($0) } ?? .undefined
        case .binary(let op, let l, let r):
            return try binary(op, try eval(l), try eval(r))
        case .test(let x, let name, let args, let negated):
            let result = try test(name, try eval(x), try args.map { try eval($0) })
            return .bool(negated ? !result : result)
        case .filter(let x, let name, let args, let kwargs):
            return try filter(name, try eval(x), try args.map { try eval($0) }, try kwargs.map { ($0.0, try eval($0.1)) })
        case .call(let callee, let args, let kwargs):
            let a = try args.map { try eval($0) }
            let kw = try kwargs.map { ($0.0, try eval($0.1)) }
            if case .attribute(let base, let method) = callee {
                return try callMethod(try eval(base), method, a)
            }
            guard case .name(let fn) = callee else { throw TokenizerError("chat template: only named functions and methods can be called") }
            return try callFunction(fn, a, kw)
        }
    }

    private func subscriptValue(_ b: JinjaValue, _ i: JinjaValue) throws -> JinjaValue {
        switch (b, i) {
        case (.list(let l), .int(let k)):
            let idx = k < 0 ? l.count + k : k
            guard idx >= 0 && idx < l.count else { return .undefined }
            return l[idx]
        case (.string(let s), .int(let k)):
            let chars = Array(s)
            let idx = k < 0 ? chars.count + k : k
            guard idx >= 0 && idx < chars.count else { return .undefined }
            return .string(String(chars[idx]))
        case (_, .string(let key)):
            if case .undefined = b { throw TokenizerError("chat template: ['\(key)'] of an undefined value") }
            return b.lookup(key) ?? .undefined
        default:
            throw TokenizerError("chat template: cannot index a \(b.typeName) with a \(i.typeName)")
        }
    }

    private func slice(_ b: JinjaValue, _ start: JinjaValue?, _ stop: JinjaValue?, _ step: JinjaValue?) throws -> JinjaValue {
        func int(_ v: JinjaValue?) throws -> Int? {
            guard let v, !(v.isNoneLike) else { return nil }
            guard case .int(let i) = v else { throw TokenizerError("chat template: slice bounds must be integers") }
            return i
        }
        let st = try int(step) ?? 1
        guard st != 0 else { throw TokenizerError("chat template: slice step cannot be zero") }
        func pick<T>(_ items: [T]) throws -> [T] {
            let n = items.count
            func norm(_ v: Int?, _ dflt: Int) -> Int {
                guard var x = v else { return dflt }
                if x < 0 { x += n }
                return st > 0 ? min(max(x, 0), n) : min(max(x, -1), n - 1)
            }
            var out: [T] = []
            var k = norm(try int(start), st > 0 ? 0 : n - 1)
            let end = norm(try int(stop), st > 0 ? n : -1)
            while st > 0 ? k < end : k > end { out.append(items[k]); k += st }
            return out
        }
        switch b {
        case .list(let l): return .list(try pick(l))
        case .string(let s): return .string(String(try pick(Array(s))))
        default: throw TokenizerError("chat template: cannot slice a \(b.typeName)")
        }
    }

    func binary(_ op: String, _ a: JinjaValue, _ b: JinjaValue) throws -> JinjaValue {
        switch op {
        case "==": return .bool(JinjaValue.equal(a, b))
        case "!=": return .bool(!JinjaValue.equal(a, b))
        case "~":
            let (x, y) = (a.printed, b.printed)
            try JinjaBudget.checkSize(x.utf8.count + y.utf8.count, "'~'")
            return .string(x + y)
        case "in":
            switch b {
            case .string(let s):
                guard case .string(let x) = a else { throw TokenizerError("chat template: 'in <string>' needs a string on the left") }
                return .bool(s.contains(x))
            case .list(let l): return .bool(l.contains { JinjaValue.equal($0, a) })
            case .dict, .namespace:
                guard case .string(let k) = a else { return .bool(false) }
                return .bool(b.lookup(k) != nil)
            case .undefined, .none: return .bool(false)
            default: throw TokenizerError("chat template: 'in' on a \(b.typeName)")
            }
        case "<", ">", "<=", ">=":
            let c: Int
            switch (a, b) {
            case (.string(let x), .string(let y)): c = x < y ? -1 : (x == y ? 0 : 1)
            default:
                guard let x = a.number, let y = b.number else {
                    throw TokenizerError("chat template: cannot compare \(a.typeName) and \(b.typeName) with '\(op)'")
                }
                c = x < y ? -1 : (x == y ? 0 : 1)
            }
            switch op {
            case "<": return .bool(c < 0)
            case ">": return .bool(c > 0)
            case "<=": return .bool(c <= 0)
            default: return .bool(c >= 0)
            }
        case "+":
            switch (a, b) {
            case (.string(let x), .string(let y)):
                try JinjaBudget.checkSize(x.utf8.count + y.utf8.count, "'+'")
                return .string(x + y)
            case (.list(let x), .list(let y)):
                try JinjaBudget.checkCount(x.count + y.count, "'+'")
                return .list(x + y)
            case (.int(let x), .int(let y)): return try Self.checked(x.addingReportingOverflow(y), op)
            default:
                if let x = a.number, let y = b.number { return .double(x + y) }
                throw TokenizerError("chat template: cannot add a \(a.typeName) and a \(b.typeName) with '+'")
            }
        case "-", "*", "/", "//", "%":
            if op == "*", case .string(let s) = a, case .int(let n) = b {
                let (bytes, overflow) = s.utf8.count.multipliedReportingOverflow(by: max(n, 0))
                try JinjaBudget.checkSize(overflow ? Int.max : bytes, "'*'")
                return .string(String(repeating: s, count: max(n, 0)))
            }
            if case .int(let x) = a, case .int(let y) = b, op != "/" {
                switch op {
                case "-": return try Self.checked(x.subtractingReportingOverflow(y), op)
                case "*": return try Self.checked(x.multipliedReportingOverflow(by: y), op)
                default:
                    guard y != 0 else { throw TokenizerError("chat template: division by zero") }
                    guard !(x == Int.min && y == -1) else { throw TokenizerError("chat template: integer overflow in '\(op)'") }
                    // Python floors toward negative infinity; Swift truncates toward zero.
                    var q = x / y
                    if x % y != 0 && ((x < 0) != (y < 0)) { q -= 1 }
                    return op == "//" ? .int(q) : .int(x - q * y)
                }
            }
            guard let x = a.number, let y = b.number else {
                throw TokenizerError("chat template: '\(op)' on a \(a.typeName) and a \(b.typeName)")
            }
            switch op {
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/":
                guard y != 0 else { throw TokenizerError("chat template: division by zero") }
                return .double(x / y)
            case "//": return .double((x / y).rounded(.down))
            default: return .double(x - (x / y).rounded(.down) * y)
            }
        default:
            throw TokenizerError("chat template: unsupported operator '\(op)'")
        }
    }

    /// Python integers do not overflow; ours report it instead of trapping.
    private static func checked(_ r: (partialValue: Int, overflow: Bool), _ op: String) throws -> JinjaValue {
        if r.overflow { throw TokenizerError("chat template: integer overflow in '\(op)'") }
        return .int(r.partialValue)
    }
}

extension JinjaValue {
    var number: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        case .bool(let b): return b ? 1 : 0
        default: return nil
        }
    }

    var isBool: Bool { if case .bool = self { return true } else { return false } }
    var isNoneLike: Bool { switch self { case .none, .undefined: return true; default: return false } }
}

/// Bounds on one render, so a hostile template (`range(10**12)`, `'x' * 10**12`, a string doubled in a
/// loop, loops nested to 10^12 iterations) is an error instead of an out-of-memory kill or a hang.
/// Real chat templates run a few hundred steps and produce a few KB.
final class JinjaBudget {
    /// Nodes run plus loop iterations.
    static let maxSteps = 1_000_000
    /// Largest string one operation may produce, and the largest output.
    static let maxStringBytes = 16 << 20
    /// Longest list one operation may produce.
    static let maxListCount = 1_000_000
    /// Bytes (and list items) all operations together may produce in one render.
    static let maxProduced = 256 << 20

    private var steps = 0
    private var produced = 0

    func step() throws {
        steps += 1
        guard steps <= Self.maxSteps else {
            throw TokenizerError("chat template: more than \(Self.maxSteps) steps (loops too long or nested too deep for a chat template)")
        }
    }

    func charge(_ v: JinjaValue) throws {
        switch v {
        case .string(let s): produced += s.utf8.count
        case .list(let l): produced += l.count
        default: return
        }
        guard produced <= Self.maxProduced else {
            throw TokenizerError("chat template: produced more than \(Self.maxProduced) bytes of values (a chat template renders one prompt)")
        }
    }

    func checkOutput(_ output: String) throws {
        guard output.utf8.count <= Self.maxStringBytes else {
            throw TokenizerError("chat template: output longer than \(Self.maxStringBytes) bytes")
        }
    }

    /// Checks a string's size before it is built.
    static func checkSize(_ bytes: Int, _ what: String) throws {
        guard bytes <= maxStringBytes else {
            throw TokenizerError("chat template: \(what) would build a string of \(bytes == Int.max ? "more than 2^63" : String(bytes)) bytes (at most \(maxStringBytes))")
        }
    }

    /// Checks a list's length before it is built.
    static func checkCount(_ count: Int, _ what: String) throws {
        guard count <= maxListCount else {
            throw TokenizerError("chat template: \(what) would build a list of \(count) items (at most \(maxListCount))")
        }
    }
}
