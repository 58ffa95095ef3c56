import Foundation

/// A `pattern` of tokenizer.json (`{"String": ...}` or `{"Regex": ...}`) that can list its matches.
///
/// The split regexes of GPT-2 (ByteLevel), Qwen2 and LLaMA-3 are matched by hand-written scanners
/// that reproduce the regex engine's leftmost, first-alternative-wins semantics; they are exact and
/// fast. Any other regex goes to NSRegularExpression (ICU), whose syntax covers `\p{..}`, `(?i:..)`
/// and lookahead as well.
enum TokenizerPattern: @unchecked Sendable {
    case literal([Unicode.Scalar])
    case gpt2
    case qwen2(maxDigits: Int)
    case regex(NSRegularExpression, source: String)

    static let gpt2Source = #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
    static let qwen2Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
    static let llama3Source = #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#

    init(json: JSONValue?, context: String) throws {
        if let s = json?["String"]?.stringValue {
            guard !s.isEmpty else { throw TokenizerError("\(context): empty String pattern") }
            self = .literal(Array(s.unicodeScalars))
        } else if let r = json?["Regex"]?.stringValue {
            self = try TokenizerPattern(regex: r, context: context)
        } else {
            throw TokenizerError("\(context): pattern must be {\"String\": ...} or {\"Regex\": ...}, got \(json ?? .null)")
        }
    }

    init(regex r: String, context: String) throws {
        switch r {
        case Self.gpt2Source: self = .gpt2
        case Self.qwen2Source: self = .qwen2(maxDigits: 1)
        case Self.llama3Source: self = .qwen2(maxDigits: 3)
        default:
            do {
                self = .regex(try NSRegularExpression(pattern: r), source: r)
            } catch {
                throw TokenizerError("\(context): regex '\(r)' is not supported by the regex engine: \(error)")
            }
        }
    }

