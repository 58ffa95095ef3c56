import Foundation
import Tensors

/// PruneVid: merge temporally static video tokens before the LLM, then keep the question-relevant ones
/// inside the LLM.
///
/// Two stages, as in the PLLaVA code of `Visual-AI/PruneVid` (the only released one):
/// 1. `merge` (`merge_frames_dynamic`, before the LLM): cluster the frames with DPC-kNN on frame means, make
///    the clusters temporally contiguous (`refine_clusters`), split each segment's positions into static
///    (mean pairwise cosine over the segment's frames > τ, averaged over time) and per-frame dynamic tokens,
///    and shrink every group of more than 14 tokens to `int(n·cluster_ratio)` DPC-kNN cluster means.
/// 2. `select` (`VTPWindowCache`, LLM layer 10 in prefill): importance of each video token = max over heads and
///    over the text queries after the video of softmax(q·kᵀ/√d) computed WITHOUT RoPE and WITHOUT a causal mask
///    (the `attn_weights_wo_pos` of the patched attention). Per segment keep the top `int(n·α)` static tokens and
///    the top `int(n_f·α)` of each frame's dynamic tokens. Kept tokens keep their original positions.
public struct PruneVid {
    public static let info = MethodInfo(
        name: "prunevid", displayName: "PruneVid", domain: .videoLLM, families: [.merge, .prune],
        placement: .multiple([.llmLayer(0), .llmLayer(10)]),  // merge: projector output, before layer 0
        signals: [.hiddenStates, .frameLayout, .queries, .keys, .tokenLayout],
        needsAttentionProbabilities: true,
        paper: "PruneVid: Visual Token Pruning for Efficient Video Large Language Models (ACL 2025, arXiv 2412.16117)",
        repository: "Visual-AI/PruneVid",
        summary: "Merge static tokens over time and cluster tokens in space before the LLM, then keep the tokens the question attends to at layer 10.")

    public struct Parameters: Sendable, Equatable {
        /// τ: a position is static when its mean pairwise cosine across the segment's frames is > τ.
        public var staticThreshold: Double = 0.8
        /// Number of frame clusters = int(T · ratio).
        public var temporalSegmentRatio: Double = 0.25
        /// A clustered group keeps int(n · ratio) cluster means.
        public var clusterRatio: Double = 0.5
        /// DPC-kNN neighbour count (hard-coded 7 in the code, the point itself included).
        public var neighbours: Int = 7
        /// A group is spatially clustered only when it has MORE than this many tokens (hard-coded 14).
        public var minTokensToCluster: Int = 14
        /// α: fraction of each group kept by the in-LLM selection.
        public var keepRatio: Double = 0.4
        /// LLM layer whose (pre-RoPE) queries and keys drive the selection.
        public var selectedLayer: Int = 10

        public init(staticThreshold: Double = 0.8, temporalSegmentRatio: Double = 0.25, clusterRatio: Double = 0.5,
                    neighbours: Int = 7, minTokensToCluster: Int = 14, keepRatio: Double = 0.4, selectedLayer: Int = 10) {
            self.staticThreshold = staticThreshold
            self.temporalSegmentRatio = temporalSegmentRatio
            self.clusterRatio = clusterRatio
            self.neighbours = neighbours
            self.minTokensToCluster = minTokensToCluster
            self.keepRatio = keepRatio
            self.selectedLayer = selectedLayer
        }

        public func validate() throws {
            guard staticThreshold.isFinite else { throw CompressionError.invalidParameter("PruneVid staticThreshold τ = \(staticThreshold) is not finite") }
            guard temporalSegmentRatio.isFinite, temporalSegmentRatio > 0, temporalSegmentRatio <= 1 else {
                throw CompressionError.invalidParameter("PruneVid temporalSegmentRatio \(temporalSegmentRatio) must be in (0, 1]")
            }
            guard clusterRatio.isFinite, clusterRatio > 0, clusterRatio <= 1 else {
                throw CompressionError.invalidParameter("PruneVid clusterRatio \(clusterRatio) must be in (0, 1]")
            }
            guard neighbours >= 1 else { throw CompressionError.invalidParameter("PruneVid neighbours k = \(neighbours) must be ≥ 1") }
            guard minTokensToCluster >= neighbours - 1 else {
                throw CompressionError.invalidParameter("PruneVid minTokensToCluster \(minTokensToCluster) must be ≥ k − 1 = \(neighbours - 1)")
            }
            guard keepRatio.isFinite, keepRatio > 0, keepRatio <= 1 else {
                throw CompressionError.invalidBudget("PruneVid keepRatio α = \(keepRatio) must be in (0, 1]")
            }
            guard selectedLayer >= 0 else { throw CompressionError.invalidParameter("PruneVid selectedLayer \(selectedLayer) must be ≥ 0") }
        }
    }

