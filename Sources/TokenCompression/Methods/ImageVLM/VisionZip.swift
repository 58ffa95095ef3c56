import Tensors

/// VisionZip: keep the few visual tokens the vision encoder's [CLS] attends to ("dominant"),
/// and fold the rest into a handful of "contextual" tokens, inside the vision tower.
///
/// Criterion: the [CLS] row of CLIP layer 22's attention probabilities (`attentions[-2]`, the
/// layer whose output LLaVA uses), summed over heads; for merging, the cosine similarity of the
/// same layer's keys averaged over heads.
/// Strategy: keep [CLS] + the top D−1 patches; pick C targets at regular positions among the
/// remaining tokens, assign every other remaining token to its most similar target, and emit
/// target + mean(assigned tokens) per target. Text-agnostic; acts before the projector.
public struct VisionZip {
    public static let info = MethodInfo(
        name: "visionzip",
        displayName: "VisionZip",
        domain: .imageVLM,
        families: [.prune, .merge],
        placement: .visionLayer(22),
        signals: [.clsAttention, .hiddenStates, .keys, .tokenLayout],
        needsAttentionProbabilities: true,
        paper: "VisionZip: Longer is Better but Not Necessary in Vision Language Models (CVPR 2025, arXiv 2412.04467)",
        repository: "dvlab-research/VisionZip",
        summary: "Keeps [CLS] + the top patches by head-summed [CLS] attention and merges the rest into a few contextual tokens by key similarity to evenly spaced targets."
    )

    public struct Parameters: Sendable, Equatable {
        /// D: dominant tokens per image **including** the [CLS] token (the code keeps [CLS] and
        /// the top D−1 patches). Default 54, the README setting for 64 tokens (54 + 10).
        public var dominant: Int
        /// C: contextual (merged) tokens per image. Default 10.
        public var contextual: Int

        public init(dominant: Int = 54, contextual: Int = 10) {
            self.dominant = dominant
            self.contextual = contextual
        }

        public func validate() throws {
            guard dominant >= 1 else {
                throw CompressionError.invalidBudget("VisionZip dominant \(dominant) must be at least 1 (it counts the [CLS] token)")
            }
            guard contextual >= 1 else {
                throw CompressionError.unsupportedSetting("VisionZip contextual \(contextual): the reference divides by the contextual count, it needs at least 1")
            }
        }

        /// Visual tokens per image after VisionZip.
        public var tokensPerImage: Int { dominant + contextual }
    }

    /// The LLaVA-NeXT crop grid (crops only; the base image comes first).
    public typealias CropGrid = AnyResCropGrid

    /// Outcome for one image of 1+N tokens ([CLS] first).
    public struct ImageResult: Sendable {
        /// `[D + C, width]`: [CLS], the dominant patches in ascending order, then the contextual
        /// tokens in slot order. The input unchanged for a no-op.
        public let tokens: Tensor
        /// Ascending indices into the 1+N sequence of the dominant tokens (0 = [CLS] included).
        public let dominantKept: [Int]
        /// Sequence indices of the contextual targets, in slot order.
        public let contextualTargets: [Int]
        /// Non-target tokens merged into each slot (may be 0).
        public let contextualCounts: [Int]
        /// Per input token: −1 if dominant, else its contextual slot (a target is in its own slot).
        public let assign: [Int]
        /// `kept` = `dominantKept`; `merged` = the contextual tokens (target first in `sources`).
        public let compression: CompressionResult
    }

    /// Outcome for a LLaVA-NeXT AnyRes image (base + crops).
    public struct AnyResResult: Sendable {
        public let images: [ImageResult]
        /// For each row of `packed`, its row in the images' tokens stacked (p·(D+C) + row).
        public let packedRows: [Int]
        /// The final visual sequence handed to the LLM.
        public let packed: Tensor
        /// Over the flattened P·(1+N) inputs: `kept` = dominant tokens as p·(1+N) + i; merged
        /// tokens carry their row in `packed` and flattened sources.
        public let compression: CompressionResult
    }

    /// Head sum of the [CLS] row over the patch columns (`attn[:, 0, 1:].sum(heads)`).
    public static func scores(clsAttention: Tensor) throws -> [Float] {
        try ClsAttention.patchScores(clsAttention, heads: .sum, method: "VisionZip")
    }

