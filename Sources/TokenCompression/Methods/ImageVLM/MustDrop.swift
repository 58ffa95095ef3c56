import Foundation
import Tensors

/// MustDrop: multi-stage vision token dropping (Liu et al.).
///
/// Three stages, each a "score, then act" pair at a different place of a LLaVA model:
/// 1. **Vision, after ViT layer 0 — window merge.** The patch grid is cut into non-overlapping
///    3×3 windows; a window whose tokens are all alike (mean pairwise cosine ≥ 0.8) is merged into
///    one token.
/// 2. **Vision, ViT layer 23 — key set.** The top 8 % of the merged patch tokens by head-mean
///    [CLS] attention form a key set that the LLM stage never drops.
/// 3. **LLM layers 2, 6, 10, 14 — dual-attention filter.** A visual token is dropped only when it
///    is unimportant both globally (summed text→visual attention below a share of the total) and
///    individually (no single text token attends to it above a threshold). Dropped tokens leave
///    the sequence; position ids are renumbered contiguously.
///
/// The functions below are pure: they take the signals (hidden states, attention maps) and return
/// what the authors' code computes, including its quirks (documented where implemented).
public struct MustDrop {
    public static let info = MethodInfo(
        name: "mustdrop",
        displayName: "MustDrop",
        domain: .imageVLM,
        families: [.merge, .prune],
        placement: .multiple([.visionLayer(0), .visionLayer(23), .llmLayers([2, 6, 10, 14])]),
        signals: [.hiddenStates, .clsAttention, .attentionProbabilities, .tokenLayout],
        needsAttentionProbabilities: true,
        paper: "Multi-Stage Vision Token Dropping: Towards Efficient Multimodal Large Language Model (arXiv 2411.10803)",
        repository: "liuting20/MustDrop",
        summary: "3×3 window merge of similar patches at ViT layer 0, a [CLS]-attention key set, and a text→visual dual-attention (sum and max) filter at LLM layers 2/6/10/14")

    public struct Parameters: Sendable, Equatable {
        /// Window height and width in patches (3×3 in the code).
        public var windowHeight: Int
        public var windowWidth: Int
        /// A window merges when its mean pairwise cosine similarity is ≥ this (0.8).
        public var similarityThreshold: Float
        /// Share of merged patch tokens kept in the key set (0.08).
        public var keySetRate: Double
        /// Global threshold: drop candidate only if g_j < globalThreshold · Σ g.
        public var globalThreshold: Float
        /// Individual threshold: ... and max_t A[t, j] < individualThreshold.
        public var individualThreshold: Float
        /// LLM layers whose outputs are filtered.
        public var pruningLayers: [Int]

        /// README setting for ≈192 tokens on LLaVA-1.5-7B: (0.001, 0.001); ≈128: (0.0012, 0.001);
        /// ≈64: (0.011, 0.01).
        public init(windowHeight: Int = 3, windowWidth: Int = 3, similarityThreshold: Float = 0.8,
                    keySetRate: Double = 0.08, globalThreshold: Float = 0.001, individualThreshold: Float = 0.001,
                    pruningLayers: [Int] = [2, 6, 10, 14]) {
            self.windowHeight = windowHeight
            self.windowWidth = windowWidth
            self.similarityThreshold = similarityThreshold
            self.keySetRate = keySetRate
            self.globalThreshold = globalThreshold
            self.individualThreshold = individualThreshold
            self.pruningLayers = pruningLayers
        }

        public func validate() throws {
            guard windowHeight >= 1, windowWidth >= 1, windowHeight * windowWidth >= 2 else {
                throw CompressionError.invalidParameter("window \(windowHeight)×\(windowWidth) must hold at least 2 tokens")
            }
            guard similarityThreshold.isFinite else {
                throw CompressionError.invalidParameter("similarity threshold \(similarityThreshold) is not finite")
            }
            guard keySetRate.isFinite, keySetRate >= 0, keySetRate <= 1 else {
                throw CompressionError.invalidParameter("key-set rate \(keySetRate) must be in [0, 1]")
            }
            guard globalThreshold.isFinite, globalThreshold >= 0 else {
                throw CompressionError.invalidParameter("global threshold \(globalThreshold) must be ≥ 0")
            }
            guard individualThreshold.isFinite, individualThreshold >= 0 else {
                throw CompressionError.invalidParameter("individual threshold \(individualThreshold) must be ≥ 0")
            }
            guard pruningLayers.allSatisfy({ $0 >= 0 }) else {
                throw CompressionError.invalidParameter("pruning layers \(pruningLayers) must be ≥ 0")
            }
        }
    }

