import Foundation
import Tensors

/// HoliTom: holistic token merging for video LLMs, outside the LLM (temporal + spatial) and inside it.
///
/// As in `cokeshao/HoliTom`:
/// * `outer` (before the LLM, `llava_arch.py`): a dynamic programme cuts the frames into windows that maximise
///   Σ (#positions static over the whole window)·(window length − 1); static positions are averaged over their
///   window; the retain ratio is re-scaled by the tokens this already removed; each frame keeps its dynamic
///   tokens with the highest received attention, and each window's static tokens are merged by DPC-kNN
///   into β·centre + (1−β)·mean(members).
/// * `inner` (LLM layer k = 18, `modeling_qwen2.py`): keep the video tokens the last query attended to most at
///   layer k−1 and fold every other video token into its most cosine-similar kept token by sequential pairwise
///   averaging. Kept tokens keep their original positions.
public struct HoliTom {
    public static let info = MethodInfo(
        name: "holitom", displayName: "HoliTom", domain: .videoLLM, families: [.merge],
        placement: .multiple([.llmLayer(0), .llmLayer(18)]),  // outer: pooled projector output, before layer 0
        signals: [.hiddenStates, .frameLayout, .clsAttention, .attentionProbabilities, .tokenLayout],
        needsAttentionProbabilities: true,
        paper: "HoliTom: Holistic Token Merging for Fast Video Large Language Models (NeurIPS 2025, arXiv 2505.21334)",
        repository: "cokeshao/HoliTom",
        summary: "Segment frames by a DP over static tokens, merge static tokens over time and space before the LLM, then fold low-attention tokens into similar kept ones inside it.")

    public struct Parameters: Sendable, Equatable {
        /// ρ: target fraction of video tokens (paper's main 10% setting; the eval script pairs it with τ = 0.65).
        public var retainRatio: Double = 0.10
        /// τ: a position is static between consecutive frames when their cosine is > τ.
        public var staticThreshold: Double = 0.65
        /// β: weight of a cluster centre in its merged static token.
        public var beta: Double = 0.6
        /// D: share of each frame's dynamic budget given to DPC-merged contextual tokens. Only 0 runs in the
        /// released code (see `validate`).
        public var contextShare: Double = 0
        /// K: DPC-kNN neighbours; the code uses min(K, cluster count).
        public var neighbours: Int = 7
        /// Longest window the DP may choose.
        public var maxWindowSize: Int = 1024
        /// `NO_BETA == "1"`: merged static token = plain mean of centre and members. The function reads the env
        /// default "0" (β mix), although `prepare_inputs` logs NO_BETA=1; false reproduces the code.
        public var plainMeanMerge: Bool = false
        /// Inner merge layer k (attention of layer k−1).
        public var innerLayer: Int = 18
        /// r: fraction of video tokens folded away inside the LLM.
        public var innerRemoveRatio: Double = 0.5

        public init(retainRatio: Double = 0.10, staticThreshold: Double = 0.65, beta: Double = 0.6, contextShare: Double = 0,
                    neighbours: Int = 7, maxWindowSize: Int = 1024, plainMeanMerge: Bool = false,
                    innerLayer: Int = 18, innerRemoveRatio: Double = 0.5) {
            self.retainRatio = retainRatio
            self.staticThreshold = staticThreshold
            self.beta = beta
            self.contextShare = contextShare
            self.neighbours = neighbours
            self.maxWindowSize = maxWindowSize
            self.plainMeanMerge = plainMeanMerge
            self.innerLayer = innerLayer
            self.innerRemoveRatio = innerRemoveRatio
        }

