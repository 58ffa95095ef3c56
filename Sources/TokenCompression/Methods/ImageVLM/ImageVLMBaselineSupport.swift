import Tensors

/// What the score-then-keep baselines (Random, A-Score, K-norm, V-norm) share: the DART harness
/// (act once at the input of LLM layer K, physically drop pruned visual tokens, keep original
/// positions) and one meaning of the budget (`Budget` over the visual tokens only).
enum ImageVLMBaseline {
    /// Visual tokens to keep, or nil when the budget covers every visual token (explicit no-op).
    static func keepCount(_ budget: Budget, layout: TokenLayout) throws -> Int? {
        if case .count(let k) = budget, k >= layout.imageCount { return nil }
        let k = try budget.tokens(outOf: layout.imageCount)
        return k >= layout.imageCount ? nil : k
    }

    /// Requested count as the user asked for it (before clamping), for no-op results.
    static func requested(_ budget: Budget, layout: TokenLayout) -> Int {
        switch budget {
        case .count(let k): return k
        case .ratio: return (try? budget.tokens(outOf: layout.imageCount)) ?? layout.imageCount
        }
    }

    static func noOp(_ method: String, budget: Budget, layout: TokenLayout) -> CompressionResult {
        .noOp(tokenCount: layout.totalCount, touched: layout.imageCount, requested: requested(budget, layout: layout), policy: .keepOriginal,
              reason: "\(method): budget \(budget) keeps all \(layout.imageCount) visual tokens")
    }

    /// Keeps the visual tokens with the `k` largest (or smallest) scores; `scores[j]` belongs to
    /// visual token `imageStart + j`. Ties go to the lower index.
    static func keepTop(_ scores: [Double], _ k: Int, largest: Bool, layout: TokenLayout) -> CompressionResult {
        let visual = Selection.topK(scores, k, largest: largest).map { $0 + layout.imageStart }
        return CompressionResult(kept: layout.keptSequence(visual: visual), requestedCount: k,
                                 achievedCount: k, positionPolicy: .keepOriginal)
    }

    /// Per-token L1 or L2 norm of the visual rows of a `[n, width]` tensor, in float64.
    static func rowNorms(_ x: Tensor, layout: TokenLayout, l1: Bool, what: String) throws -> [Double] {
        guard x.rank == 2, x.rows == layout.totalCount, x.columns > 0 else {
            throw CompressionError.shapeMismatch("\(what) \(x.shape), expected [\(layout.totalCount), width]")
        }
        return layout.imageRange.map { i in
            let row = x.row(i)
            if l1 { return row.reduce(0.0) { $0 + Double(abs($1)) } }
            return L2Norm.norm(row)
        }
    }
}
