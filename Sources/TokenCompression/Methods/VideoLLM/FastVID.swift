import Foundation
import Tensors

/// FastVID: dynamic temporal segmentation (DySeg), spatiotemporal pruning with salient tokens (STPrune/ATS)
/// and density-based anchor merging (DTM), applied to the video span before LLM layer 0.
///
/// This is the LLaVA-OneVision file of `LunarShen/FastVID`, the parallel implementation the paper times.
/// Its counts differ from the serial LLaVA-Video file: every frame keeps the SAME number of salient
/// tokens `s = b − int(b·d)`, and the DPC-kNN density score is computed once per frame over that frame's
/// non-salient tokens. Kept tokens keep their original positions (position ids = kept indices).
public struct FastVID {
    public static let info = MethodInfo(
        name: "fastvid", displayName: "FastVID", domain: .videoLLM, families: [.prune, .merge],
        placement: .llmLayer(0),
        signals: [.hiddenStates, .frameLayout, .clsAttention],
        needsAttentionProbabilities: false,
        paper: "FastVID: Dynamic Density Pruning for Fast Video Large Language Models (NeurIPS 2025, arXiv 2503.11187)",
        repository: "LunarShen/FastVID",
        summary: "Cut the video into scenes by frame-feature similarity, keep per-frame salient tokens, merge the rest into density-peak anchors.")

    public struct Parameters: Sendable, Equatable {
        /// ρ: per-frame retained budget b = int(N·ρ).
        public var retentionRatio: Double = 0.10
        /// c: the c−1 transitions with the lowest global-feature similarity are always cut.
        public var segmentCount: Int = 8
        /// τ: every transition whose similarity is below τ is cut too.
        public var segmentThreshold: Double = 0.9
        /// d: context share of the per-frame budget (fc = int(b·d), salient s = b − fc).
        public var contextShare: Double = 0.4
        /// p: anchor-frame stride inside a multi-frame segment, counted from the segment's last frame.
        public var anchorStride: Int = 4
        /// β: lower bound of an anchor's own weight, w = max(β, 1/(count+1)).
        public var anchorWeight: Double = 0.6

        public init(retentionRatio: Double = 0.10, segmentCount: Int = 8, segmentThreshold: Double = 0.9,
                    contextShare: Double = 0.4, anchorStride: Int = 4, anchorWeight: Double = 0.6) {
            self.retentionRatio = retentionRatio
            self.segmentCount = segmentCount
            self.segmentThreshold = segmentThreshold
            self.contextShare = contextShare
            self.anchorStride = anchorStride
            self.anchorWeight = anchorWeight
        }

        public func validate() throws {
            guard retentionRatio.isFinite, retentionRatio > 0, retentionRatio <= 1 else {
                throw CompressionError.invalidBudget("FastVID retentionRatio \(retentionRatio) must be in (0, 1]")
            }
            guard segmentCount >= 1 else { throw CompressionError.invalidParameter("FastVID segmentCount c = \(segmentCount) must be ≥ 1") }
            guard segmentThreshold.isFinite else { throw CompressionError.invalidParameter("FastVID segmentThreshold τ = \(segmentThreshold) is not finite") }
            guard contextShare.isFinite, contextShare >= 0, contextShare <= 1 else {
                throw CompressionError.invalidParameter("FastVID contextShare d = \(contextShare) must be in [0, 1]")
            }
            guard anchorStride >= 1 else { throw CompressionError.invalidParameter("FastVID anchorStride p = \(anchorStride) must be ≥ 1") }
            guard anchorWeight.isFinite, anchorWeight >= 0, anchorWeight <= 1 else {
                throw CompressionError.invalidParameter("FastVID anchorWeight β = \(anchorWeight) must be in [0, 1]")
            }
        }
    }

    /// The outcome, with the intermediates the reference exposes.
    public struct Result: Sendable {
        /// Kept video tokens (video-local indices f·N+j, ascending) and the facts of the reduction.
        public var compression: CompressionResult
        /// Features of the kept tokens, in `compression.kept` order: salient rows copied, anchor rows merged.
        public var tokens: Tensor
        /// cos(g_t, g_{t+1}), t = 0..F−2.
        public var frameSimilarity: [Float]
        /// Transitions cut (boundary after frame t), ascending.
        public var cuts: [Int]
        public var segmentSizes: [Int]
        /// Anchor (context) tokens taken from each frame.
        public var frameContextCounts: [Int]
        /// [F, N−s]: DPC score δ·ρ of each frame's non-salient tokens (ascending token order).
        public var densityScore: Tensor
        /// Salient (kept unmerged) tokens, ascending video-local indices.
        public var salient: [Int]
        /// Anchor tokens (kept, merged), ascending video-local indices.
        public var context: [Int]

        /// Whole-sequence kept list when the video occupies `layout.imageRange`: text is always kept.
        public func keptSequence(in layout: TokenLayout) -> [Int] {
            layout.keptSequence(visual: compression.kept.map { $0 + layout.imageStart })
        }
    }

