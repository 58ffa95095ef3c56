/// How many tokens a method may keep, with one meaning everywhere: a count of tokens, or a
/// ratio of the tokens the method may touch (e.g. the visual tokens, never the text).
public enum Budget: Sendable, Equatable, CustomStringConvertible {
    case count(Int)
    case ratio(Double)

    /// The number of tokens to keep out of `total`; a ratio keeps `round(ratio·total)` (at least 1).
    public func tokens(outOf total: Int) throws -> Int {
        switch self {
        case .count(let k):
            guard k >= 0 else { throw CompressionError.invalidBudget("token count \(k) is negative") }
            return min(k, total)
        case .ratio(let r):
            guard r.isFinite, r > 0, r <= 1 else {
                throw CompressionError.invalidBudget("ratio \(r) must be in (0, 1]")
            }
            return max(1, min(total, Int((r * Double(total)).rounded())))
        }
    }

    public var description: String {
        switch self {
        case .count(let k): return "\(k) tokens"
        case .ratio(let r): return "\(r * 100)%"
        }
    }
}

/// Why a compression request failed. Methods throw these rather than quietly returning input.
public enum CompressionError: Error, Equatable, CustomStringConvertible {
    case invalidBudget(String)
    case invalidParameter(String)
    case missingSignal(String)
    case shapeMismatch(String)
    /// The reference code itself fails on this setting; we refuse with the reason.
    case unsupportedSetting(String)

    public var description: String {
        switch self {
        case .invalidBudget(let s): return "invalid budget: \(s)"
        case .invalidParameter(let s): return "invalid parameter: \(s)"
        case .missingSignal(let s): return "missing signal: \(s)"
        case .shapeMismatch(let s): return "shape mismatch: \(s)"
        case .unsupportedSetting(let s): return "unsupported setting: \(s)"
        }
    }
}