    /// VisionZip on one image (the LLaVA-1.5 path; also each image of an AnyRes set).
    ///
    /// - Parameters:
    ///   - clsAttention: `[heads, 1+N]`, the [CLS] row of layer 22's attention probabilities.
    ///   - hidden: `[1+N, C]`, that layer's output ([CLS] first): the tokens kept and merged.
    ///   - metric: `[1+N, C']`, that layer's keys averaged over heads (not normalised).
    ///
    /// Quirks reproduced (dvlab-research/VisionZip `CLIPVisionTower_VisionZip.forward`):
    /// - Targets are chosen by **position**, not by content: candidates number 0, s, 2s, … of
    ///   the non-dominant tokens in sequence order, s = max(1, M // C).
    /// - A contextual token is `hidden[target] + mean(hidden[members])`: the target is **added**
    ///   to its members' mean, not averaged with them (an empty slot gives the target as is).
    public static func compress(clsAttention: Tensor, hidden: Tensor, metric: Tensor,
                                parameters: Parameters = .init()) throws -> ImageResult {
        try parameters.validate()
        let s = try scores(clsAttention: clsAttention)
        let n = s.count, length = n + 1
        guard hidden.rank == 2, hidden.shape[0] == length, metric.rank == 2, metric.shape[0] == length else {
            throw CompressionError.shapeMismatch("VisionZip hidden and metric must be [1+N, width] with 1+N = \(length), got \(hidden.shape) and \(metric.shape)")
        }
        let d = parameters.dominant, c = parameters.contextual
        if d + c >= length {
            // The reference would emit every token (reordered); nothing is reduced.
            return ImageResult(tokens: hidden, dominantKept: Array(0..<length), contextualTargets: [], contextualCounts: [],
                               assign: [Int](repeating: -1, count: length),
                               compression: .noOp(tokenCount: length, requested: d + c, policy: .notApplicable,
                                                  reason: "dominant \(d) + contextual \(c) >= \(length) tokens: nothing to reduce"))
        }
        // Dominant: [CLS] + topk(head-sum, D−1) + 1, gathered through a mask (ascending order).
        let dominantKept = [0] + Selection.topK(s, d - 1).map { $0 + 1 }.sorted()
        var isDominant = [Bool](repeating: false, count: length)
        for i in dominantKept { isDominant[i] = true }
        let candidates = (0..<length).filter { !isDominant[$0] }
        let m = candidates.count
        let step = max(1, m / c)
        let targetSlots = Array(stride(from: 0, to: m, by: step).prefix(c))
        let targets = targetSlots.map { candidates[$0] }

        // metric / metric.norm(dim=-1) in float32, then dot products with the targets.
        let width = metric.columns
        let normalized: [[Float]] = (0..<length).map { L2Norm.normalized(metric.row($0), eps: 0, accumulation: .float32) }
        var assign = [Int](repeating: -1, count: length)
        for (slot, t) in targets.enumerated() { assign[t] = slot }
        var members = [[Int]](repeating: [], count: targets.count)
        let isTarget = Set(targets)
        for i in candidates where !isTarget.contains(i) {
            var best = 0, bestValue = -Float.infinity
            for (slot, t) in targets.enumerated() {
                var dot: Float = 0
                for k in 0..<width { dot += normalized[i][k] * normalized[t][k] }
                if dot > bestValue { best = slot; bestValue = dot }  // argmax: first maximum
            }
            assign[i] = best
            members[best].append(i)
        }

        let columns = hidden.columns
        var out = [Float]()
        out.reserveCapacity((dominantKept.count + targets.count) * columns)
        for i in dominantKept { out.append(contentsOf: hidden.row(i)) }
        for (slot, t) in targets.enumerated() {
            var sum = [Double](repeating: 0, count: columns)
            for i in members[slot] { for k in 0..<columns { sum[k] += Double(hidden[i, k]) } }
            let count = Float(max(members[slot].count, 1))  // counts.clamp(min=1)
            for k in 0..<columns { out.append(hidden[t, k] + Float(sum[k]) / count) }
        }
        let tokens = try Tensor(shape: [dominantKept.count + targets.count, columns], values: out)
        let merged = targets.enumerated().map { slot, t in
            MergedToken(outputIndex: dominantKept.count + slot, sources: [t] + members[slot])
        }
        return ImageResult(tokens: tokens, dominantKept: dominantKept, contextualTargets: targets,
                           contextualCounts: members.map(\.count), assign: assign,
                           compression: CompressionResult(kept: dominantKept, requestedCount: d + c,
                                                          achievedCount: tokens.shape[0],
                                                          positionPolicy: .notApplicable, merged: merged))
    }

