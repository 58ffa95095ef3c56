import Foundation
import Tensors

/// LLaVA-PruMerge and PruMerge+ (Shang et al., ICCV 2025, arXiv 2403.15388): keep the [CLS]-attention
/// outliers of the last ViT layer, enrich each kept token with its key-nearest neighbours and append one
/// summary token. PruMerge+ also keeps a spatially uniform sample of tokens.
///
/// Both variants share one core (`PruMergeCore`); they differ only in how the kept list is formed.
/// The core follows `CLIPVisionTower.token_prune_merge_advanced(_plus)` of 42Shawn/LLaVA-PruMerge.
public struct PruMerge {
    public static let info = MethodInfo(
        name: "prumerge", displayName: "LLaVA-PruMerge", domain: .imageVLM, families: [.prune, .merge],
        placement: .beforeProjector,
        signals: [.queries, .keys, .hiddenStates],
        needsAttentionProbabilities: false,
        paper: "LLaVA-PruMerge: Adaptive Token Reduction for Efficient Large Multimodal Models (ICCV 2025, arXiv 2403.15388)",
        repository: "42Shawn/LLaVA-PruMerge",
        summary: "IQR outliers of last-layer [CLS] attention kept, each enriched by its 32 key-nearest neighbours, plus one summary token")

    public struct Parameters: Sendable, Equatable {
        /// true (the code's default): keep as many tokens as there are IQR outliers.
        public var adaptive: Bool
        /// Only used when not adaptive: keep `int(N · reductionRatio)` tokens.
        public var reductionRatio: Double
        /// Outlier rule `a > Q3 + iqrFactor·(Q3 − Q1)` (upper fence only).
        public var iqrFactor: Double
        public var percentileLow: Double
        public var percentileHigh: Double
        /// Neighbours merged into each kept token (hard-coded 32 in the code).
        public var knnK: Int
        /// Logit scale; nil means the code's `C^-0.5` with C = the feature width.
        public var attentionScale: Float?

        public init(adaptive: Bool = true, reductionRatio: Double = 1.0 / 8.0, iqrFactor: Double = 1.5,
                    percentileLow: Double = 25, percentileHigh: Double = 75, knnK: Int = 32, attentionScale: Float? = nil) {
            self.adaptive = adaptive
            self.reductionRatio = reductionRatio
            self.iqrFactor = iqrFactor
            self.percentileLow = percentileLow
            self.percentileHigh = percentileHigh
            self.knnK = knnK
            self.attentionScale = attentionScale
        }

        func validate() throws {
            guard reductionRatio.isFinite, reductionRatio >= 0, reductionRatio <= 1 else {
                throw CompressionError.invalidBudget("reductionRatio \(reductionRatio) must be in [0, 1]")
            }
            guard iqrFactor.isFinite, iqrFactor >= 0 else { throw CompressionError.invalidParameter("iqrFactor \(iqrFactor) must be ≥ 0") }
            guard percentileLow >= 0, percentileHigh <= 100, percentileLow <= percentileHigh else {
                throw CompressionError.invalidParameter("percentiles \(percentileLow), \(percentileHigh) must satisfy 0 ≤ low ≤ high ≤ 100")
            }
            guard knnK >= 1 else { throw CompressionError.invalidParameter("knnK \(knnK) must be ≥ 1") }
            if let s = attentionScale, !(s.isFinite && s > 0) {
                throw CompressionError.invalidParameter("attentionScale \(s) must be a positive number")
            }
        }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    /// - Parameters:
    ///   - clsQuery: `[C]` row 0 of the raw `q_proj` output of the last ViT layer (bias included, unscaled).
    ///   - keys: `[N+1, C]` raw `k_proj` output of that layer, row 0 = [CLS].
    ///   - features: `[N, C']` the features to prune and merge (`hidden_states[-2][:, 1:]`).
    public func compress(clsQuery: [Float], keys: Tensor, features: Tensor) throws -> PruMergeResult {
        let core = try PruMergeCore(parameters, clsQuery: clsQuery, keys: keys, features: features)
        let k = try core.keepCount(adaptive: parameters.adaptive, ratio: parameters.reductionRatio)
        let top = core.topAttention(k)
        return try core.merge(kept: top, topCount: top.count, knnK: parameters.knnK)
    }
}

/// PruMerge+: PruMerge's outliers plus spatially uniform samples (the code's adaptive branch).
public struct PruMergePlus {
    public static let info = MethodInfo(
        name: "prumerge_plus", displayName: "LLaVA-PruMerge+", domain: .imageVLM, families: [.prune, .merge],
        placement: .beforeProjector,
        signals: [.queries, .keys, .hiddenStates],
        needsAttentionProbabilities: false,
        paper: "LLaVA-PruMerge: Adaptive Token Reduction for Efficient Large Multimodal Models (ICCV 2025, arXiv 2403.15388)",
        repository: "42Shawn/LLaVA-PruMerge",
        summary: "PruMerge outliers plus a uniform spatial sample at a third of the outlier spacing, key-kNN merged, plus a summary token")

