import Foundation
import Tensors

/// Sparse-Tuning (Liu et al., arXiv 2405.14700; the spec's "Dense-Tuning"): EViT token sparsification
/// at three blocks plus trainable Dense Adapters whose outputs are fed forward densely.
///
/// Token rule: EViT's (`EViT.reorganize`) at blocks 3, 6, 9 of a 12-block ViT, keep rate 0.7, inattentive
/// tokens fused into one. Adapter: per block, on the tokens after the attention (and after that block's
/// pruning) u,
///
///     h0 = ReLU(W1 u + b1)           d → 64
///     h1 = W2 h0 + b2                64 → 32
///     h2 = W3 h1 + b3                32 → 64
///     h3 = W4 [h1 ; h2] + b4 + h0    96 → 64
///     a  = W5 h3 + b5                64 → d
///
/// and the block output is `u + MLP(LN(u)) + a` (AdaptFormer's parallel placement, scale 1). Dense feeding:
/// the blocks form stages that start at the pruning blocks; at the end of each stage the adapter outputs
/// of the stage are added to the residual stream again (stage 0 also adds the patch embedding).
/// Reproduced from `models/vit_image.py` / `models/adapter.py` (`VisionTransformer.forward_features`).
///
/// Placement: between attention and MLP (pruning) and at the end of every block (adapters).
public struct SparseTuning {
    public static let info = MethodInfo(
        name: "sparse_tuning",
        displayName: "Sparse-Tuning",
        domain: .vit,
        families: [.prune, .merge],
        placement: .visionLayers([3, 6, 9]),
        signals: [.clsAttention, .hiddenStates],
        needsAttentionProbabilities: true,
        paper: "Sparse-Tuning: Adapting Vision Transformers with Efficient Fine-tuning and Inference (arXiv 2405.14700)",
        repository: "liuting20/Sparse-Tuning",
        summary: "EViT sparsification (keep 0.7, fused token) at blocks 3, 6, 9 plus Dense Adapters whose outputs are re-added at the end of each stage."
    )

    public struct Parameters: Sendable, Equatable {
        /// Fraction of the non-CLS tokens kept at each pruning block (`base_keep_rate`).
        public var keepRate: Double
        /// Fuse the dropped tokens into one (`--fuse_token`, on in the released scripts).
        public var fuseToken: Bool

        public init(keepRate: Double = 0.7, fuseToken: Bool = true) {
            self.keepRate = keepRate
            self.fuseToken = fuseToken
        }

        public func validate() throws { try evit.validate() }

        /// The token rule at one pruning block.
        public var evit: EViT.Parameters { EViT.Parameters(keepRate: keepRate, fuseToken: fuseToken) }
    }

    /// The pruning blocks for `depth` blocks: EViT's `drop_loc` (3, 6, 9 of 12) scaled to the depth
    /// (`EViT.pruningBlocks(depth:)`).
    public static func pruningBlocks(depth: Int) -> [Int] { EViT.pruningBlocks(depth: depth) }

    /// One stage of the dense feeding: its blocks, the blocks whose adapter outputs are added at its end,
    /// and whether the patch embedding is added too (stage 0).
    public struct Stage: Sendable, Equatable {
        public var blocks: Range<Int>
        public var summed: Range<Int>
        public var addsEmbedding: Bool
        /// The block after which the sum is added.
        public var last: Int { blocks.upperBound - 1 }
    }

    /// The stages of `forward_features` for `depth` blocks pruned at `pruningBlocks`: stage boundaries at
    /// the pruning blocks; each stage's sum is added after its last block. Quirk kept: the last stage
    /// leaves out the last block's own adapter output (12 blocks: `i > 8 and i < 11`, so a₁₁ is used only
    /// inside block 11).
    public static func stages(depth: Int, pruningBlocks: [Int]) throws -> [Stage] {
        guard depth >= 1 else { throw CompressionError.invalidParameter("Sparse-Tuning needs at least one block, got \(depth)") }
        guard pruningBlocks == pruningBlocks.sorted(), Set(pruningBlocks).count == pruningBlocks.count,
              pruningBlocks.allSatisfy({ $0 >= 1 && $0 < depth }) else {
            throw CompressionError.invalidParameter("Sparse-Tuning pruning blocks \(pruningBlocks) must be ascending, distinct and in 1..<\(depth)")
        }
        let bounds = [0] + pruningBlocks + [depth]
        return (0..<(bounds.count - 1)).map { s in
            let blocks = bounds[s]..<bounds[s + 1]
            let isLast = s == bounds.count - 2
            let summed = isLast ? blocks.lowerBound..<max(blocks.lowerBound, blocks.upperBound - 1) : blocks
            return Stage(blocks: blocks, summed: summed, addsEmbedding: s == 0)
        }
    }

