import Tensors

/// FasterVLM: keep the visual tokens the vision encoder's [CLS] token attends to most.
///
/// Criterion: the [CLS] row of the post-softmax attention of the ViT layer whose output LLaVA
/// uses as visual features (CLIP layer 22 = `attentions[-2]`), averaged over heads.
/// Strategy: keep the top-T patches and drop the rest before the LLM, in raster order.
/// The [CLS] attention is more concentrated than the LLM's text→image attention and it is
/// available before the LLM runs, so the LLM itself stays untouched (FlashAttention-compatible);
/// only the ViT layer must return its attention probabilities (a 577² matrix, cheap).
public struct FasterVLM {
    public static let info = MethodInfo(
        name: "fastervlm",
        displayName: "FasterVLM",
        domain: .imageVLM,
        families: [.prune],
        placement: .beforeProjector,
        signals: [.clsAttention, .hiddenStates, .tokenLayout],
        needsAttentionProbabilities: true,
        paper: "[CLS] Attention is All You Need for Training-Free Visual Token Pruning: Make VLM Inference Faster (arXiv preprint, arXiv 2412.01818)",
        repository: "Theia-4869/FasterVLM",
        summary: "Keeps the T patches with the highest head-mean [CLS] attention of the feature ViT layer, per image (per crop for AnyRes), before the LLM."
    )

    public struct Parameters: Sendable, Equatable {
        /// T: patch tokens kept per image. With LLaVA-NeXT AnyRes, T is applied to the base image
        /// and to every crop independently, so an image keeps T × (1 + crops).
        /// Default 144 = 576 × (1 − 0.75), the paper's 75 % reduction setting (58 = 90 %, 29 = 95 %).
        public var visualTokenNum: Int

        public init(visualTokenNum: Int = 144) {
            self.visualTokenNum = visualTokenNum
        }

        public func validate() throws {
            guard visualTokenNum >= 1 else {
                throw CompressionError.invalidBudget("FasterVLM visualTokenNum \(visualTokenNum) must be at least 1")
            }
        }
    }

    /// The LLaVA-NeXT crop grid of one AnyRes image (crops only; the base image comes first).
    public typealias CropGrid = AnyResCropGrid

    /// Outcome for one image (or one AnyRes partition).
    public struct ImageResult: Sendable {
        /// Head-mean [CLS] attention per patch (N values, [CLS] column excluded).
        public let scores: [Float]
        /// `kept` indexes the N patch tokens ([CLS] excluded), ascending.
        public let compression: CompressionResult
        /// `features[kept]`, the order the LLM receives them.
        public let keptFeatures: Tensor
    }

    /// Outcome for a whole AnyRes image: base + crops.
    public struct AnyResResult: Sendable {
        /// Per partition: p = 0 the base image, p = 1... the crops in row-major crop order.
        public let partitions: [ImageResult]
        /// Over the flattened P·N tokens: `kept` = p·N + j, ascending.
        public let compression: CompressionResult
        /// The LLM order of the kept tokens as p·N + j (see `pruneAnyRes`).
        public let order: [Int]
        /// The kept features in `order`.
        public let features: Tensor
    }

    /// Head-mean of the [CLS] query row over the patch columns.
    ///
    /// - Parameter clsAttention: `[heads, 1+N]`, the [CLS] row of the attention probabilities;
    ///   column 0 ([CLS]→[CLS]) is ignored as in `feature_select` (`attentions[..., 0, 1:]`).
    ///   float32 sum over heads, then divide: `tensor.mean(dim=1)` in the reference.
    public static func scores(clsAttention: Tensor) throws -> [Float] {
        try ClsAttention.patchScores(clsAttention, heads: .mean, method: "FasterVLM")
    }