        public func validate() throws {
            guard retainRatio.isFinite, retainRatio > 0, retainRatio <= 1 else {
                throw CompressionError.invalidBudget("HoliTom retainRatio ρ = \(retainRatio) must be in (0, 1]")
            }
            guard staticThreshold.isFinite else { throw CompressionError.invalidParameter("HoliTom staticThreshold τ = \(staticThreshold) is not finite") }
            guard beta.isFinite, beta >= 0, beta <= 1 else { throw CompressionError.invalidParameter("HoliTom beta β = \(beta) must be in [0, 1]") }
            guard contextShare.isFinite, contextShare >= 0, contextShare <= 1 else {
                throw CompressionError.invalidParameter("HoliTom contextShare D = \(contextShare) must be in [0, 1]")
            }
            // merge_tokens_by_attention_density does pos.masked_select(mask.unsqueeze(-1)): [W, n] broadcast
            // against [W, n, 1], so the following .view fails (or picks the wrong count) whenever D > 0.
            guard contextShare == 0 else {
                throw CompressionError.unsupportedSetting("HoliTom D = \(contextShare) > 0 crashes in the released code (contextual-token positions are masked with a mis-broadcast mask); only D = 0 is reproducible")
            }
            guard neighbours >= 1 else { throw CompressionError.invalidParameter("HoliTom neighbours K = \(neighbours) must be ≥ 1") }
            guard maxWindowSize >= 1 else { throw CompressionError.invalidParameter("HoliTom maxWindowSize \(maxWindowSize) must be ≥ 1") }
            guard innerLayer >= 1 else { throw CompressionError.invalidParameter("HoliTom innerLayer k = \(innerLayer) must be ≥ 1 (it reads layer k−1's attention)") }
            guard innerRemoveRatio.isFinite, innerRemoveRatio >= 0, innerRemoveRatio < 1 else {
                throw CompressionError.invalidBudget("HoliTom innerRemoveRatio r = \(innerRemoveRatio) must be in [0, 1)")
            }
        }
    }

    /// How the model lays newline tokens into the video span.
    public enum NewlineLayout: Sendable, Equatable {
        /// LLaVA-OneVision: tokens only (the model appends one image_newline after the whole video).
        case oneToken
        /// LLaVA-Video: a newline token after every occupied grid row of every frame block.
        case grid(newline: [Float])
    }

    public struct OuterResult: Sendable {
        /// Compressed video tokens, windows in time order.
        public var tokens: Tensor
        /// DP windows, inclusive frame ranges in time order.
        public var windows: [ClosedRange<Int>]
        /// dp[T−1]: tokens removed by averaging static positions.
        public var totalReduced: Double
        /// ρ' = min(ρ / ((T·N − totalReduced)/(T·N)), 1).
        public var retainRatioScaled: Double
        /// [T−1, N]: cosine of position n in frames t and t+1.
        public var featureSimilarity: Tensor
        /// Rows each window contributes (newlines included for the grid layout).
        public var segmentTokenCounts: [Int]
        /// Achieved count and merge sources (video-local indices t·N + n) of every output token that is not a newline.
        public var compression: CompressionResult
    }

    public struct InnerResult: Sendable {
        /// Whole-sequence kept indices (ascending) and merge facts.
        public var compression: CompressionResult
        public var hiddenStates: Tensor
        /// = kept: original positions preserved (RoPE recomputed from them).
        public var positionIds: [Int]
        /// Folded video tokens, ascending (the folding order).
        public var mergedSources: [Int]
        /// Kept token each of `mergedSources` was folded into.
        public var mergeTarget: [Int]
    }

    // MARK: - Outer

