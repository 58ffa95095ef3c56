import Foundation
import Tensors

/// EViT — token reorganisation (Liang et al.), one pruning block.
///
/// Criterion: the [CLS] query's softmax attention to the other tokens, averaged over heads.
/// Strategy: keep the `left` most attended tokens (in descending attention order) and, optionally,
/// fuse all the others into one extra token Σ a_j·x_j appended last. The FFN and the following
/// blocks then run on `1 + left (+1)` tokens.
///
/// This is also the token sparsification of Sparse-Tuning (arXiv 2405.14700, `models/vit_image.py`):
/// the same rule at blocks 3, 6, 9 with keep rate 0.7 and a fused token.
///
/// Placement: between the attention residual add and the FFN of blocks 3, 6, 9 (0-based) of DeiT.
public struct EViT {
    public static let info = MethodInfo(
        name: "evit",
        displayName: "EViT",
        domain: .vit,
        families: [.prune, .merge],
        placement: .visionLayers([3, 6, 9]),
        signals: [.clsAttention, .hiddenStates],
        needsAttentionProbabilities: true,
        paper: "Not All Patches are What You Need: Expediting Vision Transformers via Token Reorganizations (ICLR 2022, arXiv 2202.07800)",
        repository: "youweiliang/evit",
        summary: "Keeps the top-k tokens by head-mean [CLS] attention and fuses the rest into one attention-weighted token."
    )

    public struct Parameters: Sendable, Equatable {
        /// Fraction of the non-CLS tokens kept (`base_keep_rate`, 0.7 for DeiT-S/B).
        public var keepRate: Double
        /// Fuse the inattentive tokens into one extra token (default on).
        public var fuseToken: Bool
        /// Explicit number of kept non-CLS tokens; overrides `keepRate` and prunes even at keep rate 1.
        public var tokens: Int?

        public init(keepRate: Double = 0.7, fuseToken: Bool = true, tokens: Int? = nil) {
            self.keepRate = keepRate
            self.fuseToken = fuseToken
            self.tokens = tokens
        }

        public func validate() throws {
            guard keepRate.isFinite, keepRate > 0, keepRate <= 1 else {
                throw CompressionError.invalidBudget("EViT keep rate \(keepRate) must be in (0, 1]")
            }
            if let tokens, tokens < 1 {
                throw CompressionError.invalidBudget("EViT tokens = \(tokens) must be >= 1")
            }
        }

        /// Kept non-CLS tokens for a sequence of `n` tokens (CLS and any earlier fused token included),
        /// or nil when the block does not prune.
        ///
        /// Quirk kept: `math.ceil(keep_rate·(N−1))` in float64, so 0.55·180 = 99.00000000000001 keeps
        /// 100. Pruning runs only when the keep rate is < 1 or an explicit count is given.
        public func leftTokens(tokenCount n: Int) -> Int? {
            if let tokens { return tokens }
            guard keepRate < 1 else { return nil }
            return Int((keepRate * Double(n - 1)).rounded(.up))
        }
    }

    public struct Reorganisation: Sendable {
        /// `[CLS, kept in descending attention, fused?]`, the sequence the FFN runs on.
        public let x: Tensor
        /// Head-mean [CLS] attention to tokens 1…N−1 (entry j−1 ↔ token j).
        public let clsAttention: [Float]
        /// Input indices of the kept tokens in output order (descending attention).
        public let keptOrder: [Int]
        /// Ascending input indices of the non-kept tokens (fused when `fuseToken`, else dropped).
        public let dropped: [Int]
        /// Whether the last row of `x` is a fused token.
        public let hasFusedToken: Bool
        /// Kept indices (CLS included, ascending), counts, and the fused token.
        public let result: CompressionResult
    }

    /// Head mean of the [CLS] query's attention over the non-CLS keys.
    ///
    /// - Parameter clsAttentionHeads: `[H, N]` softmax rows of the CLS query per head; column 0 is
    ///   the CLS key and is ignored (rows are not renormalised, as in `attn[:, :, 0, 1:]`).
    public static func headMeanClsAttention(_ clsAttentionHeads: Tensor) throws -> [Float] {
        guard clsAttentionHeads.rank == 2, clsAttentionHeads.rows >= 1, clsAttentionHeads.columns >= 2 else {
            throw CompressionError.shapeMismatch("EViT [CLS] attention must be [heads, N ≥ 2], got \(clsAttentionHeads.shape)")
        }
        return ClsAttention.reduceHeads(clsAttentionHeads, .mean)
    }

