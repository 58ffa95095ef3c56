import Foundation
import Tensors

/// SparseVLM v1.5: text-guided progressive visual-token sparsification with token recycling
/// (Zhang et al., ICML 2025).
///
/// Criterion: a few text tokens are chosen as *raters* once, from the prompt embeddings; at each
/// sparse LLM layer (2, 6, 15) every current visual token is scored by the attention the raters
/// pay to it (head mean, then rater mean). Strategy: keep the top-k visual tokens of that layer's
/// output, and *recycle* the best 30 % (+1) of the deleted ones by DPC-kNN clustering them into a
/// few averaged tokens that are inserted right after the kept visual tokens. Positions are then
/// renumbered contiguously.
///
/// The counts are the code's absolute per-layer schedule, not the "retained tokens" number: the
/// setting names (192/128/64) are *layer-averaged* visual-token counts (see `tokenSchedule`).
public struct SparseVLM {
    public static let info = MethodInfo(
        name: "sparsevlm",
        displayName: "SparseVLM v1.5",
        domain: .imageVLM,
        families: [.prune, .merge],
        placement: .llmLayers([2, 6, 15]),
        signals: [.textEmbeddings, .attentionProbabilities, .hiddenStates, .tokenLayout],
        needsAttentionProbabilities: true,
        paper: "SparseVLM: Visual Token Sparsification for Efficient Vision-Language Model Inference (ICML 2025, arXiv 2410.04417)",
        repository: "Gumpest/SparseVLMs",
        summary: "text raters from the prompt embeddings score visual tokens by attention at layers 2/6/15; top-k kept, top 30 % of the deleted recycled by DPC-kNN cluster merging")

    /// The v1.5 schedules of `score.py`: absolute visual tokens kept at the sparse layers.
    public static let officialSchedules: [Int: [Int]] = [192: [300, 200, 110], 128: [303, 110, 36], 64: [66, 30, 17]]

    public struct Parameters: Sendable, Equatable {
        /// `--retained_tokens` setting; selects the schedule when `schedule` is not given.
        public var retainedTokens: Int
        /// Visual tokens kept as they are at each sparse layer (before recycling).
        public var schedule: [Int]
        /// 0-based decoder layers whose outputs are sparsified (same length as `schedule`).
        public var sparseLayers: [Int]
        /// Share of the deleted tokens recycled: `int(ratio · deleted) + 1` candidates.
        public var recycleRatio: Double

        /// Main setting: 192 retained tokens (schedule 300/200/110 at layers 2/6/15).
        public init(retainedTokens: Int = 192, schedule: [Int]? = nil, sparseLayers: [Int] = [2, 6, 15],
                    recycleRatio: Double = 0.3) {
            self.retainedTokens = retainedTokens
            self.schedule = schedule ?? SparseVLM.officialSchedules[retainedTokens] ?? []
            self.sparseLayers = sparseLayers
            self.recycleRatio = recycleRatio
        }

        public func validate() throws {
            guard !schedule.isEmpty else {
                throw CompressionError.invalidBudget("no v1.5 schedule for retained_tokens \(retainedTokens) (official: 192, 128, 64); pass `schedule`")
            }
            guard schedule.count == sparseLayers.count else {
                throw CompressionError.invalidParameter("schedule \(schedule) needs one entry per sparse layer \(sparseLayers)")
            }
            guard schedule.allSatisfy({ $0 >= 0 }) else {
                throw CompressionError.invalidBudget("schedule \(schedule) has a negative count")
            }
            guard sparseLayers.allSatisfy({ $0 >= 0 }), sparseLayers == sparseLayers.sorted(), Set(sparseLayers).count == sparseLayers.count else {
                throw CompressionError.invalidParameter("sparse layers \(sparseLayers) must be distinct, ascending and ≥ 0")
            }
            guard recycleRatio.isFinite, recycleRatio >= 0, recycleRatio <= 1 else {
                throw CompressionError.invalidParameter("recycle ratio \(recycleRatio) must be in [0, 1]")
            }
        }

        /// The schedule entry of a sparse layer.
        public func target(layer: Int) throws -> Int {
            try validate()
            guard let i = sparseLayers.firstIndex(of: layer) else {
                throw CompressionError.invalidParameter("layer \(layer) is not a sparse layer \(sparseLayers)")
            }
            return schedule[i]
        }
    }

    // MARK: - Counts

