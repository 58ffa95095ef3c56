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

    /// Whether the budget is a token count (not a ratio).
    public var isCount: Bool { if case .count = self { return true } else { return false } }

    /// Tokens this budget asks for out of `available`: a count as given (even when larger, so a
    /// report shows what the user asked), a ratio as `tokens(outOf:)`.
    public func requested(outOf available: Int) throws -> Int {
        if case .count(let k) = self {
            guard k >= 0 else { throw CompressionError.invalidBudget("token count \(k) is negative") }
            return k
        }
        return try tokens(outOf: available)
    }

    /// The one rule deciding whether a budget compresses `available` tokens: asking for all of
    /// them (or more) is an explicit no-op with its reason; anything less is `keep k`.
    public func resolve(over available: Int, of what: String = "visual tokens") throws -> BudgetResolution {
        let k = try requested(outOf: available)
        guard k < available else { return .noOp(requested: k, reason: "budget \(self) asks for \(k) ≥ \(available) \(what)") }
        return .keep(k)
    }

    /// Per-part targets when the tokens come in parts (LLaVA-NeXT tiles): a ratio applies to each
    /// part, a count is split evenly (earlier parts take the remainder, each at least 1).
    public func split(over parts: [Int]) throws -> [Int] {
        switch self {
        case .count(let k):
            guard k >= 0 else { throw CompressionError.invalidBudget("token count \(k) is negative") }
            return parts.indices.map { i in max(1, k / parts.count + (i < k % parts.count ? 1 : 0)) }
        case .ratio:
            return try parts.map { try tokens(outOf: $0) }
        }
    }
}

/// What a budget means for one input: keep `k` tokens, or nothing to do (and why).
public enum BudgetResolution: Sendable, Equatable {
    case keep(Int)
    case noOp(requested: Int, reason: String)

    /// Tokens the budget asked for.
    public var requested: Int {
        switch self {
        case .keep(let k): return k
        case .noOp(let k, _): return k
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