    /// Output of the merge stage.
    public struct MergeResult: Sendable {
        /// Merged video tokens: per segment, its static tokens, then each frame's dynamic tokens.
        public var tokens: Tensor
        public var staticSizes: [Int]
        /// Dynamic tokens of each segment, all its frames together.
        public var dynamicSizes: [Int]
        /// Frames per segment (sums to T).
        public var windowSizes: [Int]
        /// [T·L]: whether position l of frame t is static in its segment.
        public var staticMask: [Bool]
        /// Achieved count and the input tokens behind each output token (static/cluster merges).
        public var compression: CompressionResult
    }

    /// Output of the select stage.
    public struct SelectResult: Sendable {
        /// Whole-sequence kept indices (text kept, original positions kept).
        public var compression: CompressionResult
        /// [H, textRows, V]: no-mask, no-RoPE attention of the text after the video on the video keys.
        public var textVideoAttention: Tensor
        /// [V]: max over heads and text rows.
        public var importance: [Float]
    }

    // MARK: - Stage 1: merge

    /// - Parameters:
    ///   - frames: `[T·L, C]` (or `[T, L, C]`) video tokens after the projector, frame-major.
    ///   - frameCount: T.
    public static func merge(frames: Tensor, frameCount: Int, parameters: Parameters = Parameters()) throws -> MergeResult {
        try parameters.validate()
        let T = frameCount
        guard T >= 1, frames.rows > 0, frames.rows % T == 0 else {
            throw CompressionError.shapeMismatch("PruneVid: \(frames.rows) tokens do not split into \(T) frames")
        }
        let L = frames.rows / T, C = frames.columns
        let clusterCount = Int(Double(T) * parameters.temporalSegmentRatio)
        guard T >= parameters.neighbours else {
            throw CompressionError.unsupportedSetting("PruneVid: frame clustering takes the \(parameters.neighbours) nearest of \(T) frames (torch.topk fails)")
        }
        guard clusterCount >= 1 else {
            throw CompressionError.unsupportedSetting("PruneVid: int(\(T)·\(parameters.temporalSegmentRatio)) = 0 frame clusters")
        }
        let x = (0..<(T * L)).map { frames.row($0).map(Double.init) }

        // (1) Frame clustering on frame means.
        let means: [[Double]] = (0..<T).map { t in
            var m = [Double](repeating: 0, count: C)
            for l in 0..<L { for c in 0..<C { m[c] += x[t * L + l][c] } }
            return m.map { $0 / Double(L) }
        }
        let labels = pruneVidDPCLabels(means, clusters: clusterCount, k: parameters.neighbours)
        // (2) Temporally contiguous segments.
        let windows = pruneVidRuns(pruneVidRefine(labels))

        var parts: [[Double]] = []
        var sources: [[Int]] = []
        var staticSizes = [Int](), dynamicSizes = [Int]()
        var staticMask = [Bool](repeating: false, count: T * L)
        var start = 0
        for W in windows {
            // (3) Static positions: (Σ_w Σ_t cos − W) / (W(W−1)); a 1-frame window gives 0/0 = NaN, never static.
            let unit = (start..<(start + W)).map { t in (0..<L).map { l in L2Norm.normalized(x[t * L + l], eps: 1e-12) } }  // F.normalize
            var isStatic = [Bool](repeating: false, count: L)
            for l in 0..<L {
                var total = 0.0
                for w in 0..<W { for t in 0..<W { total += zip(unit[w][l], unit[t][l]).reduce(0) { $0 + $1.0 * $1.1 } } }
                let sim = (total - Double(W)) / Double(W * (W - 1))
                // Compared in float32, as torch compares a float tensor with a Python float.
                isStatic[l] = Float(sim) > Float(parameters.staticThreshold)
            }
            for t in start..<(start + W) { for l in 0..<L { staticMask[t * L + l] = isStatic[l] } }
            let staticPositions = (0..<L).filter { isStatic[$0] }
            let staticRows = staticPositions.map { l -> [Double] in
                var m = [Double](repeating: 0, count: C)
                for t in start..<(start + W) { for c in 0..<C { m[c] += x[t * L + l][c] } }
                return m.map { $0 / Double(W) }
            }
            let staticSources = staticPositions.map { l in (start..<(start + W)).map { $0 * L + l } }
            let (sRows, sSources) = clusterGroup(staticRows, staticSources, parameters)
            parts += sRows; sources += sSources
            staticSizes.append(sRows.count)
            var dynamicCount = 0
            for t in start..<(start + W) {
                let positions = (0..<L).filter { !isStatic[$0] }
                let (dRows, dSources) = clusterGroup(positions.map { x[t * L + $0] }, positions.map { [t * L + $0] }, parameters)
                parts += dRows; sources += dSources
                dynamicCount += dRows.count
            }
            dynamicSizes.append(dynamicCount)
            start += W
        }
        var tokens = Tensor(zeros: [parts.count, C])
        for (i, row) in parts.enumerated() { for c in 0..<C { tokens[i, c] = Float(row[c]) } }
        let merged = sources.enumerated().map { MergedToken(outputIndex: $0.offset, sources: $0.element.sorted()) }
        let compression = CompressionResult(kept: [], requestedCount: parts.count, achievedCount: parts.count,
                                            positionPolicy: .notApplicable, merged: merged)
        return MergeResult(tokens: tokens, staticSizes: staticSizes, dynamicSizes: dynamicSizes, windowSizes: windows,
                           staticMask: staticMask, compression: compression)
    }

