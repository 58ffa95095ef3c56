import Tensors

/// A-Score baseline: keep the visual tokens the last prompt token attends to most.
///
/// The attention-importance representative of the DART table: head-mean attention probability
/// of the last query row of layer K−1, top-k, pruned at layer K with original positions kept.
/// It is FastV's criterion with the package's `Budget`; whether the paper's "A-Score" row is
/// exactly FastV at K = 2 is UNVERIFIED (no separate official implementation exists).
public struct AttentionScorePruning: Sendable {
    public static let info = MethodInfo(
        name: "a-score", displayName: "A-Score", domain: .imageVLM, families: [.prune], placement: .llmLayer(2),
        signals: [.attentionProbabilities, .tokenLayout], needsAttentionProbabilities: true,
        paper: "Baseline in: Stop Looking for Important Tokens in Multimodal Language Models: Duplication Matters More (EMNLP 2025, arXiv 2502.11494)",
        repository: "ZichenWen1/DART",
        summary: "Top-k visual tokens by head-mean last-token attention of layer K−1; original positions kept")

    public struct Parameters: Sendable, Equatable {
        public var layer: Int = 2
        public var budget: Budget = .count(128)

        public init(layer: Int = 2, budget: Budget = .count(128)) {
            self.layer = layer
            self.budget = budget
        }

        public func validate() throws {
            guard layer >= 1 else { throw CompressionError.invalidParameter("a-score layer K = \(layer) must be ≥ 1 (scores come from layer K−1)") }
            _ = try budget.tokens(outOf: 1)
        }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    /// - Parameter attention: `[heads, n]` softmax probabilities of the last query row.
    public func select(lastRowAttention attention: Tensor, layout: TokenLayout) throws -> CompressionResult {
        let scores = try FastV.headMeanScores(lastRowAttention: attention, layout: layout)
        guard let k = try ImageVLMBaseline.keepCount(parameters.budget, layout: layout) else {
            return ImageVLMBaseline.noOp("a-score", budget: parameters.budget, layout: layout)
        }
        return ImageVLMBaseline.keepTop(scores.map(Double.init), k, largest: true, layout: layout)
    }
}
