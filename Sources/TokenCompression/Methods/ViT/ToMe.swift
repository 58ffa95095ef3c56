import Foundation
import Tensors

/// ToMe — Token Merging (Bolya et al.), one merge step of a ViT block.
///
/// Criterion: cosine similarity of the block's attention keys averaged over heads (`k.mean(1)`),
/// between two alternating sets A (even positions) and B (odd positions). Strategy: every A token
/// proposes one edge to its most similar B token; the `r` strongest edges are applied, each source
/// A token being absorbed into its B partner by a size-weighted average. Because each A token picks
/// exactly one partner in B there are no chains, so the step costs about as much as pruning.
///
/// Sizes (how many input patches a token stands for) are carried from block to block; they weight
/// the averages and, through ``proportionalAttentionBias(sizes:)``, the attention logits of the
/// next blocks (log(size) added to every logit, so a merged token is attended as if its copies were
/// still there). The optional source map records which original patches each token holds.
///
/// Placement: inside every block, after `x = x + attn(norm1(x))` and before the MLP.
public struct ToMe {
    public static let info = MethodInfo(
        name: "tome",
        displayName: "ToMe",
        domain: .vit,
        families: [.merge],
        placement: .visionLayers(Array(0..<12)),
        signals: [.keys, .hiddenStates],
        needsAttentionProbabilities: false,
        paper: "Token Merging: Your ViT But Faster (ICLR 2023, arXiv 2210.09461)",
        repository: "facebookresearch/ToMe",
        summary: "Bipartite soft matching on head-mean keys; merges r tokens per block by size-weighted average, with proportional attention."
    )

    /// One block's merge setting.
    public struct Parameters: Sendable, Equatable {
        /// Tokens to remove in this block (ViT-B/16 with MAE/ToMe training: 16; off-the-shelf timm ViT-B: 13).
        /// Clamped by the code to `(T − protected) / 2`.
        public var r: Int
        /// Token 0 is a [CLS] token: never merged, and kept first.
        public var classToken: Bool
        /// Token 1 is a DeiT distillation token: never a merge destination, kept second.
        public var distillToken: Bool

        public init(r: Int = 16, classToken: Bool = true, distillToken: Bool = false) {
            self.r = r
            self.classToken = classToken
            self.distillToken = distillToken
        }

        public func validate() throws {
            guard r >= 0 else { throw CompressionError.invalidBudget("ToMe r = \(r) must be >= 0") }
        }

        var protectedCount: Int { (classToken ? 1 : 0) + (distillToken ? 1 : 0) }
    }

    /// The index structure of one matching (what the reference's `merge` closure captures).
    public struct Matching: Sendable, Equatable {
        /// Tokens entering the block.
        public let tokenCount: Int
        /// Requested r and the clamped r the code uses: `min(r, (T − protected) / 2)`.
        public let requestedR: Int
        public let effectiveR: Int
        public let classToken: Bool
        public let distillToken: Bool
        /// Input indices (even) of the surviving A tokens, in output order.
        public let unmerged: [Int]
        /// Input indices (even) of the A tokens merged away, in edge order (descending similarity).
        public let mergedSources: [Int]
        /// Input index (odd) of the destination of each `mergedSources` entry.
        public let mergedDestinations: [Int]

        /// Number of B tokens (odd positions).
        public var bCount: Int { tokenCount / 2 }
        public var outputCount: Int { tokenCount - effectiveR }

        /// For each output row, the input token it is based on (a surviving A token or a B token).
        ///
        /// Layout `[surviving A…, all B…]`; with a distillation token `[A₀, B₀, A₁…, B₁…]`, as the code
        /// concatenates it.
        /// The identity matching (effective r = 0) keeps every token in place, as the code's
        /// do-nothing merge does: `order` is then `0..<tokenCount`.
        public var order: [Int] {
            if isIdentity { return Array(0..<tokenCount) }
            let b = (0..<bCount).map { 2 * $0 + 1 }
            if distillToken, !unmerged.isEmpty, !b.isEmpty {
                return [unmerged[0], b[0]] + unmerged.dropFirst() + b.dropFirst()
            }
            return unmerged + b
        }