    /// A group with more than `minTokensToCluster` tokens becomes int(n·ratio) DPC-kNN cluster means
    /// (plain means, centre included), in centre order = descending DPC score (topk order); smaller groups pass.
    private static func clusterGroup(_ rows: [[Double]], _ sources: [[Int]], _ p: Parameters) -> ([[Double]], [[Int]]) {
        guard rows.count > p.minTokensToCluster else { return (rows, sources) }
        let count = Int(Double(rows.count) * p.clusterRatio)
        let labels = pruneVidDPCLabels(rows, clusters: count, k: p.neighbours)
        var out = [[Double]](repeating: [Double](repeating: 0, count: rows[0].count), count: count)
        var outSources = [[Int]](repeating: [], count: count)
        var sizes = [Int](repeating: 0, count: count)
        for (i, label) in labels.enumerated() {
            for c in 0..<rows[i].count { out[label][c] += rows[i][c] }
            sizes[label] += 1
            outSources[label] += sources[i]
        }
        for k in 0..<count where sizes[k] > 0 { out[k] = out[k].map { $0 / Double(sizes[k]) } }
        return (out, outSources)
    }

    // MARK: - Stage 2: select

    /// The `attn_weights_wo_pos` rows of the text after the video: softmax(q kᵀ/√d) over ALL keys, no causal
    /// mask, no RoPE, per head. `queries`, `keys`: `[H, S, d]` pre-RoPE states of the selected layer.
    public static func textVideoAttention(queries: Tensor, keys: Tensor, layout: TokenLayout) throws -> Tensor {
        guard queries.rank == 3, queries.shape == keys.shape else {
            throw CompressionError.shapeMismatch("PruneVid: queries \(queries.shape) and keys \(keys.shape) must both be [H, S, d] (equal heads: the code does not repeat KV heads)")
        }
        let H = queries.shape[0], S = queries.shape[1], d = queries.shape[2]
        guard S == layout.totalCount else {
            throw CompressionError.shapeMismatch("PruneVid: \(S) query rows for a layout of \(layout.totalCount) tokens")
        }
        let textRows = Array(layout.textRange)
        guard !textRows.isEmpty else { throw CompressionError.missingSignal("PruneVid: no text tokens after the video to score it with") }
        let V = layout.imageCount
        var out = Tensor(zeros: [H, textRows.count, V])
        let scale = 1 / Double(d).squareRoot()
        for h in 0..<H {
            for (r, row) in textRows.enumerated() {
                var logits = [Double](repeating: 0, count: S)
                for j in 0..<S {
                    var dot = 0.0
                    for c in 0..<d { dot += Double(queries[flat: (h * S + row) * d + c]) * Double(keys[flat: (h * S + j) * d + c]) }
                    logits[j] = dot * scale
                }
                let top = logits.max()!
                let e = logits.map { exp($0 - top) }
                let sum = e.reduce(0, +)
                for v in 0..<V { out[flat: (h * textRows.count + r) * V + v] = Float(e[layout.imageStart + v] / sum) }
            }
        }
        return out
    }

    /// Question-guided selection from the merge stage's group sizes.
    public static func select(queries: Tensor, keys: Tensor, layout: TokenLayout, staticSizes: [Int], dynamicSizes: [Int],
                              windowSizes: [Int], parameters: Parameters = Parameters()) throws -> SelectResult {
        try parameters.validate()
        let attention = try textVideoAttention(queries: queries, keys: keys, layout: layout)
        let H = attention.shape[0], R = attention.shape[1], V = attention.shape[2]
        var importance = [Float](repeating: -.infinity, count: V)
        for h in 0..<H { for r in 0..<R { for v in 0..<V { importance[v] = max(importance[v], attention[flat: (h * R + r) * V + v]) } } }
        let visual = try select(importance: importance, staticSizes: staticSizes, dynamicSizes: dynamicSizes,
                                windowSizes: windowSizes, keepRatio: parameters.keepRatio)
        let kept = layout.keptSequence(visual: visual.map { $0 + layout.imageStart })
        let compression = CompressionResult(kept: kept, requestedCount: visual.count, achievedCount: visual.count,
                                            positionPolicy: .keepOriginal)
        return SelectResult(compression: compression, textVideoAttention: attention, importance: importance)
    }