    // MARK: - Stage 1: window merge after ViT layer 0

    /// What the window merge did to one image (or one crop of a batch).
    public struct WindowMergeResult: Sendable {
        /// `[1 + r + unmerged, C]`: CLS, the r merged tokens (descending window similarity), then the
        /// unmerged patch tokens in ascending original order. Spatial order is lost.
        public var tokens: Tensor
        /// ToMe-style sizes of the output tokens (CLS 1, merged = window size, unmerged 1).
        public var sizes: [Float]
        /// Mean pairwise cosine similarity of each window, row-major over the window grid.
        public var windowSimilarity: [Float]
        /// Windows merged, in output order (descending similarity).
        public var mergedWindows: [Int]
        /// Whole-sequence index (CLS = 0) of the token each merged window is merged into: its last
        /// (bottom-right) token.
        public var mergedDestinations: [Int]
        /// Whole-sequence indices of the patch tokens left alone, ascending.
        public var unmerged: [Int]
        /// For every input token (CLS included) the output row that contains it.
        public var assignment: [Int]
        /// Kept/merged facts: `kept` lists the input tokens carried over unchanged (CLS and the
        /// unmerged patches); `merged` the window tokens with their sources.
        public var result: CompressionResult
    }

    /// Window merge of a batch of crops that share one merge count (LLaVA-NeXT runs all crops of
    /// an image through the ViT together).
    ///
    /// Each element of `crops` is `[1 + side², C]` (CLS first, patches row-major). The number of
    /// merged windows is the **minimum over the batch** of the per-crop counts of windows with
    /// similarity ≥ threshold, as `conditional_pooling` takes `.min()` over the batch; every crop
    /// then merges its own top-r windows.
    public static func windowMerge(crops: [Tensor], parameters: Parameters = Parameters()) throws -> (mergeCount: Int, crops: [WindowMergeResult]) {
        try parameters.validate()
        guard let first = crops.first else { throw CompressionError.shapeMismatch("window merge needs at least one crop") }
        let width = first.columns
        let total = first.rows
        guard crops.allSatisfy({ $0.rank == 2 && $0.rows == total && $0.columns == width }) else {
            throw CompressionError.shapeMismatch("crops must all be [\(total), \(width)], got \(crops.map(\.shape))")
        }
        let patches = total - 1
        let side = Int(Double(max(patches, 0)).squareRoot().rounded())
        let wh = parameters.windowHeight, ww = parameters.windowWidth
        guard patches > 0, side * side == patches, side % wh == 0, side % ww == 0 else {
            throw CompressionError.shapeMismatch("\(patches) patch tokens are not a square grid divisible by the \(wh)×\(ww) window")
        }
        let windowsPerRow = side / ww, windowsPerColumn = side / wh
        let windowCount = windowsPerRow * windowsPerColumn
        // Patch indices of each window, row-major inside the window (unfold order).
        let windowTokens: [[Int]] = (0..<windowCount).map { w in
            let gy = w / windowsPerRow, gx = w % windowsPerRow
            var list: [Int] = []
            for dy in 0..<wh { for dx in 0..<ww { list.append((gy * wh + dy) * side + gx * ww + dx) } }
            return list
        }
        let similarities = crops.map { mustDropWindowSimilarities($0, windows: windowTokens) }
        // `torch.ge(sim, threshold).sum(dim=1).min()`: the threshold is a float32 tensor.
        let mergeCount = similarities.map { s in s.filter { $0 >= parameters.similarityThreshold }.count }.min() ?? 0
        let results = try zip(crops, similarities).map { crop, sims in
            try mustDropMergeWindows(crop, similarities: sims, windows: windowTokens, count: mergeCount)
        }
        return (mergeCount, results)
    }

    /// Window merge of a single image `[1 + side², C]`.
    public static func windowMerge(_ hidden: Tensor, parameters: Parameters = Parameters()) throws -> WindowMergeResult {
        try windowMerge(crops: [hidden], parameters: parameters).crops[0]
    }

    // MARK: - Stage 2: key set at ViT layer 23

