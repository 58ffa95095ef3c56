import Foundation
import Tensors

/// FastV: after layer K−1, keep the visual tokens the last prompt token attends to most.
///
/// Criterion: head-mean attention probability of the last query row of layer K−1 over the image
/// span. Strategy: keep the top-k. Two ways to act, both from the authors' code:
/// in place (pruned tokens leave the sequence and the KV cache of layers ≥ K; original
/// positions kept) and the attention-mask path (pruned image tokens are masked only as *keys*
/// for layers ≥ K; they stay as queries and in the KV cache). At prefill both pick the same set.
/// Needs one explicit attention row per head (the reference materialises the full eager map).
public struct FastV: Sendable {
    public static let info = MethodInfo(
        name: "fastv", displayName: "FastV", domain: .imageVLM, families: [.prune], placement: .llmLayer(2),
        signals: [.attentionProbabilities, .tokenLayout], needsAttentionProbabilities: true,
        paper: "An Image is Worth 1/2 Tokens After Layer 2: Plug-and-Play Inference Acceleration for Large Vision-Language Models (ECCV 2024, arXiv 2403.06764)",
        repository: "pkunlp-icler/FastV",
        summary: "Top-k visual tokens by head-mean last-token attention of layer K−1; pruned at layer K (in place or key mask)")

    /// How many visual tokens are kept.
    public enum KeepRule: Sendable, Equatable {
        /// `fast_v_attention_rank` (LLaVA fork): keep exactly k.
        case count(Int)
        /// HF-LLaVA port `fastv_r`: drop a fraction R, keeping `round(N·(1−R))` with Python's
        /// `round` — half to even (N = 50, R = 0.75 keeps 12, not 13).
        case reductionRatio(Double)
    }

    public struct Parameters: Sendable, Equatable {
        /// Pruning happens at the input of LLM layer K, from layer K−1's attention.
        public var layer: Int = 2
        /// Paper default R = 50 %.
        public var keep: KeepRule = .reductionRatio(0.5)

        public init(layer: Int = 2, keep: KeepRule = .reductionRatio(0.5)) {
            self.layer = layer
            self.keep = keep
        }

        public func validate() throws {
            // K = 0 selects the reference's random branch (see `RandomPruning`), not attention.
            guard layer >= 1 else { throw CompressionError.invalidParameter("FastV layer K = \(layer) must be ≥ 1 (K = 0 is the random baseline)") }
            switch keep {
            case .count(let k):
                guard k >= 0 else { throw CompressionError.invalidBudget("FastV attention rank \(k) is negative") }
            case .reductionRatio(let r):
                guard r.isFinite, r >= 0, r <= 1 else { throw CompressionError.invalidBudget("FastV reduction ratio \(r) must be in [0, 1]") }
            }
        }

        /// Visual tokens to keep out of `imageCount`.
        public func keptCount(imageCount n: Int) throws -> Int {
            try validate()
            switch keep {
            case .count(let k): return k
            case .reductionRatio(let r): return Selection.roundHalfEven(Double(n) * (1.0 - r))
            }
        }
    }

    public struct Result: Sendable {
        /// In-place path: whole-sequence kept indices (= new position ids, original positions).
        public var compression: CompressionResult
        /// Head-mean score of each visual token (index relative to the image start).
        public var scores: [Float]
        /// Attention-mask path: `keyMask[j]` is false for pruned image tokens (keys masked for
        /// every query in layers ≥ K); its true entries are exactly `compression.kept`.
        public var keyMask: [Bool]

        /// Attention-mask path: may query `i` attend to key `j` in layers ≥ K (causal AND kept key)?
        public func allowed(query i: Int, key j: Int) -> Bool { j <= i && keyMask[j] }

        /// The whole `[n, n]` allowed matrix, row = query, column = key.
        public func allowedMatrix() -> [Bool] {
            let n = keyMask.count
            var out = [Bool](repeating: false, count: n * n)
            for i in 0..<n { for j in 0...i where keyMask[j] { out[i * n + j] = true } }
            return out
        }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    /// `score_j = mean_h A[h, n−1, s+j]` over the image span, from `[heads, n]` last-row probabilities.
    public static func headMeanScores(lastRowAttention attention: Tensor, layout: TokenLayout) throws -> [Float] {
        guard attention.rank == 2, attention.columns == layout.totalCount, attention.rows >= 1 else {
            throw CompressionError.shapeMismatch("FastV last-row attention \(attention.shape), expected [heads, \(layout.totalCount)]")
        }
        let heads = attention.rows
        return layout.imageRange.map { j in
            var sum: Float = 0
            for h in 0..<heads { sum += attention[h, j] }
            return sum / Float(heads)
        }
    }

    /// Selects the kept tokens from layer K−1's last-row attention `[heads, n]`.
    public func select(lastRowAttention attention: Tensor, layout: TokenLayout) throws -> Result {
        let n = layout.totalCount, imageCount = layout.imageCount
        let scores = try Self.headMeanScores(lastRowAttention: attention, layout: layout)
        let k = try parameters.keptCount(imageCount: imageCount)
        if k >= imageCount {
            return Result(compression: .noOp(tokenCount: n, touched: imageCount, requested: k, policy: .keepOriginal,
                                             reason: "FastV keeps \(k) ≥ \(imageCount) visual tokens"),
                          scores: scores, keyMask: [Bool](repeating: true, count: n))
        }
        let visual = Selection.topK(scores, k).map { $0 + layout.imageStart }
        let kept = layout.keptSequence(visual: visual)
        var mask = [Bool](repeating: false, count: n)
        for i in kept { mask[i] = true }
        return Result(compression: CompressionResult(kept: kept, requestedCount: k, achievedCount: k, positionPolicy: .keepOriginal),
                      scores: scores, keyMask: mask)
    }

    /// Visual tokens entering each of `layers` LLM layers (prefill selection).
    public func schedule(layers: Int, imageCount: Int) throws -> TokenSchedule {
        .singleCut(layers: layers, at: parameters.layer, before: imageCount,
                   after: min(imageCount, try parameters.keptCount(imageCount: imageCount)))
    }
}