    /// One EViT reorganisation from per-head [CLS] attention rows `[H, N]` and tokens `x` `[N, C]`.
    public static func reorganize(x: Tensor, clsAttentionHeads: Tensor, parameters: Parameters = Parameters()) throws -> Reorganisation {
        let attention = try headMeanClsAttention(clsAttentionHeads)
        guard x.rank == 2, x.rows == clsAttentionHeads.columns else {
            throw CompressionError.shapeMismatch("EViT x \(x.shape) must have one row per attention column (\(clsAttentionHeads.columns))")
        }
        return try reorganize(x: x, clsAttention: attention, parameters: parameters)
    }

    /// One EViT reorganisation from the head-mean [CLS] attention to tokens 1…N−1.
    public static func reorganize(x: Tensor, clsAttention: [Float], parameters: Parameters = Parameters()) throws -> Reorganisation {
        try parameters.validate()
        guard x.rank == 2, x.rows >= 2 else { throw CompressionError.shapeMismatch("EViT x must be [N ≥ 2, C], got \(x.shape)") }
        let n = x.rows, c = x.columns
        guard clsAttention.count == n - 1 else {
            throw CompressionError.shapeMismatch("EViT [CLS] attention has \(clsAttention.count) entries for \(n - 1) non-CLS tokens")
        }
        guard let left = parameters.leftTokens(tokenCount: n), left < n - 1 else {
            let reason = parameters.leftTokens(tokenCount: n) == nil
                ? "keep rate 1 and no explicit token count: the block does not prune"
                : "keeps all \(n - 1) non-CLS tokens"
            if let t = parameters.tokens, t > n - 1 {
                // torch.topk would fail here; we refuse rather than run uncompressed.
                throw CompressionError.invalidBudget("EViT tokens = \(t) exceeds the \(n - 1) non-CLS tokens")
            }
            return Reorganisation(x: x, clsAttention: clsAttention, keptOrder: Array(1..<n), dropped: [], hasFusedToken: false,
                                  result: .noOp(tokenCount: n, requested: n, policy: .notApplicable, reason: reason))
        }
        // topk(largest=True, sorted=True): descending attention; ties (none for real attention) to the lower index.
        let top = Selection.topK(clsAttention, left)
        let keptOrder = top.map { $0 + 1 }
        let topSet = Set(top)
        // complement_idx returns the complement in ascending order.
        let rest = (0..<(n - 1)).filter { !topSet.contains($0) }
        var rows = [x.row(0)] + keptOrder.map { x.row($0) }
        var merged: [MergedToken] = []
        if parameters.fuseToken {
            // Quirk kept: raw attention weights, NOT normalised by their sum (not a convex average).
            var fused = [Float](repeating: 0, count: c)
            for j in rest {
                let a = clsAttention[j]
                let row = x.row(j + 1)
                for k in 0..<c { fused[k] += row[k] * a }
            }
            rows.append(fused)
            merged = [MergedToken(outputIndex: rows.count - 1, sources: rest.map { $0 + 1 })]
        }
        let out = try Tensor(shape: [rows.count, c], values: rows.flatMap { $0 })
        let result = CompressionResult(kept: [0] + keptOrder.sorted(), requestedCount: 1 + left,
                                       achievedCount: rows.count, positionPolicy: .notApplicable, merged: merged)
        return Reorganisation(x: out, clsAttention: clsAttention, keptOrder: keptOrder, dropped: rest.map { $0 + 1 },
                              hasFusedToken: parameters.fuseToken, result: result)
    }

    /// The pruning blocks of a ViT of `depth` blocks: 3, 6, 9 for 12 (`drop_loc`, DeiT-S/B), scaled to
    /// other depths as Python's `round(b·depth/12)` for b = 3, 6, 9 (half to even, as the built-in
    /// model's adapter trainer computes them), keeping the distinct ones in 1 ... depth−1 (24 blocks: 6, 12,
    /// 18; 8 blocks: 2, 4, 6; 10 blocks: 2, 5, 8; 3 blocks: 1, 2; 1 block: none).
    public static func pruningBlocks(depth: Int) -> [Int] {
        var out: [Int] = []
        for k in 1...3 {
            let b = Int((Double(k * depth) / 4).rounded(.toNearestOrEven))
            if b >= 1, b < depth, !out.contains(b) { out.append(b) }
        }
        return out
    }

    /// Token counts through the pruning blocks (DeiT-S/B at 224, keep 0.7 with fusion:
    /// 197 → 140 → 100 → 72). Entry 0 is the input; entry i+1 the count after pruning block i.
    public static func tokenCounts(initialTokens: Int, pruningBlocks: Int, parameters: Parameters = Parameters()) -> [Int] {
        var counts = [initialTokens]
        for _ in 0..<pruningBlocks {
            let n = counts[counts.count - 1]
            if let left = parameters.leftTokens(tokenCount: n), left < n - 1 {
                counts.append(1 + left + (parameters.fuseToken ? 1 : 0))
            } else {
                counts.append(n)
            }
        }
        return counts
    }
}