    /// Visual tokens kept as they are: `min(target, visual − 1)`.
    ///
    /// Quirk: the cap is `v_token_num − 1`, so at least one token is always deleted (and recycled),
    /// even when the schedule asks for more tokens than there are.
    public static func keepCount(target: Int, visualCount: Int) -> Int { max(0, min(target, visualCount - 1)) }

    /// Recycling candidates among `deleted` tokens: `int(ratio · deleted) + 1` (float64, truncated).
    public static func recycleCount(deleted: Int, ratio: Double) -> Int { min(deleted, Int(ratio * Double(deleted)) + 1) }

    /// Clusters (= merged tokens) for `candidates`: `int(candidates / 10) + 1`.
    public static func clusterCount(candidates: Int) -> Int { candidates / 10 + 1 }

    /// Visual tokens entering each of `layers` decoder layers for an image of `imageTokens`.
    ///
    /// The counts are data-independent, so the whole schedule follows from the parameters. The
    /// code's own "equal token num" printout appends each layer's count *after* that layer's
    /// pruning; `layerAveraged` reproduces that number (192.03 / 128.62 / 64.81 for the three
    /// settings on 576 tokens, which is where the names 192/128/64 come from), while
    /// `schedule.tokensPerLayer` is what each layer really processes (its average is higher).
    public static func tokenSchedule(layers: Int = 32, imageTokens: Int = 576,
                                     parameters: Parameters = Parameters()) throws -> (schedule: TokenSchedule, layerAveraged: Double) {
        try parameters.validate()
        guard layers > 0, imageTokens >= 0 else {
            throw CompressionError.invalidParameter("layers \(layers) and image tokens \(imageTokens) must be positive")
        }
        var entering: [Int] = [], after: [Int] = []
        var v = imageTokens
        for layer in 0..<layers {
            entering.append(v)
            if let i = parameters.sparseLayers.firstIndex(of: layer), v > 0 {
                let k = keepCount(target: parameters.schedule[i], visualCount: v)
                let candidates = recycleCount(deleted: v - k, ratio: parameters.recycleRatio)
                v = k + (candidates > 0 ? clusterCount(candidates: candidates) : 0)
            }
            after.append(v)
        }
        return (TokenSchedule(tokensPerLayer: entering), Double(after.reduce(0, +)) / Double(layers))
    }

    // MARK: - Criterion

    /// Raters: text tokens (indices relative to the first token after the image) with
    /// `p_t > mean(p)`, `p = mean over visual rows of softmax over text of (V·Tᵀ)`.
    ///
    /// Computed once from the **original prompt embeddings** (layer-0 input) and reused at every
    /// sparse layer, even though the visual tokens change (quirk of the code). Float32 throughout.
    public static func selectRaters(embeddings: Tensor, layout: TokenLayout) throws -> [Int] {
        guard embeddings.rank == 2, embeddings.rows == layout.totalCount else {
            throw CompressionError.shapeMismatch("embeddings \(embeddings.shape) do not match a sequence of \(layout.totalCount)")
        }
        let textCount = layout.textRange.count
        guard layout.imageCount > 0, textCount > 0 else {
            throw CompressionError.missingSignal("rater selection needs visual and text tokens (got \(layout.imageCount) and \(textCount))")
        }
        let visual = try embeddings.rows(layout.imageRange)
        let text = try embeddings.rows(layout.textRange)
        let probabilities = try visual.matmul(text.transposed()).softmaxRows()
        var p = [Float](repeating: 0, count: textCount)
        for i in 0..<layout.imageCount { for t in 0..<textCount { p[t] += probabilities[i, t] } }
        p = p.map { $0 / Float(layout.imageCount) }
        var total: Float = 0
        for x in p { total += x }
        let mean = total / Float(textCount)
        return p.indices.filter { p[$0] > mean }
    }

