/// What happens to position ids after tokens are removed.
public enum PositionPolicy: String, Sendable, Codable {
    /// Kept tokens keep their original positions (gaps in the sequence of position ids).
    case keepOriginal = "original positions kept"
    /// Positions are renumbered 0..<kept.
    case renumber = "renumbered"
    /// The method acts before positions exist (vision side) or does not change the sequence.
    case notApplicable = "n/a"
}

/// A token produced by merging several input tokens.
public struct MergedToken: Sendable, Equatable {
    /// Index of the merged token in the output sequence.
    public let outputIndex: Int
    /// Input tokens it stands for (including the one it replaced, if any).
    public let sources: [Int]
    /// Number of original tokens it represents (ToMe-style size).
    public var size: Int { sources.count }

    public init(outputIndex: Int, sources: [Int]) {
        self.outputIndex = outputIndex
        self.sources = sources
    }
}

/// The outcome of one compression call: which tokens survive and the facts a fair comparison needs.
///
/// Always reports requested and achieved counts, so that methods are compared at the cost they
/// really had; `noOpReason` is set whenever the method could not act, instead of silently
/// returning the input.
public struct CompressionResult: Sendable {
    /// Ascending indices into the method's input sequence of the tokens that are kept as they are.
    public var kept: [Int]
    /// Tokens of the touched span the caller asked to keep.
    public var requestedCount: Int
    /// Tokens of the touched span actually present afterwards (kept + merged/recycled tokens).
    public var achievedCount: Int
    public var positionPolicy: PositionPolicy
    /// Tokens created by merging (empty for pure pruning).
    public var merged: [MergedToken]
    /// Why nothing was done, when nothing was done.
    public var noOpReason: String?

    public init(kept: [Int], requestedCount: Int, achievedCount: Int, positionPolicy: PositionPolicy,
                merged: [MergedToken] = [], noOpReason: String? = nil) {
        self.kept = kept
        self.requestedCount = requestedCount
        self.achievedCount = achievedCount
        self.positionPolicy = positionPolicy
        self.merged = merged
        self.noOpReason = noOpReason
    }

    /// Identity result with an explicit note (budget ≥ tokens, too few tokens, …).
    ///
    /// `touched` is the size of the span the method may act on (the visual tokens of an LLM-side
    /// method, whose input also holds system and text tokens); it becomes the achieved count, since
    /// "achieved" counts tokens of that span only. It defaults to the whole input.
    public static func noOp(tokenCount: Int, touched: Int? = nil, requested: Int, policy: PositionPolicy,
                            reason: String) -> CompressionResult {
        CompressionResult(kept: Array(0..<tokenCount), requestedCount: requested, achievedCount: touched ?? tokenCount,
                          positionPolicy: policy, noOpReason: reason)
    }
}

/// Number of visual tokens entering each layer, the cost profile a method really produces.
public struct TokenSchedule: Sendable, Equatable {
    /// `tokensPerLayer[l]` = tokens of the touched span entering layer `l`.
    public var tokensPerLayer: [Int]
    public init(tokensPerLayer: [Int]) { self.tokensPerLayer = tokensPerLayer }

    /// Schedule of a method that prunes from `before` to `after` tokens at the input of `layer`.
    public static func singleCut(layers: Int, at layer: Int, before: Int, after: Int) -> TokenSchedule {
        TokenSchedule(tokensPerLayer: (0..<layers).map { $0 < layer ? before : after })
    }
}
