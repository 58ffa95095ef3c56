import Foundation

/// The `decoder` of tokenizer.json: turns the token strings of an id list back into text.
/// Each step maps a list of token strings to a list; the result is their concatenation.
indirect enum TokenDecoder: Sendable {
    case sequence([TokenDecoder])
    case byteLevel
    case replace(TokenizerPattern, String)
    case byteFallback
    case fuse
    case strip(content: Unicode.Scalar, start: Int, stop: Int)
    case metaspace(replacement: Unicode.Scalar, prepend: MetaspacePrepend)
    /// `BPEDecoder`: the word suffix (`</w>`) becomes a space, except on the last token where it goes.
    case bpeSuffix(String)

    init(json: JSONValue) throws {
        let type = try json.tokString("type", in: "decoder")
        switch type {
        case "Sequence":
            guard let list = json["decoders"]?.arrayValue else {
                throw TokenizerError("decoder Sequence: missing 'decoders' list")
            }
            self = .sequence(try list.map { try TokenDecoder(json: $0) })
        case "ByteLevel": self = .byteLevel
        case "Replace":
            self = .replace(try TokenizerPattern(json: json["pattern"], context: "decoder Replace"),
                            try json.tokString("content", in: "decoder Replace"))
        case "ByteFallback": self = .byteFallback
        case "Fuse": self = .fuse
        case "Strip":
            let content = try json.tokString("content", in: "decoder Strip")
            guard content.unicodeScalars.count == 1, let c = content.unicodeScalars.first else {
                throw TokenizerError("decoder Strip: content must be one character, got '\(content)'")
            }
            self = .strip(content: c, start: json["start"]?.intValue ?? 0, stop: json["stop"]?.intValue ?? 0)
        case "Metaspace":
            let r = json["replacement"]?.stringValue ?? "▁"
            guard r.unicodeScalars.count == 1, let c = r.unicodeScalars.first else {
                throw TokenizerError("decoder Metaspace: replacement must be one character, got '\(r)'")
            }
            self = .metaspace(replacement: c, prepend: try MetaspacePrepend(json: json, context: "decoder Metaspace"))
        case "BPEDecoder":
            self = .bpeSuffix(json["suffix"]?.stringValue ?? "</w>")
        default:
            throw TokenizerError("unsupported decoder '\(type)' (supported: Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace, BPEDecoder)")
        }
    }

    func apply(_ tokens: [String]) -> [String] {
        switch self {
        case .sequence(let list):
            return list.reduce(tokens) { $1.apply($0) }
        case .byteLevel:
            // Tokens outside the byte alphabet (added tokens) contribute their own UTF-8 bytes.
            var bytes: [UInt8] = []
            for t in tokens { bytes.append(contentsOf: ByteLevelAlphabet.bytes(of: t) ?? Array(t.utf8)) }
            return [String(decoding: bytes, as: UTF8.self)]
        case .replace(let pattern, let content):
            return tokens.map { pattern.replaceAll(in: $0, with: content) }
        case .byteFallback:
            var out: [String] = []
            var pending: [UInt8] = []
            func flush() {
                guard !pending.isEmpty else { return }
                if let s = String(validatingUTF8Bytes: pending) {
                    out.append(s)
                } else {
                    out.append(contentsOf: Array(repeating: "\u{FFFD}", count: pending.count))
                }
                pending.removeAll()
            }
            for t in tokens {
                if let b = Self.byteToken(t) { pending.append(b) } else { flush(); out.append(t) }
            }
            flush()
            return out
        case .fuse:
            return [tokens.joined()]
        case .strip(let content, let start, let stop):
            return tokens.map { t in
                var s = Array(t.unicodeScalars)
                var cut = 0
                while cut < start && cut < s.count && s[cut] == content { cut += 1 }
                s.removeFirst(cut)
                var tail = 0
                while tail < stop && tail < s.count && s[s.count - 1 - tail] == content { tail += 1 }
                s.removeLast(tail)
                var v = String.UnicodeScalarView()
                v.append(contentsOf: s)
                return String(v)
            }
        case .metaspace(let replacement, let prepend):
            return tokens.enumerated().map { i, t in
                var v = String.UnicodeScalarView()
                for c in t.unicodeScalars {
                    if c == replacement {
                        if i == 0 && prepend != .never { continue }
                        v.append(" ")
                    } else {
                        v.append(c)
                    }
                }
                return String(v)
            }
        case .bpeSuffix(let suffix):
            return tokens.enumerated().map { i, t in
                t.replacingOccurrences(of: suffix, with: i == tokens.count - 1 ? "" : " ")
            }
        }
    }

    /// `<0xNN>` → NN.
    static func byteToken(_ t: String) -> UInt8? {
        let u = Array(t.utf8)
        guard u.count == 6, u[0] == UInt8(ascii: "<"), u[1] == UInt8(ascii: "0"), u[2] == UInt8(ascii: "x"),
              u[5] == UInt8(ascii: ">") else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }
}

extension String {
    /// Strict UTF-8 decoding: nil where the bytes are not valid UTF-8.
    init?(validatingUTF8Bytes bytes: [UInt8]) {
        var it = bytes.makeIterator()
        var codec = UTF8()
        var v = String.UnicodeScalarView()
        loop: while true {
            switch codec.decode(&it) {
            case .scalarValue(let s): v.append(s)
            case .emptyInput: break loop
            case .error: return nil
            }
        }
        self = String(v)
    }
}