    public struct Parameters: Sendable, Equatable {
        public var base: PruMerge.Parameters
        /// Exclusive end of the spatial sampling range. nil = N − 1: the code hard-codes 575 for
        /// N = 576, so the last token is never a spatial sample.
        public var sampleEnd: Int?

        public init(base: PruMerge.Parameters = PruMerge.Parameters(), sampleEnd: Int? = nil) {
            self.base = base
            self.sampleEnd = sampleEnd
        }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.base.validate()
        guard parameters.base.adaptive else {
            // The non-adaptive branch is the training path; its fixed-size buffer only fits by accident.
            throw CompressionError.unsupportedSetting("PruMerge+ is defined for the adaptive setting only (the non-adaptive branch is the training path)")
        }
        if let e = parameters.sampleEnd, e < 0 { throw CompressionError.invalidParameter("sampleEnd \(e) must be ≥ 0") }
        self.parameters = parameters
    }

    public func compress(clsQuery: [Float], keys: Tensor, features: Tensor) throws -> PruMergeResult {
        let core = try PruMergeCore(parameters.base, clsQuery: clsQuery, keys: keys, features: features)
        let n = core.count
        let sampleEnd = parameters.sampleEnd ?? (n - 1)
        guard sampleEnd <= n else { throw CompressionError.invalidParameter("sampleEnd \(sampleEnd) exceeds the \(n) tokens") }
        let top = core.topAttention(try core.keepCount(adaptive: true, ratio: 0))
        // Quirk (code): step = int(1/ratio), stride = int(step/3) with ratio = outliers / N as a Python
        // float. ratio = 0 divides by zero and ratio > 1/3 gives stride 0 (torch.arange fails).
        let ratio = Double(core.outliers) / Double(n)
        guard ratio > 0 else {
            throw CompressionError.unsupportedSetting("PruMerge+ needs at least one [CLS]-attention outlier (the code divides by the outlier ratio 0)")
        }
        let stride = Int(1.0 / ratio) / 3
        guard stride > 0 else {
            throw CompressionError.unsupportedSetting("outlier ratio \(ratio) > 1/3 gives a spatial stride of 0 (the code fails)")
        }
        // Samples ascending, those already among the outliers skipped, appended after them.
        let topSet = Set(top)
        let samples = Swift.stride(from: 0, to: sampleEnd, by: stride).filter { !topSet.contains($0) }
        return try core.merge(kept: top + samples, topCount: top.count, knnK: parameters.base.knnK)
    }
}

/// What PruMerge(+) computed: the scores, the outlier rule, the kept tokens in output order and the
/// merged features.
public struct PruMergeResult: Sendable {
    /// `softmax(q·Kᵀ·scale)` over all N+1 keys, [CLS] column dropped (not renormalised).
    public var clsAttention: [Float]
    /// `Q3 + iqrFactor·(Q3 − Q1)` in float64.
    public var upperFence: Double
    public var outlierCount: Int
    /// Kept token indices in output order: attention-descending outliers, then (PruMerge+) the
    /// spatial samples ascending. Row i of `features` belongs to `kept[i]`.
    public var kept: [Int]
    /// How many leading entries of `kept` are attention top-k (the rest are spatial samples).
    public var topCount: Int
    /// `[kept.count + 1, C]`: enriched kept tokens, then the summary token.
    public var features: Tensor
    /// Ascending kept indices, counts, and the merge sources of every output token.
    public var compression: CompressionResult
    /// Output tokens (kept + summary).
    public var count: Int { kept.count + 1 }
}

/// The shared body of both variants.
struct PruMergeCore {
    let keys: Tensor
    let features: Tensor
    let attention: [Float]
    let upperFence: Double
    let outliers: Int
    var count: Int { attention.count }

