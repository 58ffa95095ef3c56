import Tensors

/// Random baseline: keep a seeded uniform random subset of the visual tokens.
///
/// Same harness as DART (EPIC's `random` variant: prune once at the input of LLM layer K,
/// original positions kept). Deterministic for a fixed seed, but it does not reproduce Python's
/// `random.sample` stream (Mersenne Twister): a SplitMix64 generator drives a partial
/// Fisher–Yates shuffle. The budget follows `Budget` (a keep ratio rounds), not EPIC's
/// `int((1 − ratio)·N)` with a reduction ratio.
public struct RandomPruning: Sendable {
    public static let info = MethodInfo(
        name: "random", displayName: "Random", domain: .imageVLM, families: [.prune], placement: .llmLayer(2),
        signals: [.tokenLayout], needsAttentionProbabilities: false,
        paper: "Baseline in: Stop Looking for Important Tokens in Multimodal Language Models: Duplication Matters More (EMNLP 2025, arXiv 2502.11494)",
        repository: "ZichenWen1/EPIC",
        summary: "Seeded uniform random subset of the visual tokens at LLM layer 2; original positions kept")

    public struct Parameters: Sendable, Equatable {
        public var layer: Int = 2
        /// Visual tokens kept (the DART table's middle setting).
        public var budget: Budget = .count(128)
        /// The reference fixes every seed to 42.
        public var seed: UInt64 = 42

        public init(layer: Int = 2, budget: Budget = .count(128), seed: UInt64 = 42) {
            self.layer = layer
            self.budget = budget
            self.seed = seed
        }

        public func validate() throws {
            guard layer >= 0 else { throw CompressionError.invalidParameter("random layer \(layer) is negative") }
            _ = try budget.tokens(outOf: 1)
        }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    public func select(layout: TokenLayout) throws -> CompressionResult {
        guard let k = try ImageVLMBaseline.keepCount(parameters.budget, layout: layout) else {
            return ImageVLMBaseline.noOp("random", budget: parameters.budget, layout: layout)
        }
        var generator = SplitMix64(seed: parameters.seed)
        var pool = Array(layout.imageRange)
        for i in 0..<k {  // partial Fisher–Yates: the first k slots become a uniform sample
            let j = i + Int(generator.next() % UInt64(pool.count - i))
            pool.swapAt(i, j)
        }
        return CompressionResult(kept: layout.keptSequence(visual: Array(pool.prefix(k))), requestedCount: k,
                                 achievedCount: k, positionPolicy: .keepOriginal)
    }
}