        /// An explicit no-op matching (effective r ≤ 0).
        static func identity(tokenCount: Int, requestedR: Int, parameters: Parameters) -> Matching {
            Matching(tokenCount: tokenCount, requestedR: requestedR, effectiveR: 0,
                     classToken: parameters.classToken, distillToken: parameters.distillToken,
                     unmerged: [], mergedSources: [], mergedDestinations: [])
        }

        var isIdentity: Bool { effectiveR == 0 }
    }

    /// Everything one merge step produces.
    public struct Step: Sendable {
        /// Merged tokens `[T − r_eff, C]` in the code's output order.
        public let x: Tensor
        /// Sizes of the output tokens (sum of the merged input sizes).
        public let sizes: [Float]
        /// Per output token, the ascending original patch indices it contains (a partition of the
        /// original patches).
        public let sources: [[Int]]
        public let matching: Matching
        /// Kept (untouched) input tokens, merged tokens and counts.
        public let result: CompressionResult
    }

    // MARK: - Criterion and matching

    /// Bipartite soft matching (`tome/merge.py::bipartite_soft_matching`).
    ///
    /// - Parameter metric: `[T, d]` head-mean keys of the block.
    public static func match(metric: Tensor, parameters: Parameters = Parameters()) throws -> Matching {
        try parameters.validate()
        guard metric.rank == 2 else { throw CompressionError.shapeMismatch("ToMe metric must be [T, d], got \(metric.shape)") }
        let t = metric.rows, d = metric.columns
        // r_eff = min(r, (T − protected) // 2): at most half of the unprotected tokens per block.
        let rEff = min(parameters.r, (t - parameters.protectedCount) / 2)
        if rEff <= 0 { return .identity(tokenCount: t, requestedR: parameters.r, parameters: parameters) }

        // metric / ‖metric‖ (no epsilon in the code: a zero row would give NaN; we refuse it instead).
        var unit = [[Double]](repeating: [], count: t)
        for i in 0..<t {
            let row = metric.row(i).map(Double.init)
            let norm = L2Norm.norm(row)
            guard norm > 0, norm.isFinite else {
                throw CompressionError.invalidParameter("ToMe metric row \(i) has norm \(norm); cosine similarity is undefined")
            }
            unit[i] = row.map { $0 / norm }
        }
        let aCount = (t + 1) / 2, bCount = t / 2
        var best = [Double](repeating: -.infinity, count: aCount)
        var bestIndex = [Int](repeating: 0, count: aCount)
        for a in 0..<aCount {
            // The CLS row is −inf, so it ranks last and can never be a source.
            if parameters.classToken && a == 0 { continue }
            for b in 0..<bCount {
                // The distillation token (B column 0) is −inf: never a destination.
                if parameters.distillToken && b == 0 { continue }
                var s = 0.0
                let u = unit[2 * a], v = unit[2 * b + 1]
                for c in 0..<d { s += u[c] * v[c] }
                if s > best[a] { best[a] = s; bestIndex[a] = b }
            }
        }
        // argsort(node_max, descending); ties (absent for real-valued keys) go to the lower index.
        let edges = Selection.argsort(best, descending: true)
        let src = Array(edges.prefix(rEff))
        var unm = Array(edges.dropFirst(rEff))
        // Quirk kept: only with a class token are the survivors re-sorted ascending (which brings the
        // CLS back to the front); without it they stay in DESCENDING-similarity order.
        if parameters.classToken { unm.sort() }
        return Matching(tokenCount: t, requestedR: parameters.r, effectiveR: rEff,
                        classToken: parameters.classToken, distillToken: parameters.distillToken,
                        unmerged: unm.map { 2 * $0 }, mergedSources: src.map { 2 * $0 },
                        mergedDestinations: src.map { 2 * bestIndex[$0] + 1 })
    }