    /// Key set: indices (relative to the first patch token) of the `ceil(rate·(N−1))` tokens with
    /// the largest head-mean [CLS] attention, in `torch.topk` order (descending).
    ///
    /// `clsAttention` is `[heads, N]`: row 0 of layer 23's attention map per head, CLS column
    /// included (N = tokens after the window merge). The count is a float64 `ceil` as in the code
    /// (0.08·576 = 46.08 → 47). Not covered by the shared cases.
    public static func keySet(clsAttention: Tensor, parameters: Parameters = Parameters()) throws -> [Int] {
        try parameters.validate()
        guard clsAttention.rank == 2, clsAttention.columns >= 2 else {
            throw CompressionError.shapeMismatch("[CLS] attention must be [heads, N ≥ 2], got \(clsAttention.shape)")
        }
        let n = clsAttention.columns
        let mean = ClsAttention.reduceHeads(clsAttention, .mean)
        let count = Int((parameters.keySetRate * Double(n - 1)).rounded(.up))
        return Selection.topK(mean, count)
    }

    // MARK: - Stage 3: dual-attention filter at an LLM layer

    /// What the filter decided at one LLM layer.
    public struct FilterResult: Sendable {
        /// Per current visual token: true when it is a drop candidate (both attentions below
        /// threshold), before the key set is re-added (the code's `candidate_mask`).
        public var candidate: [Bool]
        /// Head-mean text→visual attention summed over text rows (global score g).
        public var globalScore: [Float]
        /// Head-mean text→visual attention, max over text rows (individual score m).
        public var individualScore: [Float]
        /// Kept visual tokens relative to the first visual token, ascending.
        public var visualKept: [Int]
        /// Key set for the next pruning layer: positions inside `visualKept` of the incoming key-set
        /// members, ascending.
        public var keySetOut: [Int]
        /// Whole-sequence kept indices (system, kept visual, text), ascending; renumbered positions.
        public var result: CompressionResult
        /// Visual tokens after the step.
        public var visualCount: Int { visualKept.count }
    }

    /// Dual-attention filter at a pruning layer.
    ///
    /// - `attention`: `[heads, Q, S]` attention probabilities of that layer, either every query row
    ///   (`Q = S`) or only the text query rows (`Q` = tokens after the image span).
    /// - `keySet`: visual indices relative to the first visual token that are always retained.
    ///
    /// Quirks kept from the code: the drop rule is an AND of two strict `<` comparisons computed in
    /// float32 (`g_j < Σg·thr`, `m_j < thr`); the key set is added back with `torch.unique`, and the
    /// outgoing key set is re-indexed into the kept list (`nonzero(isin(...))`).
    public static func dualAttentionFilter(attention: Tensor, layout: TokenLayout, keySet: [Int],
                                           parameters: Parameters = Parameters()) throws -> FilterResult {
        try parameters.validate()
        let s = layout.totalCount, v = layout.imageCount
        let textRows = layout.textRange.count
        guard attention.rank == 3, attention.shape[2] == s, attention.shape[1] == s || attention.shape[1] == textRows else {
            throw CompressionError.shapeMismatch("attention must be [heads, \(s) or \(textRows), \(s)], got \(attention.shape)")
        }
        if let bad = keySet.first(where: { $0 < 0 || $0 >= v }) {
            throw CompressionError.invalidParameter("key-set index \(bad) outside the \(v) visual tokens")
        }
        guard v > 0 else {
            let r = CompressionResult.noOp(tokenCount: s, touched: 0, requested: 0, policy: .renumber, reason: "no visual tokens to filter")
            return FilterResult(candidate: [], globalScore: [], individualScore: [], visualKept: [], keySetOut: [], result: r)
        }
        let heads = attention.shape[0], q = attention.shape[1]
        let rowOffset = q == s ? layout.textRange.lowerBound : 0
        var global = [Float](repeating: 0, count: v)
        var individual = [Float](repeating: -.infinity, count: v)
        attention.withUnsafeBufferPointer { a in
            for t in 0..<textRows {
                for j in 0..<v {
                    var m: Float = 0
                    for h in 0..<heads { m += a[(h * q + rowOffset + t) * s + layout.imageStart + j] }
                    m /= Float(heads)
                    global[j] += m
                    individual[j] = max(individual[j], m)
                }
            }
        }
        var totalGlobal: Float = 0
        for g in global { totalGlobal += g }
        let bound = totalGlobal * parameters.globalThreshold
        let candidate = (0..<v).map { global[$0] < bound && individual[$0] < parameters.individualThreshold }
        let kept = Set((0..<v).filter { !candidate[$0] }).union(keySet).sorted()
        let keySetMembers = Set(keySet)
        let keySetOut = kept.indices.filter { keySetMembers.contains(kept[$0]) }
        let sequence = layout.keptSequence(visual: kept.map { $0 + layout.imageStart })
        var result = CompressionResult(kept: sequence, requestedCount: v - candidate.filter { $0 }.count,
                                       achievedCount: kept.count, positionPolicy: .renumber)
        if kept.count == v { result.noOpReason = "every visual token passed the filter or is in the key set" }
        return FilterResult(candidate: candidate, globalScore: global, individualScore: individual,
                            visualKept: kept, keySetOut: keySetOut, result: result)
    }