    /// Non-overlapping matches, as scalar index ranges, left to right.
    func matches(in s: [Unicode.Scalar]) -> [Range<Int>] {
        switch self {
        case .literal(let p):
            var out: [Range<Int>] = []
            var i = 0
            while i + p.count <= s.count {
                if s[i..<(i + p.count)].elementsEqual(p) { out.append(i..<(i + p.count)); i += p.count } else { i += 1 }
            }
            return out
        case .gpt2:
            return Self.scan(s, Self.gpt2Match)
        case .qwen2(let maxDigits):
            return Self.scan(s) { Self.qwen2Match($0, $1, maxDigits: maxDigits) }
        case .regex(let re, _):
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s)
            let text = String(v)
            // ICU reports UTF-16 offsets; map them back to scalar indices.
            var utf16ToScalar = [Int](repeating: 0, count: text.utf16.count + 1)
            var u = 0
            for (k, sc) in s.enumerated() {
                let w = sc.value > 0xFFFF ? 2 : 1
                for d in 0..<w { utf16ToScalar[u + d] = k }
                u += w
            }
            utf16ToScalar[u] = s.count
            return re.matches(in: text, range: NSRange(location: 0, length: u)).compactMap { m in
                let a = utf16ToScalar[m.range.location], b = utf16ToScalar[m.range.location + m.range.length]
                return a < b ? a..<b : nil
            }
        }
    }

    func replaceAll(in text: String, with content: String) -> String {
        let s = Array(text.unicodeScalars)
        let ms = matches(in: s)
        if ms.isEmpty { return text }
        var out = String.UnicodeScalarView()
        var last = 0
        for m in ms {
            out.append(contentsOf: s[last..<m.lowerBound])
            out.append(contentsOf: content.unicodeScalars)
            last = m.upperBound
        }
        out.append(contentsOf: s[last...])
        return String(out)
    }

    // MARK: hand-written scanners

    private static func scan(_ s: [Unicode.Scalar], _ match: ([Unicode.Scalar], Int) -> Int?) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = 0
        while i < s.count {
            if let end = match(s, i), end > i { out.append(i..<end); i = end } else { i += 1 }
        }
        return out
    }

    private typealias C = PreTokenizerClasses

    /// `'s|'t|'re|'ve|'m|'ll|'d` at `i`; case-insensitive for the Qwen2/LLaMA-3 form.
    private static func contraction(_ s: [Unicode.Scalar], _ i: Int, caseInsensitive: Bool) -> Int? {
        guard s[i] == "'", i + 1 < s.count else { return nil }
        func at(_ k: Int) -> Unicode.Scalar? {
            guard k < s.count else { return nil }
            let c = s[k]
            if caseInsensitive, c.value >= 65, c.value <= 90 { return Unicode.Scalar(c.value + 32) }
            return c
        }
        switch at(i + 1) {
        case "s", "t", "m", "d": return i + 2
        case "r", "v": return at(i + 2) == "e" ? i + 3 : nil
        case "l": return at(i + 2) == "l" ? i + 3 : nil
        default: return nil
        }
    }

    /// End of a whitespace run starting at `i`.
    private static func spaceRun(_ s: [Unicode.Scalar], _ i: Int) -> Int {
        var k = i
        while k < s.count && C.isSpace(s[k]) { k += 1 }
        return k
    }

    /// `\s+(?!\S)|\s+`: a run that stops before the last space when a non-space follows,
    /// so that the space can lead the next word; a single space before a word is taken whole.
    private static func trailingSpaces(_ s: [Unicode.Scalar], _ i: Int) -> Int? {
        let k = spaceRun(s, i)
        if k == i { return nil }
        if k == s.count { return k }
        if k - 1 > i { return k - 1 }
        return k
    }

    private static func isOther(_ c: Unicode.Scalar) -> Bool {
        !C.isSpace(c) && !C.isLetter(c) && !C.isNumber(c)
    }

    private static func gpt2Match(_ s: [Unicode.Scalar], _ i: Int) -> Int? {
        if let e = contraction(s, i, caseInsensitive: false) { return e }
        let j = s[i] == " " ? i + 1 : i
        if j < s.count {
            if C.isLetter(s[j]) {
                var k = j
                while k < s.count && C.isLetter(s[k]) { k += 1 }
                return k
            }
            if C.isNumber(s[j]) {
                var k = j
                while k < s.count && C.isNumber(s[k]) { k += 1 }
                return k
            }
            if isOther(s[j]) {
                var k = j
                while k < s.count && isOther(s[k]) { k += 1 }
                return k
            }
        }
        return trailingSpaces(s, i)
    }

    private static func qwen2Match(_ s: [Unicode.Scalar], _ i: Int, maxDigits: Int) -> Int? {
        if let e = contraction(s, i, caseInsensitive: true) { return e }
        // [^\r\n\p{L}\p{N}]?\p{L}+
        let c = s[i]
        var j = i
        if !C.isNewline(c) && !C.isLetter(c) && !C.isNumber(c) && i + 1 < s.count && C.isLetter(s[i + 1]) { j = i + 1 }
        if C.isLetter(s[j]) {
            var k = j
            while k < s.count && C.isLetter(s[k]) { k += 1 }
            return k
        }
        // \p{N}{1,maxDigits}
        if C.isNumber(c) {
            var k = i
            while k < s.count && k - i < maxDigits && C.isNumber(s[k]) { k += 1 }
            return k
        }
        // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
        let o = c == " " ? i + 1 : i
        if o < s.count && isOther(s[o]) {
            var k = o
            while k < s.count && isOther(s[k]) { k += 1 }
            while k < s.count && C.isNewline(s[k]) { k += 1 }
            return k
        }
        // \s*[\r\n]+ : the whitespace run up to and including its last newline
        let run = spaceRun(s, i)
        if run > i {
            var last = -1
            for k in i..<run where C.isNewline(s[k]) { last = k }
            if last >= 0 { return last + 1 }
        }
        return trailingSpaces(s, i)
    }
}