    /// Prunes one image (LLaVA-1.5 path).
    ///
    /// - Parameters:
    ///   - clsAttention: `[heads, 1+N]` [CLS] row of the feature layer's attention probabilities.
    ///   - features: `[N, C]` patch features of that layer ([CLS] removed).
    public static func prune(clsAttention: Tensor, features: Tensor, parameters: Parameters = .init()) throws -> ImageResult {
        try parameters.validate()
        let s = try scores(clsAttention: clsAttention)
        let n = s.count
        guard features.rank == 2, features.shape[0] == n else {
            throw CompressionError.shapeMismatch("FasterVLM features must be [N, C] with N = \(n) (from clsAttention), got \(features.shape)")
        }
        let t = parameters.visualTokenNum
        if t >= n {
            // The reference would fail (topk k > N) or keep everything (k = N): say so instead.
            return ImageResult(scores: s,
                               compression: .noOp(tokenCount: n, requested: t, policy: .notApplicable,
                                                  reason: "visualTokenNum \(t) >= \(n) patch tokens: nothing to prune"),
                               keptFeatures: features)
        }
        // torch.topk(score, T) scattered into a boolean mask: only the set matters, features
        // keep their original raster order.
        let kept = Selection.topK(s, t).sorted()
        return ImageResult(scores: s,
                           compression: CompressionResult(kept: kept, requestedCount: t, achievedCount: kept.count,
                                                          positionPolicy: .notApplicable),
                           keptFeatures: try features.gatherRows(kept))
    }

    /// Prunes a LLaVA-NeXT AnyRes image: T per partition, then the code's token layout.
    ///
    /// Quirk reproduced: FasterVLM hard-codes `mm_patch_merge_type = 'spatial'`, so there is
    /// no unpadding and no `image_newline` token. The order is the base image's kept tokens
    /// (raster), then the crops' kept tokens in raster order of the *stitched* crop grid
    /// (`view(nph, npw, h, w).permute(0, 2, 1, 3)`): one stitched row runs through every crop of
    /// its crop row before the next row starts. The total is exactly T × P.
    ///
    /// - Parameters:
    ///   - clsAttention: P tensors `[heads, 1+N]`; index 0 is the base image, then crops row-major.
    ///   - features: P tensors `[N, C]`.
    public static func pruneAnyRes(clsAttention: [Tensor], features: [Tensor], grid: CropGrid,
                                   parameters: Parameters = .init()) throws -> AnyResResult {
        try parameters.validate()
        try grid.validate(method: "FasterVLM")
        let p = 1 + grid.cropCount
        guard clsAttention.count == p, features.count == p else {
            throw CompressionError.shapeMismatch("FasterVLM AnyRes needs \(p) partitions (base + \(grid.cropCount) crops), got \(clsAttention.count) attention rows and \(features.count) feature tensors")
        }
        let parts = try (0..<p).map { try prune(clsAttention: clsAttention[$0], features: features[$0], parameters: parameters) }
        let n = parts[0].scores.count
        guard parts.allSatisfy({ $0.scores.count == n }), features.allSatisfy({ $0.shape == features[0].shape }) else {
            throw CompressionError.shapeMismatch("FasterVLM AnyRes partitions must all have the same N and width")
        }
        let side = Int(Double(n).squareRoot().rounded())
        guard side * side == n else {
            throw CompressionError.shapeMismatch("FasterVLM AnyRes needs a square patch grid, N = \(n)")
        }
        var mask = [[Bool]](repeating: [Bool](repeating: false, count: n), count: p)
        for (i, part) in parts.enumerated() { for j in part.compression.kept { mask[i][j] = true } }

        var order = parts[0].compression.kept
        for cropRow in 0..<grid.rows {
            for y in 0..<side {
                for cropColumn in 0..<grid.columns {
                    let part = 1 + cropRow * grid.columns + cropColumn
                    for x in 0..<side where mask[part][y * side + x] { order.append(part * n + y * side + x) }
                }
            }
        }
        let flat = try Tensor.concatenateRows(features).reshaped([p * n, features[0].columns])
        let kept = order.sorted()
        let requested = parameters.visualTokenNum * p
        let allNoOp = parts.allSatisfy { $0.compression.noOpReason != nil }
        let compression = CompressionResult(
            kept: kept, requestedCount: requested, achievedCount: kept.count, positionPolicy: .notApplicable,
            noOpReason: allNoOp ? "visualTokenNum \(parameters.visualTokenNum) >= \(n) tokens per partition: nothing to prune" : nil)
        return AnyResResult(partitions: parts, compression: compression, order: order, features: try flat.gatherRows(order))
    }
}