    /// Applies a filter result to the layer's output hidden states `[S, C]`: the rows of
    /// `result.kept`, with position ids renumbered `0..<kept` (the code truncates its arange).
    public static func apply(_ filter: FilterResult, to hidden: Tensor) throws -> (hidden: Tensor, positionIds: [Int]) {
        guard hidden.rank == 2, filter.result.kept.allSatisfy({ $0 < hidden.rows }) else {
            throw CompressionError.shapeMismatch("hidden states \(hidden.shape) do not cover the kept indices")
        }
        return (try hidden.gatherRows(filter.result.kept), Array(0..<filter.result.kept.count))
    }
}

/// Mean pairwise cosine similarity inside each window, self-pairs excluded (÷ n·(n−1)).
private func mustDropWindowSimilarities(_ crop: Tensor, windows: [[Int]]) -> [Float] {
    let c = crop.columns
    return crop.withUnsafeBufferPointer { x -> [Float] in
        windows.map { tokens in
            // Unit vectors as F.cosine_similarity (norms clamped at 1e-8).
            let units: [[Double]] = tokens.map { p in
                L2Norm.normalized((0..<c).map { Double(x[(1 + p) * c + $0]) }, eps: 1e-8)
            }
            var sum = 0.0
            for i in 0..<units.count {
                for j in 0..<units.count where j != i {
                    var dot = 0.0
                    for k in 0..<c { dot += units[i][k] * units[j][k] }
                    sum += dot
                }
            }
            return Float(sum / Double(units.count * (units.count - 1)))
        }
    }
}

/// Merges the `count` most similar windows of one crop into their last token (size-weighted mean).
private func mustDropMergeWindows(_ crop: Tensor, similarities: [Float], windows: [[Int]], count: Int) throws -> MustDrop.WindowMergeResult {
    let c = crop.columns
    let merged = Selection.topK(similarities, count)
    let mergedSet = Set(merged)
    let unmergedPatches = windows.indices.filter { !mergedSet.contains($0) }.flatMap { windows[$0] }.sorted()
    let outCount = 1 + merged.count + unmergedPatches.count
    var out = Tensor(zeros: [outCount, c])
    var sizes = [Float](repeating: 1, count: outCount)
    var assignment = [Int](repeating: 0, count: crop.rows)
    var mergedTokens: [MergedToken] = []
    crop.withUnsafeBufferPointer { x in
        out.withUnsafeMutableBufferPointer { o in
            for k in 0..<c { o[k] = x[k] }
            for (slot, w) in merged.enumerated() {
                let row = 1 + slot
                let tokens = windows[w]
                // scatter_reduce("sum") onto the destination, then ÷ size (merge_wavg).
                let dst = tokens[tokens.count - 1]
                for k in 0..<c {
                    var s = x[(1 + dst) * c + k]
                    for p in tokens.dropLast() { s += x[(1 + p) * c + k] }
                    o[row * c + k] = s / Float(tokens.count)
                }
                sizes[row] = Float(tokens.count)
                for p in tokens { assignment[1 + p] = row }
                mergedTokens.append(MergedToken(outputIndex: row, sources: tokens.map { 1 + $0 }.sorted()))
            }
            for (u, p) in unmergedPatches.enumerated() {
                let row = 1 + merged.count + u
                for k in 0..<c { o[row * c + k] = x[(1 + p) * c + k] }
                assignment[1 + p] = row
            }
        }
    }
    let keptInputs = [0] + unmergedPatches.map { 1 + $0 }
    var result = CompressionResult(kept: keptInputs, requestedCount: outCount - 1, achievedCount: outCount - 1,
                                   positionPolicy: .notApplicable, merged: mergedTokens)
    if merged.isEmpty { result.noOpReason = "no window reached the similarity threshold in every crop (r = 0)" }
    return MustDrop.WindowMergeResult(
        tokens: out, sizes: sizes, windowSimilarity: similarities, mergedWindows: merged,
        mergedDestinations: merged.map { 1 + windows[$0][windows[$0].count - 1] },
        unmerged: unmergedPatches.map { 1 + $0 }, assignment: assignment, result: result)
}