    /// Runs DySeg + STPrune + DTM.
    /// - Parameters:
    ///   - videoTokens: `[F·N, C]` (or `[F, N, C]`), frame-major video embeddings entering the LLM.
    ///   - frames: F.
    ///   - salience: `[F, N]` per-token salience from SigLIP's attention-pooling head (only its per-frame order matters).
    ///   - globalFeatures: `[F, Dg]` per-frame global features (the pooling head's output).
    public static func compress(videoTokens: Tensor, frames: Int, salience: Tensor, globalFeatures: Tensor,
                                parameters: Parameters = Parameters()) throws -> Result {
        try parameters.validate()
        let F = frames
        guard F >= 1, videoTokens.rows % F == 0, videoTokens.rows > 0 else {
            throw CompressionError.shapeMismatch("FastVID: \(videoTokens.rows) video tokens do not split into \(F) frames")
        }
        let N = videoTokens.rows / F, C = videoTokens.columns
        guard salience.count == F * N else {
            throw CompressionError.shapeMismatch("FastVID: salience has \(salience.count) values, expected F·N = \(F * N)")
        }
        guard globalFeatures.rows == F, globalFeatures.columns > 0 else {
            throw CompressionError.shapeMismatch("FastVID: global features \(globalFeatures.shape), expected [\(F), Dg]")
        }
        // torch.topk(similarity, c−1) raises when c−1 exceeds the F−1 transitions.
        guard parameters.segmentCount - 1 <= F - 1 else {
            throw CompressionError.invalidParameter("FastVID segmentCount c = \(parameters.segmentCount) needs c−1 ≤ F−1 = \(F - 1) transitions")
        }

        // ---- DySeg: cosine of consecutive global features (normalised without eps, as the code).
        var similarity = [Float]()
        let g = (0..<F).map { globalFeatures.row($0).map(Double.init) }
        for t in 0..<(F - 1) { similarity.append(Float(L2Norm.cosine(g[t], g[t + 1], eps: 0))) }
        var cutSet = Set(Selection.topK(similarity, parameters.segmentCount - 1, largest: false))
        // Compared in float32 as torch does (`similarity_matrix < tau` with a Python float).
        for t in 0..<similarity.count where similarity[t] < Float(parameters.segmentThreshold) { cutSet.insert(t) }
        let cuts = cutSet.sorted()
        var segmentSizes = [Int]()
        var previous = -1
        for cut in cuts + [F - 1] { segmentSizes.append(cut - previous); previous = cut }

        // ---- Budgets: Python int() truncation on float64 products.
        let b = Int(Double(N) * parameters.retentionRatio)
        let s = b - Int(Double(b) * parameters.contextShare)
        let fc = b - s
        let m = N - s
        var frameContext = [Int](repeating: 0, count: F)
        var offset = 0
        for length in segmentSizes {
            let anchorFrames = (length + parameters.anchorStride - 1) / parameters.anchorStride
            let perAnchor = (fc * length) / anchorFrames
            for i in 0..<length where (length - 1 - i) % parameters.anchorStride == 0 { frameContext[offset + i] = perAnchor }
            offset += length
        }
        if s == N && fc == 0 {
            let all = Array(0..<(F * N))
            return Result(compression: .noOp(tokenCount: F * N, requested: F * N, policy: .keepOriginal,
                                             reason: "retention keeps every token of every frame"),
                          tokens: try videoTokens.gatherRows(all), frameSimilarity: similarity, cuts: cuts,
                          segmentSizes: segmentSizes, frameContextCounts: frameContext,
                          densityScore: Tensor(zeros: [F, 0]), salient: all, context: [])
        }
        // The code's topk calls raise when a frame has fewer than 4 non-salient tokens (density) or fewer
        // than the anchors asked of it.
        guard m >= 4 else {
            throw CompressionError.unsupportedSetting("FastVID: the density uses the 4 nearest tokens, but a frame has only \(m) non-salient tokens")
        }
        guard fc <= m, frameContext.allSatisfy({ $0 <= m }) else {
            throw CompressionError.unsupportedSetting("FastVID: \(frameContext.max() ?? fc) anchors requested from \(m) non-salient tokens per frame")
        }

        // ---- ATS: per-frame top-s salience.
        var salient = [Int]()
        var nonSalient = [[Int]]()  // per frame, ascending local token index
        for f in 0..<F {
            let scores = (0..<N).map { salience[flat: f * N + $0] }
            let top = Selection.topK(scores, s)
            salient += top.map { f * N + $0 }
            let topSet = Set(top)
            nonSalient.append((0..<N).filter { !topSet.contains($0) })
        }

        // ---- DPC-kNN density score per frame, over its non-salient tokens.
        var density = Tensor(zeros: [F, m])
        for f in 0..<F {
            let rows = nonSalient[f].map { videoTokens.row(f * N + $0) }
            let score = fastVIDDensityScore(rows)
            for i in 0..<m { density[f, i] = Float(score[i]) }
        }

        // ---- DTM. Merged anchor rows keyed by video-local index.
        var mergedRows: [Int: [Double]] = [:]
        var merged: [MergedToken] = []
        var sourcesByAnchor: [Int: [Int]] = [:]
        func mergeInto(anchors: [Int], pool: [Int]) {
            let assignment = fastVIDAssign(pool: pool.map { videoTokens.row($0) }, anchors: anchors.map { videoTokens.row($0) })
            for (a, anchor) in anchors.enumerated() {
                let members = pool.indices.filter { assignment[$0] == a }.map { pool[$0] }
                let anchorRow = videoTokens.row(anchor)
                var mean = [Double](repeating: 0, count: C)
                for member in members { for (c, v) in videoTokens.row(member).enumerated() { mean[c] += Double(v) } }
                let count = Double(members.count)
                for c in 0..<C { mean[c] /= max(count, 1) }
                // w = clamp(1/(count+1), min: β). The anchor is in its own pool (cosine 1), so count ≥ 1.
                let w = max(parameters.anchorWeight, 1 / (count + 1))
                mergedRows[anchor] = (0..<C).map { w * Double(anchorRow[$0]) + (1 - w) * mean[$0] }
                sourcesByAnchor[anchor] = members
            }
        }
        var context = [Int]()
        // Single-frame path: every frame whose anchor count equals fc (single-frame segments, and any
        // multi-frame anchor frame whose integer share happens to equal fc) merges its own non-salient tokens.
        for f in 0..<F where frameContext[f] == fc && fc > 0 {
            let scores = (0..<m).map { density[f, $0] }
            let anchors = Selection.topK(scores, fc).map { f * N + nonSalient[f][$0] }
            mergeInto(anchors: anchors, pool: nonSalient[f].map { f * N + $0 })
            context += anchors
        }
        // Multi-frame path: EACH anchor frame assigns ALL non-salient tokens of its segment (every frame,
        // other frames' anchors included) to its own anchors, so the pools of different anchor frames overlap.
        offset = 0
        for length in segmentSizes {
            defer { offset += length }
            guard length > 1 else { continue }
            let perAnchor = frameContext[offset + length - 1]
            let pool = (offset..<(offset + length)).flatMap { f in nonSalient[f].map { f * N + $0 } }
            for f in offset..<(offset + length) where frameContext[f] > fc {
                let scores = (0..<m).map { density[f, $0] }
                let anchors = Selection.topK(scores, perAnchor).map { f * N + nonSalient[f][$0] }
                mergeInto(anchors: anchors, pool: pool)
                context += anchors
            }
        }

        let kept = (salient + context).sorted()
        var out = Tensor(zeros: [kept.count, C])
        for (i, index) in kept.enumerated() {
            if let row = mergedRows[index] {
                for c in 0..<C { out[i, c] = Float(row[c]) }
                merged.append(MergedToken(outputIndex: i, sources: sourcesByAnchor[index] ?? [index]))
            } else {
                let row = videoTokens.row(index)
                for c in 0..<C { out[i, c] = row[c] }
            }
        }
        let compression = CompressionResult(kept: kept, requestedCount: b * F, achievedCount: kept.count,
                                            positionPolicy: .keepOriginal, merged: merged)
        return Result(compression: compression, tokens: out, frameSimilarity: similarity, cuts: cuts,
                      segmentSizes: segmentSizes, frameContextCounts: frameContext, densityScore: density,
                      salient: salient.sorted(), context: context.sorted())
    }
}

