/// The character classes of the pre-tokenizer regexes, as the Oniguruma engine of the reference
/// library reads them: `\p{L}` letters, `\p{N}` numbers, `\s` the Unicode White_Space property.
enum PreTokenizerClasses {
    static func isLetter(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII { let v = s.value; return (v >= 65 && v <= 90) || (v >= 97 && v <= 122) }
        switch s.properties.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return true
        default: return false
        }
    }

    static func isNumber(_ s: Unicode.Scalar) -> Bool {
        if s.isASCII { return s.value >= 48 && s.value <= 57 }
        switch s.properties.generalCategory {
        case .decimalNumber, .letterNumber, .otherNumber: return true
        default: return false
        }
    }

    static func isSpace(_ s: Unicode.Scalar) -> Bool {
        s.properties.isWhitespace
    }

    static func isNewline(_ s: Unicode.Scalar) -> Bool { s == "\n" || s == "\r" }
}