    /// - Parameters:
    ///   - features: `[T·N, C]` (or `[T, N, C]`) pooled frame tokens after the projector, position n = row·w + col.
    ///   - frames: T.
    ///   - attention: `[T, N]` received attention per pooled token (SigLIP, head- and query-mean).
    public static func outer(features: Tensor, frames: Int, attention: Tensor, layout: NewlineLayout = .oneToken,
                             parameters: Parameters = Parameters()) throws -> OuterResult {
        try parameters.validate()
        let T = frames
        guard T >= 1, features.rows > 0, features.rows % T == 0 else {
            throw CompressionError.shapeMismatch("HoliTom: \(features.rows) tokens do not split into \(T) frames")
        }
        let N = features.rows / T, C = features.columns
        guard attention.count == T * N else {
            throw CompressionError.shapeMismatch("HoliTom: attention has \(attention.count) values, expected T·N = \(T * N)")
        }
        var gridSide = 0
        if case .grid(let newline) = layout {
            guard newline.count == C else { throw CompressionError.shapeMismatch("HoliTom: newline of width \(newline.count), tokens of width \(C)") }
            // add_newline_token uses int(sqrt(N)) rows of int(sqrt(N)); other grids would lose tokens silently.
            gridSide = Int(Double(N).squareRoot())
            guard gridSide * gridSide == N else {
                throw CompressionError.unsupportedSetting("HoliTom: the grid layout assumes a square grid, got \(N) tokens per frame")
            }
        }
        let x = (0..<(T * N)).map { features.row($0).map(Double.init) }
        let attn = attention.values

        // Cosine of consecutive frames at each position (F.normalize, then cosine_similarity).
        var similarity = Tensor(zeros: [max(T - 1, 0), N])
        var isStatic = [[Bool]](repeating: [Bool](repeating: false, count: N), count: max(T - 1, 0))
        for t in 0..<max(T - 1, 0) {
            for n in 0..<N {
                let a = L2Norm.normalized(x[t * N + n], eps: 1e-12), b = L2Norm.normalized(x[(t + 1) * N + n], eps: 1e-12)
                let s = Float(L2Norm.cosine(a, b, eps: 1e-8))
                similarity[t, n] = s
                isStatic[t][n] = s > Float(parameters.staticThreshold)  // float32 comparison, strict
            }
        }
        // Positions static over frames s..e (all consecutive sims in s..e−1 above τ).
        func staticMask(_ s: Int, _ e: Int) -> [Bool] {
            (0..<N).map { n in (s..<e).allSatisfy { isStatic[$0][n] } }
        }

        // ---- DP (select_static_windows). Ties keep the earlier candidate: first the single frame, then the
        // shortest window (strict `>`).
        var dp = [Double](repeating: 0, count: T)
        var prev = [Int](repeating: 0, count: T)
        for i in 0..<T {
            var best = i > 0 ? dp[i - 1] : 0
            var bestStart = i
            let longest = min(i + 1, parameters.maxWindowSize)
            if longest >= 2 {
                for size in 2...longest {
                    let j = i - size
                    let count = Double(staticMask(j + 1, i).filter { $0 }.count * (i - j - 1))
                    let value = (j >= 0 ? dp[j] : 0) + count
                    if value > best { best = value; bestStart = j + 1 }
                }
            }
            dp[i] = best
            prev[i] = bestStart
        }
        var windows: [ClosedRange<Int>] = []
        var i = T - 1
        while i >= 0 { windows.append(prev[i]...i); i = prev[i] - 1 }
        windows.reverse()
        let totalReduced = dp[T - 1]
        let totalTokens = Double(T * N)
        let rho = min(parameters.retainRatio / ((totalTokens - totalReduced) / totalTokens), 1)

        var rows: [[Double]] = []
        var sources: [[Int]?] = []  // nil for a newline row
        var segmentCounts: [Int] = []
        /// Rows of one frame block sorted by position, a newline after every occupied grid row.
        func emit(_ block: [(pos: Int, row: [Double], src: [Int])]) {
            let sorted = block.sorted { $0.pos < $1.pos }
            guard case .grid(let newline) = layout else {
                for item in sorted { rows.append(item.row); sources.append(item.src) }
                return
            }
            for r in 0..<gridSide {
                let inRow = sorted.filter { $0.pos / gridSide == r }
                guard !inRow.isEmpty else { continue }
                for item in inRow { rows.append(item.row); sources.append(item.src) }
                rows.append(newline.map(Double.init)); sources.append(nil)
            }
        }
        for window in windows {
            let before = rows.count
            let W = window.count
            let mask = W == 1 ? [Bool](repeating: false, count: N) : staticMask(window.lowerBound, window.upperBound)
            let dynamicPositions = (0..<N).filter { !mask[$0] }
            let staticPositions = (0..<N).filter { mask[$0] }
            // Dynamic: round(ceil(n·ρ')·(1−D)) per frame by received attention (math.ceil on the float product,
            // e.g. 20·0.15 = 3.0000000000000004 → 4), output in ascending position.
            let dominant = Int((ceil(Double(dynamicPositions.count) * rho) * (1 - parameters.contextShare)).rounded(.toNearestOrEven))
            var dynamicBlocks: [[(pos: Int, row: [Double], src: [Int])]] = []
            for t in window {
                let scores = dynamicPositions.map { attn[t * N + $0] }
                let top = Selection.topK(scores, dominant).sorted()
                dynamicBlocks.append(top.map { k in
                    let n = dynamicPositions[k]
                    return (n, x[t * N + n], [t * N + n])
                })
            }
            // Static: window mean, then DPC-kNN into round(n·ρ') centres (half to even).
            var staticBlock: [(pos: Int, row: [Double], src: [Int])] = []
            if !staticPositions.isEmpty {
                let means = staticPositions.map { n -> [Double] in
                    var m = [Double](repeating: 0, count: C)
                    for t in window { for c in 0..<C { m[c] += x[t * N + n][c] } }
                    return m.map { $0 / Double(W) }
                }
                let clusters = Selection.roundHalfEven(Double(staticPositions.count) * rho)
                if clusters > 0 {
                    let merged = holiTomClusterMerge(means, clusters: clusters, k: min(parameters.neighbours, clusters),
                                                     beta: parameters.beta, plainMean: parameters.plainMeanMerge)
                    staticBlock = merged.map { item in
                        let n = staticPositions[item.centre]
                        let src = item.members.flatMap { m in window.map { $0 * N + staticPositions[m] } }
                        return (n, item.row, src.sorted())
                    }
                }
            }
            switch layout {
            case .oneToken:
                emit(staticBlock)
                for block in dynamicBlocks { emit(block) }
            case .grid:
                emit(staticBlock + dynamicBlocks[0])
                for block in dynamicBlocks.dropFirst() { emit(block) }
            }
            segmentCounts.append(rows.count - before)
        }

        var tokens = Tensor(zeros: [rows.count, C])
        for (r, row) in rows.enumerated() { for c in 0..<C { tokens[r, c] = Float(row[c]) } }
        let merged = sources.enumerated().compactMap { item -> MergedToken? in
            guard let src = item.element, src.count > 1 else { return nil }
            return MergedToken(outputIndex: item.offset, sources: src)
        }
        let achieved = sources.filter { $0 != nil }.count
        let compression = CompressionResult(kept: [], requestedCount: Int((parameters.retainRatio * totalTokens).rounded()),
                                            achievedCount: achieved, positionPolicy: .renumber, merged: merged)
        return OuterResult(tokens: tokens, windows: windows, totalReduced: totalReduced, retainRatioScaled: rho,
                           featureSimilarity: similarity, segmentTokenCounts: segmentCounts, compression: compression)
    }