    /// Score of each current visual token: attention of the rater rows, head mean then rater mean.
    ///
    /// `attention` is `[heads, Q, S]`: either every query row (`Q = S`) or only the text query rows
    /// (`Q` = tokens after the image span); `raters` are relative to the first text token.
    public static func visualScores(attention: Tensor, layout: TokenLayout, raters: [Int]) throws -> [Float] {
        let s = layout.totalCount, textCount = layout.textRange.count
        guard attention.rank == 3, attention.shape[2] == s, attention.shape[1] == s || attention.shape[1] == textCount else {
            throw CompressionError.shapeMismatch("attention must be [heads, \(s) or \(textCount), \(s)], got \(attention.shape)")
        }
        guard !raters.isEmpty else { throw CompressionError.missingSignal("no rater text tokens") }
        if let bad = raters.first(where: { $0 < 0 || $0 >= textCount }) {
            throw CompressionError.invalidParameter("rater \(bad) outside the \(textCount) text tokens")
        }
        let heads = attention.shape[0], q = attention.shape[1]
        let rowOffset = q == s ? layout.textRange.lowerBound : 0
        return attention.withUnsafeBufferPointer { a in
            (0..<layout.imageCount).map { j in
                var sum: Float = 0
                for t in raters {
                    var h: Float = 0
                    for head in 0..<heads { h += a[(head * q + rowOffset + t) * s + layout.imageStart + j] }
                    sum += h / Float(heads)
                }
                return sum / Float(raters.count)
            }
        }
    }

    // MARK: - Recycling: DPC-kNN clustering

    public struct Clustering: Sendable {
        /// Cluster id of each input row.
        public var assignment: [Int]
        /// Row index of each cluster's centre, by descending `delta · density` (cluster id order).
        public var centers: [Int]
        /// `[clusters, C]`: sum of members / (member count + 1e-6).
        public var merged: Tensor
    }

    /// DPC-kNN clustering and merge of `features` `[n, C]` into `clusterCount` tokens (TCFormer's
    /// `cluster_and_merge` as shipped).
    ///
    /// `noise` holds the `torch.rand` draws the code adds to the densities (·1e-6) to break ties;
    /// with `nil` no noise is added, which is deterministic but resolves exactly tied densities
    /// differently (tied tokens then see no strictly denser token). Quirks reproduced: the density
    /// neighbourhood counts the token itself (so with one cluster all densities are 1, and with two
    /// every mutual-nearest pair ties); merged tokens are `sum/(count + 1e-6)`, not the plain mean.
    public static func clusterAndMerge(_ features: Tensor, clusterCount: Int, noise: [Float]? = nil) throws -> Clustering {
        let n = features.rows, c = features.columns
        guard features.rank == 2, n > 0 else { throw CompressionError.shapeMismatch("features \(features.shape) must be [n > 0, C]") }
        guard clusterCount >= 1, clusterCount <= n else {
            throw CompressionError.invalidParameter("cluster count \(clusterCount) must be in 1...\(n)")
        }
        if let noise, noise.count != n {
            throw CompressionError.shapeMismatch("noise has \(noise.count) values for \(n) tokens")
        }
        // Shared DPC-kNN core in float32 (D_ij = ||x_i − x_j||₂ / √C, symmetric by construction, so exact
        // ties stay exact); k = clusterCount neighbours, self included; centres in topk (score) order.
        let dpc = DensityPeakClustering(features: features, neighbours: clusterCount,
                                        densityOffset: noise.map { $0.map { $0 * Float(1e-6) } })
        let centers = dpc.centres(clusterCount, order: .score)
        let assignment = dpc.assign(to: centers)
        // index_add of x · 1/(count + 1e-6), in row order, as the code does.
        var counts = [Float](repeating: 0, count: clusterCount)
        for a in assignment { counts[a] += 1 }
        let weights = counts.map { 1 / ($0 + Float(1e-6)) }
        var merged = Tensor(zeros: [clusterCount, c])
        features.withUnsafeBufferPointer { x in
            merged.withUnsafeMutableBufferPointer { m in
                for i in 0..<n {
                    let a = assignment[i]
                    for k in 0..<c { m[a * c + k] += x[i * c + k] * weights[a] }
                }
            }
        }
        return Clustering(assignment: assignment, centers: centers, merged: merged)
    }

    // MARK: - Strategy: one sparse layer

    public struct StepResult: Sendable {
        /// Score of each current visual token.
        public var scores: [Float]
        /// Tokens kept as they are (prefix, top-k visual, text) as ascending input indices, the
        /// merged (recycled) tokens, requested/achieved visual counts; positions renumbered.
        public var result: CompressionResult
        /// Recycling candidates as input indices, in descending score order (the clustering order).
        public var recycled: [Int]
        /// Clustering of the candidates (`nil` when nothing was recycled).
        public var clustering: Clustering?
        /// Output rows of the merged tokens (right after the kept visual tokens).
        public var mergedPositions: [Int]
        /// Output sequence: prefix, kept visual (original order), merged, text.
        public var hidden: Tensor
        /// Position ids after the step: `0..<hidden.rows`.
        public var positionIds: [Int]
        /// Visual tokens after the step (kept + merged): the next sparse layer's visual count.
        public var visualCount: Int
    }

