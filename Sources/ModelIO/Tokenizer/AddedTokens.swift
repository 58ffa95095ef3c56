import Foundation

/// One entry of `added_tokens`: matched in the text before the model sees it.
struct AddedToken: Sendable {
    let id: Int
    let content: String
    let special: Bool
    let lstrip: Bool
    let rstrip: Bool
    let singleWord: Bool
    let normalized: Bool

    init(json: JSONValue) throws {
        guard let id = json["id"]?.intValue else { throw TokenizerError("added_tokens: entry without integer 'id'") }
        self.id = id
        content = try json.tokString("content", in: "added_tokens[id \(id)]")
        special = json.tokBool("special", default: false)
        lstrip = json.tokBool("lstrip", default: false)
        rstrip = json.tokBool("rstrip", default: false)
        singleWord = json.tokBool("single_word", default: false)
        normalized = json.tokBool("normalized", default: !special)
    }
}

/// A stretch of the input: either text still to tokenize, or an added token already resolved.
/// `atStart` records whether the text begins at offset 0 of the original input, which is what
/// Metaspace's `prepend_scheme: "first"` looks at.
enum TokenizerSegment {
    case text(String, atStart: Bool)
    case token(Int)
}

/// Finds added tokens in text: leftmost match first, the longest among those starting at the
/// same place, then the `lstrip`/`rstrip`/`single_word` rules of the reference library.
struct AddedTokenMatcher: Sendable {
    private struct Pattern: Sendable {
        let scalars: [Unicode.Scalar]
        let token: AddedToken
    }
    /// Patterns grouped by first scalar, longest first.
    private let byFirst: [Unicode.Scalar: [Pattern]]

    var isEmpty: Bool { byFirst.isEmpty }

    init(tokens: [AddedToken], form: (String) -> String) {
        var map: [Unicode.Scalar: [Pattern]] = [:]
        for t in tokens {
            let s = Array(form(t.content).unicodeScalars)
            guard let first = s.first else { continue }
            map[first, default: []].append(Pattern(scalars: s, token: t))
        }
        for k in map.keys { map[k]!.sort { $0.scalars.count > $1.scalars.count } }
        byFirst = map
    }

    /// Splits `text` into pieces of text and matched tokens.
    func split(_ text: String, atStart: Bool) -> [TokenizerSegment] {
        // Empty stretches vanish, as in the reference (Metaspace must not prepend to nothing).
        if text.isEmpty { return [] }
        if isEmpty { return [.text(text, atStart: atStart)] }
        let s = Array(text.unicodeScalars)
        var out: [TokenizerSegment] = []
        var gapStart = 0
        var i = 0
        func emitGap(_ end: Int) {
            if end > gapStart {
                var v = String.UnicodeScalarView()
                v.append(contentsOf: s[gapStart..<end])
                out.append(.text(String(v), atStart: atStart && gapStart == 0))
            }
        }
        while i < s.count {
            guard let candidates = byFirst[s[i]] else { i += 1; continue }
            var found: Pattern?
            for p in candidates where i + p.scalars.count <= s.count {
                if s[i..<(i + p.scalars.count)].elementsEqual(p.scalars) { found = p; break }
            }
            guard let p = found else { i += 1; continue }
            var start = i
            var end = i + p.scalars.count
            if p.token.singleWord {
                let before = start > 0 ? s[start - 1] : nil
                let after = end < s.count ? s[end] : nil
                if let b = before, Self.isWordScalar(b) { i += 1; continue }
                if let a = after, Self.isWordScalar(a) { i += 1; continue }
            }
            if p.token.lstrip {
                while start > gapStart && s[start - 1].properties.isWhitespace { start -= 1 }
            }
            if p.token.rstrip {
                while end < s.count && s[end].properties.isWhitespace { end += 1 }
            }
            emitGap(start)
            out.append(.token(p.token.id))
            gapStart = end
            i = end
        }
        emitGap(s.count)
        return out
    }

    static func isWordScalar(_ s: Unicode.Scalar) -> Bool {
        s == "_" || PreTokenizerClasses.isLetter(s) || PreTokenizerClasses.isNumber(s)
    }
}