    /// Per segment: top int(n_static·α) static tokens and top int(n_f·α) of each frame's dynamic tokens
    /// (Python int() truncation). Returns video-local indices, ascending.
    public static func select(importance: [Float], staticSizes: [Int], dynamicSizes: [Int], windowSizes: [Int],
                              keepRatio: Double) throws -> [Int] {
        guard staticSizes.count == dynamicSizes.count, dynamicSizes.count == windowSizes.count,
              staticSizes.reduce(0, +) + dynamicSizes.reduce(0, +) == importance.count else {
            throw CompressionError.shapeMismatch("PruneVid: group sizes \(staticSizes)/\(dynamicSizes)/\(windowSizes) do not cover \(importance.count) video tokens")
        }
        var kept = [Int]()
        var offset = 0
        for s in 0..<staticSizes.count {
            let n = staticSizes[s]
            kept += Selection.topK(Array(importance[offset..<(offset + n)]), Int(Double(n) * keepRatio)).map { $0 + offset }
            offset += n
            let W = windowSizes[s]
            guard W > 0, dynamicSizes[s] % W == 0 else {
                throw CompressionError.shapeMismatch("PruneVid: \(dynamicSizes[s]) dynamic tokens do not split into \(W) frames")
            }
            let perFrame = dynamicSizes[s] / W
            for w in 0..<W {
                let base = offset + w * perFrame
                kept += Selection.topK(Array(importance[base..<(base + perFrame)]), Int(Double(perFrame) * keepRatio)).map { $0 + base }
            }
            offset += dynamicSizes[s]
        }
        return kept.sorted()
    }
}

/// `cluster_dpc_knn` (shared core: `DensityPeakClustering`, float64, no density noise): each point's
/// cluster label, labels numbered in centre order = descending DPC score (`torch.topk` order); the k nearest
/// include the point itself.
private func pruneVidDPCLabels(_ x: [[Double]], clusters: Int, k: Int) -> [Int] {
    let dpc = DensityPeakClustering(rows: x, neighbours: k)
    return dpc.assign(to: dpc.centres(clusters, order: .score))
}

/// `refine_clusters`: per label keep its longest run(s) of consecutive frames (a label whose longest run has
/// length 1 loses all its frames); every other run is relabelled to the longer neighbouring run (left on a tie),
/// with the neighbour lengths measured on the partially relabelled sequence while scanning left to right;
/// label 0 when there is no neighbour at all.
private func pruneVidRefine(_ labels: [Int]) -> [Int] {
    let n = labels.count
    var refined = labels
    for label in Set(labels) {
        var runs: [(Int, Int)] = []
        var i = 0
        while i < n {
            if labels[i] == label {
                var j = i
                while j + 1 < n && labels[j + 1] == label { j += 1 }
                runs.append((i, j)); i = j + 1
            } else { i += 1 }
        }
        let longest = runs.map { $0.1 - $0.0 + 1 }.max() ?? 0
        for (a, b) in runs where longest == 1 || b - a + 1 != longest { for t in a...b { refined[t] = -1 } }
    }
    var i = 0
    while i < n {
        guard refined[i] == -1 else { i += 1; continue }
        let start = i
        while i < n && refined[i] == -1 { i += 1 }
        let end = i - 1
        var leftLabel: Int? = nil, leftLength = 0
        if start > 0 {
            let label = refined[start - 1]
            var l = start - 1
            while l >= 0 && refined[l] == label { l -= 1 }
            leftLength = start - l - 1; leftLabel = label
        }
        var rightLabel: Int? = nil, rightLength = 0
        if end < n - 1 {
            let label = refined[end + 1]
            var r = end + 1
            while r < n && refined[r] == label { r += 1 }
            rightLength = r - end - 1; rightLabel = label
        }
        let newLabel: Int
        if leftLength > rightLength { newLabel = leftLabel! }
        else if rightLength > leftLength { newLabel = rightLabel! }
        else { newLabel = leftLabel ?? rightLabel ?? 0 }
        for t in start...end { refined[t] = newLabel }
    }
    return refined
}

/// `segment_lengths`: lengths of the maximal runs of equal labels.
private func pruneVidRuns(_ labels: [Int]) -> [Int] {
    var lengths = [Int]()
    var i = 0
    while i < labels.count {
        var j = i
        while j + 1 < labels.count && labels[j + 1] == labels[i] { j += 1 }
        lengths.append(j - i + 1); i = j + 1
    }
    return lengths
}
