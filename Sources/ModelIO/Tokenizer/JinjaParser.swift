import Foundation

/// Expressions of the Jinja subset.
indirect enum JinjaExpr {
    case literal(JinjaValue)
    case name(String)
    case attribute(JinjaExpr, String)
    case item(JinjaExpr, JinjaExpr)
    case slice(JinjaExpr, JinjaExpr?, JinjaExpr?, JinjaExpr?)
    case call(JinjaExpr, [JinjaExpr], [(String, JinjaExpr)])
    case filter(JinjaExpr, String, [JinjaExpr], [(String, JinjaExpr)])
    case test(JinjaExpr, String, [JinjaExpr], negated: Bool)
    case not(JinjaExpr)
    case negate(JinjaExpr)
    case binary(String, JinjaExpr, JinjaExpr)
    case and(JinjaExpr, JinjaExpr)
    case or(JinjaExpr, JinjaExpr)
    case conditional(JinjaExpr, condition: JinjaExpr, otherwise: JinjaExpr?)
    case list([JinjaExpr])
    case dict([(JinjaExpr, JinjaExpr)])
}

/// Statements of the Jinja subset.
indirect enum JinjaNode {
    case text(String)
    case output(JinjaExpr)
    case forLoop(targets: [String], iterable: JinjaExpr, condition: JinjaExpr?, body: [JinjaNode], otherwise: [JinjaNode])
    case ifChain([(JinjaExpr, [JinjaNode])], otherwise: [JinjaNode])
    /// `set name = value` or `set ns.attr = value`.
    case set(name: String, attribute: String?, value: JinjaExpr)
    /// `{% set name %}body{% endset %}`: the rendered body becomes the value.
    case setBlock(name: String, body: [JinjaNode])
    /// `{% break %}` and `{% continue %}` (transformers enables Jinja's loopcontrols extension).
    case loopBreak
    case loopContinue
}

/// Recursive-descent parser over the segments of `JinjaLexer`, with Jinja's operator precedence:
/// conditional < or < and < not < comparison < + - < ~ < * / // % < unary - < postfix, filters, tests.
struct JinjaParser {
    private let segments: [JinjaSegment]
    private var position = 0

    static func parse(_ template: String) throws -> [JinjaNode] {
        var p = JinjaParser(segments: try JinjaLexer.segments(template))
        let (body, end) = try p.parseBody(until: [])
        if let end { throw TokenizerError("chat template: unexpected '{% \(end) %}'") }
        return body
    }

    private init(segments: [JinjaSegment]) { self.segments = segments }

    /// Parses nodes until a statement whose first word is in `terminators`; returns that statement.
    private mutating func parseBody(until terminators: Set<String>) throws -> ([JinjaNode], String?) {
        var nodes: [JinjaNode] = []
        while position < segments.count {
            let seg = segments[position]
            position += 1
            switch seg {
            case .text(let t): nodes.append(.text(t))
            case .output(let src):
                var e = JinjaExprParser(try JinjaExpressionLexer.tokens(src), source: src)
                nodes.append(.output(try e.parseAll()))
            case .statement(let src):
                let keyword = src.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" }).first.map(String.init) ?? ""
                if terminators.contains(keyword) { return (nodes, src) }
                nodes.append(contentsOf: try parseStatement(keyword: keyword, source: src))
            }
        }
        if !terminators.isEmpty {
            throw TokenizerError("chat template: missing {% \(terminators.sorted().joined(separator: " / ")) %}")
        }
        return (nodes, nil)
    }

    private mutating func parseStatement(keyword: String, source: String) throws -> [JinjaNode] {
        let tokens = try JinjaExpressionLexer.tokens(source)
        var e = JinjaExprParser(Array(tokens.dropFirst()), source: source)
        switch keyword {
        case "if":
            let condition = try e.parseAll()
            var branches: [(JinjaExpr, [JinjaNode])] = []
            var current = condition
            while true {
                let (body, end) = try parseBody(until: ["elif", "else", "endif"])
                branches.append((current, body))
                let endWord = end!.split(separator: " ").first.map(String.init) ?? ""
                if endWord == "elif" {
                    let t = try JinjaExpressionLexer.tokens(end!)
                    var ee = JinjaExprParser(Array(t.dropFirst()), source: end!)
                    current = try ee.parseAll()
                } else if endWord == "else" {
                    let (elseBody, _) = try parseBody(until: ["endif"])
                    return [.ifChain(branches, otherwise: elseBody)]
                } else {
                    return [.ifChain(branches, otherwise: [])]
                }
            }
        case "for":
            var targets: [String] = []
            repeat {
                guard case .name(let n) = e.next() else { throw TokenizerError("chat template: bad loop target in '\(source)'") }
                targets.append(n)
            } while e.accept(.op(","))
            guard e.accept(.name("in")) else { throw TokenizerError("chat template: expected 'in' in '\(source)'") }
            let iterable = try e.parseOr()   // no conditional: a trailing `if` filters the loop
            var condition: JinjaExpr?
            if e.accept(.name("if")) { condition = try e.parseOr() }
            if e.accept(.name("recursive")) { throw TokenizerError("chat template: recursive loops are not supported") }
            try e.expectEnd()
            let (body, end) = try parseBody(until: ["else", "endfor"])
            var otherwise: [JinjaNode] = []
            if end?.hasPrefix("else") == true { otherwise = try parseBody(until: ["endfor"]).0 }
            return [.forLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise)]
        case "set":
            guard case .name(let n) = e.next() else { throw TokenizerError("chat template: bad set target in '\(source)'") }
            var attribute: String?
            if e.accept(.op(".")) {
                guard case .name(let a) = e.next() else { throw TokenizerError("chat template: bad set target in '\(source)'") }
                attribute = a
            }
            if attribute == nil && e.peek() == nil {
                return [.setBlock(name: n, body: try parseBody(until: ["endset"]).0)]
            }
            guard e.accept(.op("=")) else { throw e.error("expected '='") }
            return [.set(name: n, attribute: attribute, value: try e.parseAll())]
        case "break", "continue":
            try e.expectEnd()
            return [keyword == "break" ? .loopBreak : .loopContinue]
        case "generation":
            // transformers' marker for assistant tokens; renders its body unchanged.
            return try parseBody(until: ["endgeneration"]).0
        default:
            throw TokenizerError("chat template: unsupported statement '{% \(keyword) %}' (supported: if/elif/else, for, set, break, continue, generation)")
        }
    }
}