    // MARK: - Inner

    /// The inner merge at layer k. `attentionLastRow`: `[H, S]` attention of the last query at layer k−1.
    public static func inner(hiddenStates: Tensor, attentionLastRow: Tensor, layout: TokenLayout,
                             parameters: Parameters = Parameters()) throws -> InnerResult {
        try parameters.validate()
        let S = hiddenStates.rows, C = hiddenStates.columns
        guard layout.totalCount == S, attentionLastRow.columns == S, attentionLastRow.rows >= 1 else {
            throw CompressionError.shapeMismatch("HoliTom: hidden states \(hiddenStates.shape), attention \(attentionLastRow.shape), layout of \(layout.totalCount) tokens")
        }
        let start = layout.imageStart, V = layout.imageCount, H = attentionLastRow.rows
        // Python round(): half to even (45·0.5 = 22.5 keeps 22).
        let keep = Selection.roundHalfEven(Double(V) * (1 - parameters.innerRemoveRatio))
        guard keep < V, keep > 0 else {
            return InnerResult(compression: .noOp(tokenCount: S, requested: keep, policy: .keepOriginal,
                                                  reason: "HoliTom inner: keeping \(keep) of \(V) video tokens leaves nothing to merge"),
                               hiddenStates: hiddenStates, positionIds: Array(0..<S), mergedSources: [], mergeTarget: [])
        }
        let importance = (0..<V).map { v -> Float in
            var sum = 0.0
            for h in 0..<H { sum += Double(attentionLastRow[h, start + v]) }
            return Float(sum / Double(H))
        }
        // topk order is kept: argmax ties resolve to the earlier entry of this order.
        let top = Selection.topK(importance, keep).map { $0 + start }
        let topSet = Set(top)
        let sources = (start..<(start + V)).filter { !topSet.contains($0) }
        // Plain cosine (no eps): norms in float64, the targets' computed once.
        let targetRows = top.map { hiddenStates.row($0) }
        let targetNorms = targetRows.map { L2Norm.norm($0) }
        // Similarities are computed once, before any folding.
        let targets = sources.map { s -> Int in
            let row = hiddenStates.row(s)
            let n = L2Norm.norm(row)
            var best = 0, bestValue = -Double.infinity
            for (k, t) in targetRows.enumerated() {
                var dot = 0.0
                for c in 0..<C { dot += Double(row[c]) * Double(t[c]) }
                let value = dot / (n * targetNorms[k])
                if value > bestValue { bestValue = value; best = k }
            }
            return top[best]
        }
        // Sequential pairwise folding h ← (h + x)/2 in float32, in ascending source order: later sources weigh more.
        var hidden = hiddenStates
        for (s, t) in zip(sources, targets) {
            let x = hiddenStates.row(s)
            for c in 0..<C { hidden[t, c] = (hidden[t, c] + x[c]) / 2 }
        }
        let kept = layout.keptSequence(visual: top)
        let out = try hidden.gatherRows(kept)
        var groups: [Int: [Int]] = [:]
        for (s, t) in zip(sources, targets) { groups[t, default: [t]].append(s) }
        let merged = kept.enumerated().compactMap { i, index in groups[index].map { MergedToken(outputIndex: i, sources: $0.sorted()) } }
        let compression = CompressionResult(kept: kept, requestedCount: keep, achievedCount: keep, positionPolicy: .keepOriginal, merged: merged)
        return InnerResult(compression: compression, hiddenStates: out, positionIds: kept, mergedSources: sources, mergeTarget: targets)
    }
}