    init(_ p: PruMerge.Parameters, clsQuery: [Float], keys: Tensor, features: Tensor) throws {
        let n = features.rows, c = keys.columns
        guard features.rank == 2, keys.rank == 2, n >= 1 else {
            throw CompressionError.shapeMismatch("features \(features.shape) and keys \(keys.shape) must be [N, C] and [N+1, C]")
        }
        guard keys.rows == n + 1, clsQuery.count == c else {
            throw CompressionError.shapeMismatch("keys \(keys.shape) must have N+1 = \(n + 1) rows and cls query \(clsQuery.count) values must match width \(c)")
        }
        guard n - 1 >= p.knnK else {
            throw CompressionError.shapeMismatch("\(n) tokens leave fewer than knnK = \(p.knnK) neighbour candidates")
        }
        self.keys = keys
        self.features = features
        // Quirk (code): the scale is C^-0.5 with C = the FEATURE width (`image_features.shape[-1]`),
        // applied in float32 after the product; a single 1024-wide "head".
        let scale = p.attentionScale ?? Float(pow(Double(features.columns), -0.5))
        var logits = [Float](repeating: 0, count: n + 1)
        keys.withUnsafeBufferPointer { kb in
            for j in 0...n {
                var s: Double = 0
                for d in 0..<c { s += Double(clsQuery[d]) * Double(kb[j * c + d]) }
                logits[j] = Float(s) * scale
            }
        }
        let m = logits.max()!
        var e = logits.map { Foundation.exp($0 - m) }
        let z = e.reduce(Float(0), +)
        for j in e.indices { e[j] /= z }
        attention = Array(e[1...])
        // numpy.percentile (linear interpolation) in float64 on the float32 attentions.
        let sorted = attention.map(Double.init).sorted()
        let q1 = PruMergeCore.percentile(sorted, p.percentileLow)
        let q3 = PruMergeCore.percentile(sorted, p.percentileHigh)
        upperFence = q3 + p.iqrFactor * (q3 - q1)
        let fence = upperFence
        outliers = attention.filter { Double($0) > fence }.count
    }

    /// numpy's default percentile: position (n−1)·p/100 in the ascending array, linear in between.
    static func percentile(_ sorted: [Double], _ p: Double) -> Double {
        let pos = Double(sorted.count - 1) * p / 100
        let lo = Int(pos.rounded(.down)), hi = min(lo + 1, sorted.count - 1)
        let t = pos - Double(lo)
        // numpy's _lerp: a + (b−a)·t, switched to b − (b−a)·(1−t) for t ≥ 0.5.
        let d = sorted[hi] - sorted[lo]
        return t >= 0.5 ? sorted[hi] - d * (1 - t) : sorted[lo] + d * t
    }

    /// `int(N · ratio)`; adaptive: ratio = outliers / N as a Python float (so the count is recomputed
    /// through a float64 round trip, exact for the sizes that occur).
    func keepCount(adaptive: Bool, ratio: Double) throws -> Int {
        let n = Double(count)
        let r = adaptive ? Double(outliers) / n : ratio
        return min(count, Int(n * r))
    }

