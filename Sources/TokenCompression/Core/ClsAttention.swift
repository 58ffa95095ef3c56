import Tensors

/// The [CLS] query row of a ViT attention map, reduced over heads to one score per patch.
///
/// Why one place: FasterVLM, VisionZip, HiRED, EViT and MustDrop all score patches by how much the [CLS]
/// token attends to them (`attn[:, 0, 1:]`, column 0 = [CLS]→[CLS] dropped), and each had the same loop.
/// What differs is only the head reduction their code uses, a `sum` (VisionZip, HiRED) or a `mean`
/// (FasterVLM, EViT, MustDrop), so that is the parameter. Both sum the heads in float32 in head order,
/// starting from 0; the mean divides that sum by the head count (`tensor.mean` as the codes compute it
/// for these sizes).
public enum ClsAttention {
    /// How the per-head rows are combined.
    public enum HeadReduction: Sendable {
        case sum
        case mean
    }

    /// Scores of the N patches from `clsAttention` `[heads, 1+N]` (the [CLS] row of each head).
    ///
    /// Throws unless there is at least one head and one patch; `method` names the caller in the message.
    public static func patchScores(_ clsAttention: Tensor, heads reduction: HeadReduction, method: String) throws -> [Float] {
        guard clsAttention.rank == 2, clsAttention.shape[0] >= 1, clsAttention.shape[1] >= 2 else {
            throw CompressionError.shapeMismatch("\(method) clsAttention must be [heads, 1+N] with N >= 1, got \(clsAttention.shape)")
        }
        return reduceHeads(clsAttention, reduction)
    }

    /// The reduction alone, for callers that check the shape themselves: `[heads, 1+N]` (rank 2, at least
    /// two columns) to N scores. With zero heads the mean is 0/0 (NaN), as the division would give.
    public static func reduceHeads(_ clsAttention: Tensor, _ reduction: HeadReduction) -> [Float] {
        precondition(clsAttention.rank == 2 && clsAttention.columns >= 2, "[CLS] attention must be [heads, 1+N], got \(clsAttention.shape)")
        let heads = clsAttention.rows, n = clsAttention.columns - 1
        var out = [Float](repeating: 0, count: n)
        clsAttention.withUnsafeBufferPointer { a in
            for h in 0..<heads { for j in 0..<n { out[j] += a[h * (n + 1) + 1 + j] } }
        }
        switch reduction {
        case .sum: return out
        case .mean: return out.map { $0 / Float(heads) }
        }
    }
}
