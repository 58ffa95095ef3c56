import Foundation

/// A piece of a template after the tags are found: literal text, `{{ expr }}` or `{% stmt %}`.
enum JinjaSegment: Equatable {
    case text(String)
    case output(String)
    case statement(String)
}

/// Cuts a template into segments, applying whitespace control the way transformers configures
/// Jinja for chat templates: `trim_blocks` (newline after a block tag dropped), `lstrip_blocks`
/// (indentation before a block tag dropped), and the explicit `{%-`/`-%}` markers.
enum JinjaLexer {
    static func segments(_ template: String) throws -> [JinjaSegment] {
        let s = Array(template.unicodeScalars)
        var out: [JinjaSegment] = []
        var text = String.UnicodeScalarView()
        var i = 0
        var stripNextLeading = false
        var trimNextNewline = false

        func flushText() {
            if !text.isEmpty { out.append(.text(String(text))); text = String.UnicodeScalarView() }
        }

        while i < s.count {
            let isTag = s[i] == "{" && i + 1 < s.count && (s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#")
            if !isTag {
                if stripNextLeading && s[i].properties.isWhitespace { i += 1; continue }
                stripNextLeading = false
                if trimNextNewline {
                    trimNextNewline = false
                    if s[i] == "\n" { i += 1; continue }
                    if s[i] == "\r" { i += 1; if i < s.count && s[i] == "\n" { i += 1 }; continue }
                }
                text.append(s[i])
                i += 1
                continue
            }
            stripNextLeading = false
            trimNextNewline = false
            let kind = s[i + 1]
            let close: Unicode.Scalar = kind == "{" ? "}" : (kind == "%" ? "%" : "#")
            var j = i + 2
            var leftStrip = false, keepLeft = false
            if j < s.count && s[j] == "-" { leftStrip = true; j += 1 } else if j < s.count && s[j] == "+" { keepLeft = true; j += 1 }
            // Find the closing marker, skipping string literals (a "}}" inside quotes is text).
            var quote: Unicode.Scalar?
            var end = -1
            var k = j
            while k + 1 < s.count {
                let c = s[k]
                if let q = quote {
                    if c == "\\" { k += 2; continue }
                    if c == q { quote = nil }
                } else if kind != "#" && (c == "'" || c == "\"") {
                    quote = c
                } else if c == close && s[k + 1] == "}" {
                    end = k
                    break
                }
                k += 1
            }
            guard end >= 0 else {
                let line = s[0..<i].filter { $0 == "\n" }.count + 1
                throw TokenizerError("chat template: unclosed tag '{\(kind)' on line \(line)")
            }
            var innerEnd = end
            var rightStrip = false
            if innerEnd > j && s[innerEnd - 1] == "-" { rightStrip = true; innerEnd -= 1 }
            else if innerEnd > j && s[innerEnd - 1] == "+" { innerEnd -= 1 }
            var innerView = String.UnicodeScalarView()
            innerView.append(contentsOf: s[j..<innerEnd])
            let inner = String(innerView).trimmingCharacters(in: .whitespacesAndNewlines)

            // Whitespace before the tag.
            if leftStrip {
                while let last = text.last, last.properties.isWhitespace { text.removeLast() }
            } else if kind != "{" && !keepLeft {
                // lstrip_blocks: only spaces/tabs between the start of the source line and the tag.
                var b = i
                while b > 0 && (s[b - 1] == " " || s[b - 1] == "\t") { b -= 1 }
                if b == 0 || s[b - 1] == "\n" {
                    var removed = 0
                    while removed < i - b, let last = text.last, last == " " || last == "\t" { text.removeLast(); removed += 1 }
                }
            }
            flushText()
            switch kind {
            case "{": out.append(.output(inner))
            case "%": out.append(.statement(inner))
            default: break
            }
            i = end + 2
            if rightStrip { stripNextLeading = true } else if kind != "{" { trimNextNewline = true }
        }
        flushText()
        return out
    }
}

/// A token of a Jinja expression.
enum JinjaToken: Equatable {
    case name(String)
    case string(String)
    case int(Int)
    case double(Double)
    case op(String)
}

enum JinjaExpressionLexer {
    static let operators = ["//", "**", "==", "!=", "<=", ">=", "+", "-", "*", "/", "%", "~", "(", ")", "[", "]",
                            "{", "}", ",", ".", ":", "|", "=", "<", ">"]

    static func tokens(_ source: String) throws -> [JinjaToken] {
        let s = Array(source.unicodeScalars)
        var out: [JinjaToken] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "_" || PreTokenizerClasses.isLetter(c) {
                var j = i
                while j < s.count && (s[j] == "_" || PreTokenizerClasses.isLetter(s[j]) || PreTokenizerClasses.isNumber(s[j])) { j += 1 }
                out.append(.name(String(String.UnicodeScalarView(s[i..<j]))))
                i = j
                continue
            }
            if c.isASCII && c.properties.numericType != nil {
                var j = i
                var isFloat = false
                while j < s.count && ((s[j].value >= 48 && s[j].value <= 57) || s[j] == "_" ||
                                      (s[j] == "." && !isFloat && j + 1 < s.count && s[j + 1].value >= 48 && s[j + 1].value <= 57)) {
                    if s[j] == "." { isFloat = true }
                    j += 1
                }
                let text = String(String.UnicodeScalarView(s[i..<j])).replacingOccurrences(of: "_", with: "")
                if isFloat { out.append(.double(Double(text)!)) } else {
                    guard let v = Int(text) else { throw TokenizerError("chat template: bad number '\(text)'") }
                    out.append(.int(v))
                }
                i = j
                continue
            }
            if c == "'" || c == "\"" {
                var j = i + 1
                var v = String.UnicodeScalarView()
                var closed = false
                while j < s.count {
                    if s[j] == c { closed = true; break }
                    if s[j] == "\\" && j + 1 < s.count {
                        j += 1
                        switch s[j] {
                        case "n": v.append("\n")
                        case "t": v.append("\t")
                        case "r": v.append("\r")
                        case "\\": v.append("\\")
                        case "'": v.append("'")
                        case "\"": v.append("\"")
                        default: v.append("\\"); v.append(s[j])
                        }
                    } else {
                        v.append(s[j])
                    }
                    j += 1
                }
                guard closed else { throw TokenizerError("chat template: unterminated string in '\(source)'") }
                out.append(.string(String(v)))
                i = j + 1
                continue
            }
            var matched = false
            for op in operators {
                let o = Array(op.unicodeScalars)
                if i + o.count <= s.count && Array(s[i..<(i + o.count)]) == o {
                    out.append(.op(op))
                    i += o.count
                    matched = true
                    break
                }
            }
            if !matched { throw TokenizerError("chat template: unexpected character '\(c)' in '\(source)'") }
        }
        return out
    }
}
