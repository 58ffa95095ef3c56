import Tensors

/// V-norm baseline: keep the visual tokens whose layer K−1 values (no RoPE, heads
/// concatenated) have the largest norm.
///
/// Not a selectable option in the official DART code (only L1 key norms choose DART's pivots);
/// this is the natural reconstruction inside the DART harness (score at layer K−1, prune at
/// layer K, original positions kept) and is UNVERIFIED against the paper's table. Options cover
/// the readings the paper's marks may stand for: L1 or L2 norm, largest or smallest kept.
public struct ValueNormPruning: Sendable {
    public static let info = MethodInfo(
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

        public func validate() throws {
            guard layer >= 1 else { throw CompressionError.invalidParameter("v-norm layer K = \(layer) must be ≥ 1 (scores come from layer K−1)") }
            _ = try budget.tokens(outOf: 1)
        }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    /// Norm of each visual token (relative to the image start), float64.
    public func scores(values: Tensor, layout: TokenLayout) throws -> [Double] {
        try ImageVLMBaseline.rowNorms(values, layout: layout, l1: parameters.l1, what: "v-norm values")
    }

    /// - Parameter values: `[n, heads·headDim]` layer K−1 values (no RoPE, heads concatenated).
    public func select(values: Tensor, layout: TokenLayout) throws -> CompressionResult {
        let s = try scores(values: values, layout: layout)
        guard let k = try ImageVLMBaseline.keepCount(parameters.budget, layout: layout) else {
            return ImageVLMBaseline.noOp("v-norm", budget: parameters.budget, layout: layout)
        }
        return ImageVLMBaseline.keepTop(s, k, largest: parameters.keepLargest, layout: layout)
    }
}
