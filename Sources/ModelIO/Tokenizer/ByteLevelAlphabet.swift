/// GPT-2's reversible map from bytes to printable unicode characters.
///
/// Byte-level BPE vocabularies are written in this alphabet: printable Latin-1 bytes stand for
/// themselves and the other 68 bytes (controls, space, soft hyphen...) are shifted to U+0100 and
/// above, so that every token is a visible string and no byte is lost by text processing.
enum ByteLevelAlphabet {
    static let byteToScalar: [Unicode.Scalar] = {
        var printable = Array(33...126) + Array(161...172) + Array(174...255)
        var codes = printable
        var shifted = 0
        for b in 0..<256 where !printable.contains(b) {
            printable.append(b)
            codes.append(256 + shifted)
            shifted += 1
        }
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        for (b, c) in zip(printable, codes) { table[b] = Unicode.Scalar(UInt32(c))! }
        return table
    }()

    static let scalarToByte: [Unicode.Scalar: UInt8] = {
        var map: [Unicode.Scalar: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s] = UInt8(b) }
        return map
    }()

    /// The UTF-8 bytes of `text`, each written as its alphabet character.
    static func encode(_ text: String) -> String {
        var out = String.UnicodeScalarView()
        for b in text.utf8 { out.append(byteToScalar[Int(b)]) }
        return String(out)
    }

    /// The bytes a token stands for, or nil when it has characters outside the alphabet
    /// (added tokens such as `<image>` are kept as they are by the decoder in that case).
    static func bytes(of token: String) -> [UInt8]? {
        var out: [UInt8] = []
        for s in token.unicodeScalars {
            guard let b = scalarToByte[s] else { return nil }
            out.append(b)
        }
        return out
    }
}