/// HoliTom's `cluster_dpc_knn` + `merge_tokens_by_clustering` (shared core: `DensityPeakClustering`, float64):
/// centres = top-`clusters` DPC scores (k nearest, self included) SORTED ascending by index; every other token
/// joins its nearest centre (first on ties); a centre with members becomes β·centre + (1−β)·mean(members)
/// (plain mean of centre and members when `plainMean`), a centre without members stays as it is. Exact float64 distances; the 1e-6 density noise is
/// left out (the cases show it does not change the result).
private func holiTomClusterMerge(_ x: [[Double]], clusters: Int, k: Int, beta: Double, plainMean: Bool)
    -> [(centre: Int, members: [Int], row: [Double])] {
    let n = x.count, C = x[0].count
    let dpc = DensityPeakClustering(rows: x, neighbours: k)
    let centres = dpc.centres(clusters, order: .index)
    let labels = dpc.assign(to: centres)
    let centreSet = Set(centres)
    var members = [[Int]](repeating: [], count: centres.count)
    for i in 0..<n where !centreSet.contains(i) { members[labels[i]].append(i) }
    return centres.enumerated().map { c, centre in
        let group = members[c]
        guard !group.isEmpty else { return (centre, [centre], x[centre]) }
        var mean = [Double](repeating: 0, count: C)
        let pool = plainMean ? [centre] + group : group
        for m in pool { for ch in 0..<C { mean[ch] += x[m][ch] } }
        mean = mean.map { $0 / Double(pool.count) }
        let row = plainMean ? mean : (0..<C).map { beta * x[centre][$0] + (1 - beta) * mean[$0] }
        return (centre, ([centre] + group).sorted(), row)
    }
}