/// DPC-kNN score δ·ρ over `rows` (shared core: `DensityPeakClustering`): d = ‖x_i − x_j‖/√C; ρ = exp(−mean
/// of the 4 smallest d², the token itself included); δ = distance to the nearest strictly denser token, or the
/// largest distance in the frame for the densest. Computed in float64 with exact distances; the code's 1e-6
/// `torch.rand` tie-breaking noise is left out (the cases show it never changes the selection). FastVID uses
/// only the score: its anchors are picked per frame from it, not by the clustering's centre step.
private func fastVIDDensityScore(_ rows: [[Float]]) -> [Double] {
    DensityPeakClustering(rows: rows.map { $0.map(Double.init) }, neighbours: 4).score
}

/// For each pool token, the anchor with the highest cosine similarity (first on ties, like argmax).
/// Vectors are divided by their norms without eps, as the code does.
private func fastVIDAssign(pool: [[Float]], anchors: [[Float]]) -> [Int] {
    func unit(_ v: [Float]) -> [Double] { L2Norm.normalized(v.map(Double.init), eps: 0) }
    let a = anchors.map(unit)
    return pool.map { row in
        let u = unit(row)
        var best = 0, bestValue = -Double.infinity
        for (k, anchor) in a.enumerated() {
            var dot = 0.0
            for c in 0..<u.count { dot += u[c] * anchor[c] }
            if dot > bestValue { bestValue = dot; best = k }
        }
        return best
    }
}