    /// The k largest attentions in descending order (torch.topk sorted=True).
    func topAttention(_ k: Int) -> [Int] { Selection.topK(attention, k) }

    /// Key-kNN merge of every kept token plus the summary token of the rest.
    func merge(kept: [Int], topCount: Int, knnK: Int) throws -> PruMergeResult {
        let n = count, c = features.columns, kc = keys.columns
        let keptSet = Set(kept)
        // complement_idx: the non-kept tokens ascending.
        let others = (0..<n).filter { !keptSet.contains($0) }
        // L2-normalised patch keys (F.normalize, eps 1e-12), float32 like the code.
        var unit = [Float](repeating: 0, count: n * kc)
        keys.withUnsafeBufferPointer { kb in
            unit.withUnsafeMutableBufferPointer { u in
                for j in 0..<n {
                    L2Norm.normalize(UnsafeBufferPointer(rebasing: kb[((j + 1) * kc)..<((j + 2) * kc)]),
                                     into: UnsafeMutableBufferPointer(rebasing: u[(j * kc)..<((j + 1) * kc)]),
                                     eps: 1e-12, accumulation: .float64)
                }
            }
        }
        // Cosine similarities of every kept token to every token: one float32 product, as the
        // code's bmm (a per-pair loop cost PruMerge+ 8.8 ms per image on 256 tokens).
        let units = try Tensor(shape: [n, kc], values: unit)
        let similarity = try units.gatherRows(kept).linear(weight: units)
        var out = Tensor(zeros: [kept.count + 1, c])
        var merged: [MergedToken] = []
        var acc = [Double](repeating: 0, count: c)
        /// `acc[d] = Σ_j attention[j]·rows[j, d]` in float64, j in the given order (row-wise for the
        /// cache; each column's sum runs over j in the same order as a column-wise loop).
        func weightedSum(of tokens: [Int], rows fb: UnsafeBufferPointer<Float>, into acc: inout [Double]) {
            for d in 0..<c { acc[d] = 0 }
            for j in tokens {
                let a = Double(attention[j])
                let row = fb.baseAddress! + j * c
                for d in 0..<c { acc[d] += a * Double(row[d]) }
            }
        }
        features.withUnsafeBufferPointer { fb in
            out.withUnsafeMutableBufferPointer { ob in
                for (i, t) in kept.enumerated() {
                    // Candidates in the code's order: other kept tokens (before, after i), then the
                    // non-kept ones. Kept tokens therefore absorb each other (quirk).
                    let candidates = Array(kept[..<i]) + Array(kept[(i + 1)...]) + others
                    let sims: [Float] = similarity.withUnsafeBufferPointer { sb in candidates.map { sb[i * n + $0] } }
                    let nn = Selection.topK(sims, knnK).map { candidates[$0] }
                    // x_i + Σ a_j·x_j with RAW attention weights (the normalisation is commented out)
                    // and the ORIGINAL neighbour features.
                    weightedSum(of: nn, rows: fb, into: &acc)
                    for d in 0..<c { ob[i * c + d] = Float(acc[d]) + fb[t * c + d] }
                    merged.append(MergedToken(outputIndex: i, sources: [t] + nn))
                }
                // The summary token: attention-weighted sum of every non-kept token (unnormalised).
                let last = kept.count
                weightedSum(of: others, rows: fb, into: &acc)
                for d in 0..<c { ob[last * c + d] = Float(acc[d]) }
                merged.append(MergedToken(outputIndex: last, sources: others))
            }
        }
        let compression = CompressionResult(kept: kept.sorted(), requestedCount: kept.count + 1,
                                            achievedCount: kept.count + 1, positionPolicy: .notApplicable,
                                            merged: merged)
        return PruMergeResult(clsAttention: attention, upperFence: upperFence, outlierCount: outliers,
                              kept: kept, topCount: topCount, features: out, compression: compression)
    }
}
