import Foundation

/// A stretch of normalized text on its way to the model; `atStart` tells whether it begins at
/// offset 0 of the original input (Metaspace's `prepend_scheme: "first"` needs to know).
struct PreToken {
    var text: String
    var atStart: Bool
}

/// How a Split pre-tokenizer treats the matched delimiters.
enum SplitBehavior: String, Sendable {
    case removed = "Removed"
    case isolated = "Isolated"
    case mergedWithPrevious = "MergedWithPrevious"
    case mergedWithNext = "MergedWithNext"
    case contiguous = "Contiguous"
}

/// The `pre_tokenizer` of tokenizer.json: cuts normalized text into the words BPE runs on.
indirect enum PreTokenizer: Sendable {
    case sequence([PreTokenizer])
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(TokenizerPattern, SplitBehavior, invert: Bool)
    case metaspace(replacement: String, prepend: MetaspacePrepend, split: Bool)
    case digits(individual: Bool)
    case whitespaceSplit

    init(json: JSONValue) throws {
        let type = try json.tokString("type", in: "pre_tokenizer")
        switch type {
        case "Sequence":
            guard let list = json["pretokenizers"]?.arrayValue else {
                throw TokenizerError("pre_tokenizer Sequence: missing 'pretokenizers' list")
            }
            self = .sequence(try list.map { try PreTokenizer(json: $0) })
        case "ByteLevel":
            self = .byteLevel(addPrefixSpace: json.tokBool("add_prefix_space", default: true),
                              useRegex: json.tokBool("use_regex", default: true))
        case "Split":
            let pattern = try TokenizerPattern(json: json["pattern"], context: "pre_tokenizer Split")
            let name = json["behavior"]?.stringValue ?? "Isolated"
            guard let behavior = SplitBehavior(rawValue: name) else {
                throw TokenizerError("pre_tokenizer Split: unsupported behavior '\(name)'")
            }
            self = .split(pattern, behavior, invert: json.tokBool("invert", default: false))
        case "Metaspace":
            self = .metaspace(replacement: json["replacement"]?.stringValue ?? "▁",
                              prepend: try MetaspacePrepend(json: json, context: "pre_tokenizer Metaspace"),
                              split: json.tokBool("split", default: true))
        case "Digits":
            self = .digits(individual: json.tokBool("individual_digits", default: false))
        case "WhitespaceSplit":
            self = .whitespaceSplit
        default:
            throw TokenizerError("unsupported pre_tokenizer '\(type)' (supported: Sequence, ByteLevel, Split, Metaspace, Digits, WhitespaceSplit)")
        }
    }

    func apply(_ pieces: [PreToken]) -> [PreToken] {
        switch self {
        case .sequence(let list):
            return list.reduce(pieces) { $1.apply($0) }
        case .byteLevel(let addPrefixSpace, let useRegex):
            var out: [PreToken] = []
            for var p in pieces {
                if addPrefixSpace && !p.text.hasPrefix(" ") { p.text = " " + p.text }
                let parts = useRegex ? Self.split(p, by: .gpt2, behavior: .isolated, invert: false) : [p]
                for q in parts { out.append(PreToken(text: ByteLevelAlphabet.encode(q.text), atStart: q.atStart)) }
            }
            return out
        case .split(let pattern, let behavior, let invert):
            return pieces.flatMap { Self.split($0, by: pattern, behavior: behavior, invert: invert) }
        case .metaspace(let replacement, let prepend, let split):
            return pieces.flatMap { p -> [PreToken] in
                var text = p.text.replacingOccurrences(of: " ", with: replacement)
                switch prepend {
                case .always: if !text.hasPrefix(replacement) { text = replacement + text }
                case .first: if !text.hasPrefix(replacement) && p.atStart { text = replacement + text }
                case .never: break
                }
                let q = PreToken(text: text, atStart: p.atStart)
                guard split else { return [q] }
                return Self.split(q, by: .literal(Array(replacement.unicodeScalars)), behavior: .mergedWithNext, invert: false)
            }
        case .digits(let individual):
            let pattern = try! TokenizerPattern(regex: individual ? "\\p{N}" : "\\p{N}+", context: "Digits")
            return pieces.flatMap { Self.split($0, by: pattern, behavior: .isolated, invert: false) }
        case .whitespaceSplit:
            let pattern = try! TokenizerPattern(regex: "\\s+", context: "WhitespaceSplit")
            return pieces.flatMap { Self.split($0, by: pattern, behavior: .removed, invert: false) }
        }
    }

    /// Cuts one piece at the pattern's matches, keeping or merging the delimiters as `behavior` says.
    static func split(_ piece: PreToken, by pattern: TokenizerPattern, behavior: SplitBehavior, invert: Bool) -> [PreToken] {
        let s = Array(piece.text.unicodeScalars)
        if s.isEmpty { return [] }
        // (range, isDelimiter) covering the whole piece.
        var spans: [(Range<Int>, Bool)] = []
        var last = 0
        for m in pattern.matches(in: s) {
            if m.lowerBound > last { spans.append((last..<m.lowerBound, invert)) }
            spans.append((m, !invert))
            last = m.upperBound
        }
        if last < s.count { spans.append((last..<s.count, invert)) }

        var ranges: [Range<Int>] = []
        switch behavior {
        case .removed:
            ranges = spans.filter { !$0.1 }.map { $0.0 }
        case .isolated:
            ranges = spans.map { $0.0 }
        case .contiguous:
            var previousWasDelimiter = false
            for (r, d) in spans {
                if d && previousWasDelimiter, let prev = ranges.last {
                    ranges[ranges.count - 1] = prev.lowerBound..<r.upperBound
                } else {
                    ranges.append(r)
                }
                previousWasDelimiter = d
            }
        case .mergedWithPrevious:
            var previousWasText = false
            for (r, d) in spans {
                if d && previousWasText, let prev = ranges.last {
                    ranges[ranges.count - 1] = prev.lowerBound..<r.upperBound
                } else {
                    ranges.append(r)
                }
                previousWasText = !d
            }
        case .mergedWithNext:
            var pendingStart: Int?
            for (r, d) in spans {
                if d {
                    if pendingStart != nil { ranges.append(pendingStart!..<r.lowerBound) }
                    pendingStart = r.lowerBound
                } else {
                    ranges.append((pendingStart ?? r.lowerBound)..<r.upperBound)
                    pendingStart = nil
                }
            }
            if let p = pendingStart { ranges.append(p..<s.count) }
        }
        return ranges.filter { !$0.isEmpty }.map { r in
            var v = String.UnicodeScalarView()
            v.append(contentsOf: s[r])
            return PreToken(text: String(v), atStart: piece.atStart && r.lowerBound == 0)
        }
    }
}

/// Metaspace's `prepend_scheme` (older files carry `add_prefix_space` instead).
enum MetaspacePrepend: String, Sendable {
    case always, first, never

    init(json: JSONValue, context: String) throws {
        if let s = json["prepend_scheme"]?.stringValue {
            guard let v = MetaspacePrepend(rawValue: s) else {
                throw TokenizerError("\(context): unsupported prepend_scheme '\(s)'")
            }
            self = v
        } else {
            self = json.tokBool("add_prefix_space", default: true) ? .always : .never
        }
    }
}