    /// One sparse layer with the parameters' schedule: keeps `min(schedule[layer], visual − 1)`.
    public static func sparsify(layer: Int, hidden: Tensor, attention: Tensor, layout: TokenLayout, raters: [Int],
                                parameters: Parameters = Parameters(), noise: [Float]? = nil) throws -> StepResult {
        let target = try parameters.target(layer: layer)
        return try sparsify(hidden: hidden, attention: attention, layout: layout, raters: raters, target: target,
                            recycleRatio: parameters.recycleRatio, noise: noise)
    }

    /// One sparse layer: score, keep the top `min(target, visual − 1)` visual tokens of the layer's
    /// output `hidden` `[S, C]`, recycle the best deleted ones into clusters, renumber positions.
    ///
    /// `layout` describes the *current* sequence (its visual count shrinks from layer to layer);
    /// `noise` are the `torch.rand` draws of `cluster_and_merge` aligned with the candidate order.
    public static func sparsify(hidden: Tensor, attention: Tensor, layout: TokenLayout, raters: [Int], target: Int,
                                recycleRatio: Double = 0.3, noise: [Float]? = nil) throws -> StepResult {
        guard hidden.rank == 2, hidden.rows == layout.totalCount else {
            throw CompressionError.shapeMismatch("hidden states \(hidden.shape) do not match a sequence of \(layout.totalCount)")
        }
        guard target >= 0 else { throw CompressionError.invalidBudget("target \(target) is negative") }
        guard recycleRatio.isFinite, recycleRatio >= 0, recycleRatio <= 1 else {
            throw CompressionError.invalidParameter("recycle ratio \(recycleRatio) must be in [0, 1]")
        }
        let v = layout.imageCount
        guard v > 0 else {
            // The code's `v_token_num − rank == 0` branch: nothing to prune.
            return StepResult(scores: [], result: .noOp(tokenCount: layout.totalCount, touched: 0, requested: target, policy: .renumber,
                                                        reason: "no visual tokens at this layer"),
                              recycled: [], clustering: nil, mergedPositions: [], hidden: hidden,
                              positionIds: Array(0..<layout.totalCount), visualCount: 0)
        }
        let scores = try visualScores(attention: attention, layout: layout, raters: raters)
        let k = keepCount(target: target, visualCount: v)
        let keptVisual = Selection.topK(scores, k).sorted()
        let keptSet = Set(keptVisual)
        let deleted = (0..<v).filter { !keptSet.contains($0) }
        let candidateCount = recycleCount(deleted: deleted.count, ratio: recycleRatio)
        let candidates = Selection.topK(deleted.map { scores[$0] }, candidateCount).map { deleted[$0] + layout.imageStart }
        var clustering: Clustering?
        var mergedRows: [Tensor] = []
        if !candidates.isEmpty {
            let clusters = try clusterAndMerge(try hidden.gatherRows(candidates), clusterCount: clusterCount(candidates: candidates.count),
                                               noise: noise)
            clustering = clusters
            mergedRows = [clusters.merged]
        }
        let clusterTotal = clustering?.centers.count ?? 0
        let prefix = Array(layout.systemRange)
        let visualKept = keptVisual.map { $0 + layout.imageStart }
        let text = Array(layout.textRange)
        let parts = [try hidden.gatherRows(prefix + visualKept)] + mergedRows + [try hidden.gatherRows(text)]
        let output = try Tensor.concatenateRows(parts.filter { $0.rows > 0 })
        let firstMerged = prefix.count + k
        let mergedPositions = Array(firstMerged..<(firstMerged + clusterTotal))
        let mergedTokens = zip(mergedPositions, 0..<clusterTotal).map { position, cluster in
            MergedToken(outputIndex: position,
                        sources: candidates.indices.filter { clustering!.assignment[$0] == cluster }.map { candidates[$0] }.sorted())
        }
        let result = CompressionResult(kept: prefix + visualKept + text, requestedCount: target,
                                       achievedCount: k + clusterTotal, positionPolicy: .renumber, merged: mergedTokens)
        return StepResult(scores: scores, result: result, recycled: candidates, clustering: clustering,
                          mergedPositions: mergedPositions, hidden: output, positionIds: Array(0..<output.rows),
                          visualCount: k + clusterTotal)
    }
}