    /// VisionZip on a LLaVA-NeXT AnyRes image: every image (base, then crops row-major) is
    /// reduced independently, then laid out as `restore_image_features_sorted` does.
    ///
    /// Quirks reproduced (`visionzip/llava_arch.py`, `mm_patch_merge_type = 'spatial_unpad'`):
    /// despite the name nothing is unpadded and the `image_newline` tensor is built but never
    /// inserted, so there are no newline tokens. The sequence is: the base image's D+C tokens
    /// as they are; the crops' dominant *patch* tokens placed on the stitched crop grid and read
    /// in its raster order; the crops' [CLS] tokens in crop order; the crops' contextual tokens,
    /// crop-major then slot order.
    public static func compressAnyRes(clsAttention: [Tensor], hidden: [Tensor], metric: [Tensor], grid: CropGrid,
                                      parameters: Parameters = .init()) throws -> AnyResResult {
        try parameters.validate()
        try grid.validate(method: "VisionZip")
        let p = 1 + grid.cropCount
        guard clsAttention.count == p, hidden.count == p, metric.count == p else {
            throw CompressionError.shapeMismatch("VisionZip AnyRes needs \(p) images (base + \(grid.cropCount) crops), got \(clsAttention.count), \(hidden.count), \(metric.count)")
        }
        let images = try (0..<p).map {
            try compress(clsAttention: clsAttention[$0], hidden: hidden[$0], metric: metric[$0], parameters: parameters)
        }
        guard images.allSatisfy({ $0.assign.count == images[0].assign.count }) else {
            throw CompressionError.shapeMismatch("VisionZip AnyRes images must all have the same 1+N")
        }
        let length = images[0].assign.count, n = length - 1
        let perImage = images.map { $0.tokens.shape[0] }
        let offsets = perImage.reduce(into: [0]) { $0.append($0.last! + $1) }
        let stacked = try Tensor.concatenateRows(images.map(\.tokens))
        if images.contains(where: { $0.compression.noOpReason != nil }) {
            let rows = Array(0..<stacked.shape[0])
            return AnyResResult(images: images, packedRows: rows, packed: stacked,
                                compression: .noOp(tokenCount: p * length, requested: p * parameters.tokensPerImage,
                                                   policy: .notApplicable,
                                                   reason: "dominant + contextual >= \(length) tokens per image: nothing to reduce"))
        }
        let side = Int(Double(n).squareRoot().rounded())
        guard side * side == n else {
            throw CompressionError.shapeMismatch("VisionZip AnyRes needs a square patch grid, N = \(n)")
        }
        let d = parameters.dominant
        // Row of each crop's dominant patch (grid position i−1) in the stacked tokens.
        var rowOfPatch = [[Int?]](repeating: [Int?](repeating: nil, count: n), count: p)
        for part in 1..<p {
            for (rank, i) in images[part].dominantKept.enumerated() where i > 0 { rowOfPatch[part][i - 1] = offsets[part] + rank }
        }
        var rows = Array(0..<perImage[0])
        for cropRow in 0..<grid.rows {
            for y in 0..<side {
                for cropColumn in 0..<grid.columns {
                    let part = 1 + cropRow * grid.columns + cropColumn
                    for x in 0..<side { if let r = rowOfPatch[part][y * side + x] { rows.append(r) } }
                }
            }
        }
        for part in 1..<p { rows.append(offsets[part]) }
        for part in 1..<p { rows.append(contentsOf: (offsets[part] + d)..<offsets[part + 1]) }

        let kept = (0..<p).flatMap { part in images[part].dominantKept.map { part * length + $0 } }
        var merged: [MergedToken] = []
        for (out, r) in rows.enumerated() {
            guard let part = offsets.lastIndex(where: { $0 <= r }), part < p else { continue }
            let local = r - offsets[part]
            if local >= d {
                let m = images[part].compression.merged[local - d]
                merged.append(MergedToken(outputIndex: out, sources: m.sources.map { part * length + $0 }))
            }
        }
        return AnyResResult(images: images, packedRows: rows, packed: try stacked.gatherRows(rows),
                            compression: CompressionResult(kept: kept, requestedCount: p * parameters.tokensPerImage,
                                                           achievedCount: rows.count, positionPolicy: .notApplicable,
                                                           merged: merged))
    }
}