    // MARK: - Strategy: merges

    /// `merge_wavg`: size-weighted average, `merge(x·size, sum) / merge(size, sum)`.
    ///
    /// Float32 as in the code, sources added into their destination in edge order (`scatter_reduce`,
    /// `include_self=True`). Rows that received nothing still pass through `x·size/size`.
    public static func mergeWeightedAverage(x: Tensor, sizes: [Float]?, matching: Matching) throws -> (x: Tensor, sizes: [Float]) {
        let t = matching.tokenCount
        guard x.rank == 2, x.rows == t else { throw CompressionError.shapeMismatch("ToMe x must be [\(t), C], got \(x.shape)") }
        let size = sizes ?? [Float](repeating: 1, count: t)
        guard size.count == t else { throw CompressionError.shapeMismatch("ToMe sizes has \(size.count) entries for \(t) tokens") }
        if matching.isIdentity { return (x, size) }
        let c = x.columns
        var weighted = [[Float]](repeating: [], count: t)
        for i in 0..<t { weighted[i] = x.row(i).map { $0 * size[i] } }
        var total = size
        for (s, dst) in zip(matching.mergedSources, matching.mergedDestinations) {
            for k in 0..<c { weighted[dst][k] += weighted[s][k] }
            total[dst] += total[s]
        }
        let order = matching.order
        var out = [Float](); out.reserveCapacity(order.count * c)
        var outSizes = [Float](); outSizes.reserveCapacity(order.count)
        for i in order {
            out.append(contentsOf: weighted[i].map { $0 / total[i] })
            outSizes.append(total[i])
        }
        return (try Tensor(shape: [order.count, c], values: out), outSizes)
    }

    /// `merge_source`: `merge(source, "amax")` on a 0/1 map, i.e. the union of the patch sets.
    /// `sources == nil` starts from the identity (each token holds its own patch).
    public static func mergeSources(_ sources: [[Int]]?, matching: Matching) throws -> [[Int]] {
        let t = matching.tokenCount
        var groups = sources ?? (0..<t).map { [$0] }
        guard groups.count == t else { throw CompressionError.shapeMismatch("ToMe source map has \(groups.count) rows for \(t) tokens") }
        if matching.isIdentity { return groups }
        for (s, dst) in zip(matching.mergedSources, matching.mergedDestinations) {
            groups[dst] = Array(Set(groups[dst]).union(groups[s])).sorted()
        }
        return matching.order.map { groups[$0] }
    }

