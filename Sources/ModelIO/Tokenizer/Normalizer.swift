import Foundation

/// The `normalizer` of tokenizer.json, applied to each stretch of text between added tokens.
indirect enum TokenizerNormalizer: Sendable {
    case sequence([TokenizerNormalizer])
    case prepend(String)
    case replace(TokenizerPattern, String)
    case nfc, nfd, nfkc, nfkd
    case lowercase
    case strip(left: Bool, right: Bool)

    init(json: JSONValue) throws {
        let type = try json.tokString("type", in: "normalizer")
        switch type {
        case "Sequence":
            guard let list = json["normalizers"]?.arrayValue else {
                throw TokenizerError("normalizer Sequence: missing 'normalizers' list")
            }
            self = .sequence(try list.map { try TokenizerNormalizer(json: $0) })
        case "Prepend":
            self = .prepend(try json.tokString("prepend", in: "normalizer Prepend"))
        case "Replace":
            self = .replace(try TokenizerPattern(json: json["pattern"], context: "normalizer Replace"),
                            try json.tokString("content", in: "normalizer Replace"))
        case "NFC": self = .nfc
        case "NFD": self = .nfd
        case "NFKC": self = .nfkc
        case "NFKD": self = .nfkd
        case "Lowercase": self = .lowercase
        case "Strip":
            self = .strip(left: json.tokBool("strip_left", default: true), right: json.tokBool("strip_right", default: true))
        default:
            throw TokenizerError("unsupported normalizer '\(type)' (supported: Sequence, Prepend, Replace, NFC, NFD, NFKC, NFKD, Lowercase, Strip)")
        }
    }

    func apply(_ text: String) -> String {
        switch self {
        case .sequence(let list):
            return list.reduce(text) { $1.apply($0) }
        case .prepend(let p):
            return text.isEmpty ? text : p + text
        case .replace(let pattern, let content):
            return pattern.replaceAll(in: text, with: content)
        case .nfc: return text.precomposedStringWithCanonicalMapping
        case .nfd: return text.decomposedStringWithCanonicalMapping
        case .nfkc: return text.precomposedStringWithCompatibilityMapping
        case .nfkd: return text.decomposedStringWithCompatibilityMapping
        case .lowercase: return text.lowercased()
        case .strip(let left, let right):
            var s = Substring(text)
            if left { while let f = s.unicodeScalars.first, f.properties.isWhitespace { s = Substring(s.unicodeScalars.dropFirst()) } }
            if right { while let l = s.unicodeScalars.last, l.properties.isWhitespace { s = Substring(s.unicodeScalars.dropLast()) } }
            return String(s)
        }
    }
}