    /// One block's Dense Adapter (`models/adapter.py::Adapter`: down1, down2, up1, down3, up2 as W1…W5).
    /// Weights are `[out, in]` as in PyTorch; the widths come from the weights (64/32 in the release).
    public struct DenseAdapter: @unchecked Sendable {
        public let w1, b1, w2, b2, w3, b3, w4, b4, w5, b5: Tensor
        /// Model width d, first bottleneck (64) and second (32).
        public let width, hidden, bottleneck: Int
        /// W4 split into the columns that multiply h1 and those that multiply h2 (`cat([h1, h2])`).
        let w4h1, w4h2: Tensor

        /// Checks that the five layers chain: W1 [h, d], W2 [s, h], W3 [h, s], W4 [h, s + h], W5 [d, h],
        /// biases of the output widths. `name(i)` names layer i (1…5) in errors.
        public init(w1: Tensor, b1: Tensor, w2: Tensor, b2: Tensor, w3: Tensor, b3: Tensor, w4: Tensor, b4: Tensor,
                    w5: Tensor, b5: Tensor, name: (Int) -> String = { "w\($0)" }) throws {
            guard w1.rank == 2, w2.rank == 2 else {
                throw CompressionError.shapeMismatch("Sparse-Tuning adapter: \(name(1)) and \(name(2)) must be matrices, got \(w1.shape) and \(w2.shape)")
            }
            let h = w1.shape[0], d = w1.shape[1], s = w2.shape[0]
            let expected: [(Tensor, [Int], Int, String)] = [
                (w2, [s, h], 2, "weight"), (w3, [h, s], 3, "weight"), (w4, [h, s + h], 4, "weight"), (w5, [d, h], 5, "weight"),
                (b1, [h], 1, "bias"), (b2, [s], 2, "bias"), (b3, [h], 3, "bias"), (b4, [h], 4, "bias"), (b5, [d], 5, "bias"),
            ]
            for (t, shape, i, kind) in expected where t.shape != shape {
                throw CompressionError.shapeMismatch("Sparse-Tuning adapter: \(name(i)) \(kind) has shape \(t.shape), expected \(shape) (W1 is [\(h), \(d)], W2 [\(s), \(h)])")
            }
            self.w1 = w1; self.b1 = b1; self.w2 = w2; self.b2 = b2; self.w3 = w3; self.b3 = b3
            self.w4 = w4; self.b4 = b4; self.w5 = w5; self.b5 = b5
            width = d; hidden = h; bottleneck = s
            w4h1 = try w4.columns(0..<s)
            w4h2 = try w4.columns(s..<(s + h))
        }

        /// The adapter output `a` for tokens `u` `[n, d]`.
        public func callAsFunction(_ u: Tensor) throws -> Tensor {
            guard u.rank == 2, u.columns == width else {
                throw CompressionError.shapeMismatch("Sparse-Tuning adapter of width \(width) got tokens of shape \(u.shape)")
            }
            let h0 = try u.linear(weight: w1, bias: b1).map { max($0, 0) }
            let h1 = try h0.linear(weight: w2, bias: b2)
            let h2 = try h1.linear(weight: w3, bias: b3)
            // W4·[h1; h2] as two products over W4's column blocks.
            let h3 = try (try h1.linear(weight: w4h1) + h2.linear(weight: w4h2, bias: b4)) + h0
            return try h3.linear(weight: w5, bias: b5)
        }

        /// Multiply-adds × 2 of one call on `rows` tokens.
        public func flops(rows: Int) -> Double {
            let d = Double(width), h = Double(hidden), s = Double(bottleneck)
            return 2 * Double(rows) * (d * h + h * s + s * h + (s + h) * h + h * d)
        }
    }
}