    /// One whole merge step: matching, weighted merge of `x` and sizes, source map.
    ///
    /// - Parameters:
    ///   - x: `[T, C]` residual stream after the attention residual add.
    ///   - metric: `[T, d]` head-mean keys of the same block.
    ///   - sizes: carried sizes (nil = all ones, the first block).
    ///   - sources: carried source map (nil = identity).
    public static func step(x: Tensor, metric: Tensor, sizes: [Float]? = nil, sources: [[Int]]? = nil,
                            parameters: Parameters = Parameters()) throws -> Step {
        guard x.rank == 2, metric.rank == 2, x.rows == metric.rows else {
            throw CompressionError.shapeMismatch("ToMe x \(x.shape) and metric \(metric.shape) must be [T, ·] with the same T")
        }
        if let sizes, let bad = sizes.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw CompressionError.invalidParameter("ToMe size[\(bad)] = \(sizes[bad]) must be positive and finite")
        }
        let matching = try match(metric: metric, parameters: parameters)
        let (merged, newSizes) = try mergeWeightedAverage(x: x, sizes: sizes, matching: matching)
        let newSources = try mergeSources(sources, matching: matching)
        let t = x.rows
        let requested = max(0, t - parameters.r)
        guard !matching.isIdentity else {
            let result = CompressionResult.noOp(tokenCount: t, requested: requested, policy: .notApplicable,
                                                reason: "r clamps to 0 for \(t) tokens with \(parameters.protectedCount) protected (r = \(parameters.r))")
            return Step(x: merged, sizes: newSizes, sources: newSources, matching: matching, result: result)
        }
        var absorbed: [Int: [Int]] = [:]
        for (s, dst) in zip(matching.mergedSources, matching.mergedDestinations) { absorbed[dst, default: []].append(s) }
        let order = matching.order
        var kept: [Int] = []
        var mergedTokens: [MergedToken] = []
        for (row, i) in order.enumerated() {
            if let srcs = absorbed[i] {
                mergedTokens.append(MergedToken(outputIndex: row, sources: ([i] + srcs).sorted()))
            } else {
                kept.append(i)
            }
        }
        let result = CompressionResult(kept: kept.sorted(), requestedCount: requested, achievedCount: order.count,
                                       positionPolicy: .notApplicable, merged: mergedTokens)
        return Step(x: merged, sizes: newSizes, sources: newSources, matching: matching, result: result)
    }

    // MARK: - Proportional attention and schedules

    /// Additive attention bias of proportional attention: `log(size_j)` for every key j, to be added
    /// to each logit row `q·kᵀ·scale` (all heads, all queries) before the softmax. It can be passed
    /// as a float attention mask to an SDPA-style kernel; a kernel without a bias input cannot use it.
    public static func proportionalAttentionBias(sizes: [Float]) throws -> [Float] {
        if let bad = sizes.firstIndex(where: { !($0 > 0) || !$0.isFinite }) {
            throw CompressionError.invalidParameter("ToMe size[\(bad)] = \(sizes[bad]) must be positive and finite")
        }
        return sizes.map { Foundation.log($0) }
    }

    /// `tome/utils.py::parse_r` for a constant or inflected schedule: `lo = int(r·(1−inflect))`,
    /// `hi = 2r − lo`, `r_l = int(lo + (hi−lo)/(L−1)·l)` (truncation toward zero).
    /// `(r, −1)` is the paper's decreasing schedule 2r → 0. With one layer the code divides by zero;
    /// we return `[lo]`.
    public static func schedule(layers: Int, r: Int, inflect: Double = 0) throws -> [Int] {
        guard layers >= 1 else { throw CompressionError.invalidParameter("ToMe schedule needs layers >= 1, got \(layers)") }
        guard r >= 0 else { throw CompressionError.invalidBudget("ToMe r = \(r) must be >= 0") }
        guard inflect >= -1, inflect <= 1 else { throw CompressionError.invalidParameter("ToMe inflect \(inflect) must be in [-1, 1]") }
        let lo = Int(Double(r) * (1.0 - inflect))
        let hi = 2 * r - lo
        if layers == 1 { return [lo] }
        let stepSize = Double(hi - lo) / Double(layers - 1)
        return (0..<layers).map { Int(Double(lo) + stepSize * Double($0)) }
    }

    /// A list schedule is padded with zeros to `layers` (as `parse_r` does with a list).
    public static func schedule(layers: Int, list: [Int]) throws -> [Int] {
        guard list.allSatisfy({ $0 >= 0 }) else { throw CompressionError.invalidBudget("ToMe r list \(list) has a negative entry") }
        return list.count >= layers ? list : list + [Int](repeating: 0, count: layers - list.count)
    }

    /// Token counts through a ViT for a schedule, with the per-block clamp: entry 0 is the input,
    /// entry l+1 the count after block l's merge (ViT-B/16, r = 16: 197 → 181 → … → 21 → 11, the
    /// last block being clamped to r = 10).
    public static func tokenCounts(initialTokens: Int, rs: [Int], classToken: Bool = true, distillToken: Bool = false) -> [Int] {
        let protected = (classToken ? 1 : 0) + (distillToken ? 1 : 0)
        var counts = [initialTokens]
        for r in rs {
            let n = counts[counts.count - 1]
            counts.append(n - max(0, min(r, (n - protected) / 2)))
        }
        return counts
    }
}
