import Tensors

/// K-norm and V-norm baselines: keep the visual tokens whose layer K−1 keys (after RoPE) or
/// values (heads concatenated) have the largest norm.
///
/// Not a selectable option in the official DART code (only L1 key norms choose DART's pivots);
/// this is the natural reconstruction inside the DART harness (score at layer K−1, prune at
/// layer K, original positions kept) and is UNVERIFIED against the paper's table. Options cover
/// the readings the paper's marks may stand for: L1 or L2 norm, largest or smallest kept.
/// One type serves both baselines: they differ only in which signal is scored.
public struct NormPruning: Sendable {
    /// Which per-token signal is scored.
    public enum Source: String, Sendable, CaseIterable {
        case keys = "k-norm"
        case values = "v-norm"
    }

    public static let keyNormInfo = MethodInfo(
        name: "k-norm", displayName: "K-norm", domain: .imageVLM, families: [.prune], placement: .llmLayer(2),
        signals: [.keys, .tokenLayout], needsAttentionProbabilities: false,
        paper: "Baseline in: Stop Looking for Important Tokens in Multimodal Language Models: Duplication Matters More (EMNLP 2025, arXiv 2502.11494)",
        repository: "ZichenWen1/DART",
        summary: "Top-k visual tokens by the norm of their layer K−1 keys after RoPE (heads concatenated); original positions kept")

    public static let valueNormInfo = MethodInfo(
        name: "v-norm", displayName: "V-norm", domain: .imageVLM, families: [.prune], placement: .llmLayer(2),
        signals: [.values, .tokenLayout], needsAttentionProbabilities: false,
        paper: "Baseline in: Stop Looking for Important Tokens in Multimodal Language Models: Duplication Matters More (EMNLP 2025, arXiv 2502.11494)",
        repository: "ZichenWen1/DART",
        summary: "Top-k visual tokens by the norm of their layer K−1 values (no RoPE, heads concatenated); original positions kept")

    public struct Parameters: Sendable, Equatable {
        public var layer: Int = 2
        public var budget: Budget = .count(128)
        /// L1 as DART's pivot score; false selects L2.
        public var l1: Bool = true
        /// Keep the largest norms (true) or the smallest.
        public var keepLargest: Bool = true

        public init(layer: Int = 2, budget: Budget = .count(128), l1: Bool = true, keepLargest: Bool = true) {
            self.layer = layer
            self.budget = budget
            self.l1 = l1
            self.keepLargest = keepLargest
        }
    }

    public let source: Source
    public let parameters: Parameters

    public init(_ source: Source, _ parameters: Parameters = Parameters()) throws {
        guard parameters.layer >= 1 else {
            throw CompressionError.invalidParameter("\(source.rawValue) layer K = \(parameters.layer) must be ≥ 1 (scores come from layer K−1)")
        }
        _ = try parameters.budget.tokens(outOf: 1)
        self.source = source
        self.parameters = parameters
    }

    /// Norm of each visual token's row of `signal` (`[n, heads·headDim]`, keys or values of layer K−1), float64.
    public func scores(_ signal: Tensor, layout: TokenLayout) throws -> [Double] {
        try ImageVLMBaseline.rowNorms(signal, layout: layout, l1: parameters.l1, what: "\(source.rawValue) \(source)")
    }

    /// Keeps the top visual tokens by norm; system and text tokens are always kept.
    public func select(_ signal: Tensor, layout: TokenLayout) throws -> CompressionResult {
        let s = try scores(signal, layout: layout)
        guard let k = try ImageVLMBaseline.keepCount(parameters.budget, layout: layout) else {
            return ImageVLMBaseline.noOp(source.rawValue, budget: parameters.budget, layout: layout)
        }
        return ImageVLMBaseline.keepTop(s, k, largest: parameters.keepLargest, layout: layout)
    }
}
