import Foundation
import Tensors

/// ToMe for Stable Diffusion (Bolya & Hoffman): merge redundant tokens before a U-Net transformer
/// block's self-attention and unmerge its output, at every sampling step.
///
/// Criterion: cosine similarity of the block's INPUT hidden states (raw, before `norm1`) between two
/// sets: the h×w token grid is tiled with sy×sx cells and one token per cell is a destination (B,
/// chosen at random inside the cell, or the top-left one); every other token, including the rows and
/// columns that the cells do not cover, is a source (A). Strategy: every source proposes an edge to its
/// most similar destination; the `r` strongest edges are applied and each destination becomes the
/// UNWEIGHTED mean of itself and the sources it received (no sizes, no proportional attention). After
/// the sub-layer, `unmerge` copies each destination's output back to its sources, so the residual
/// stream always keeps all N tokens.
///
/// Follows dbolya/tomesd `patch.py::compute_merge` (which blocks, grid, r, randomness switch) and
/// `merge.py::bipartite_soft_matching_random2d` (the partition, matching, `merge` and `unmerge`
/// closures). The batch dimension (the CFG batch) is kept: the destination set is shared by the
/// batch, the matching is computed per batch element.
///
/// Placement: in every `BasicTransformerBlock` whose downsampling is ≤ `maxDownsample` (default: the
/// highest-resolution blocks only), around self-attention: `x += unmerge(attn1(merge(norm1(x))))`.
public struct ToMeSD {
    public static let info = MethodInfo(
        name: "tomesd",
        displayName: "ToMe-SD",
        domain: .diffusion,
        families: [.merge],
        placement: .everyDiffusionStep,
        signals: [.hiddenStates],
        needsAttentionProbabilities: false,
        paper: "Token Merging for Fast Stable Diffusion (CVPR Workshops 2023, arXiv 2303.17604)",
        repository: "dbolya/tomesd",
        summary: "Around the self-attention of the highest-resolution U-Net blocks: one random destination per 2×2 cell, the most similar sources merged by an unweighted mean, unmerged after the sub-layer."
    )

    /// `apply_patch`'s settings (`tome_info["args"]`).
    public struct Parameters: Sendable, Equatable {
        /// Fraction of a block's tokens to remove: `r = int(N · ratio)`, then at most the source count.
        public var ratio: Double
        /// Merge only in blocks whose downsample factor is ≤ this (1: the 4 of 15 highest-resolution blocks).
        public var maxDownsample: Int
        /// Destination stride in x: the grid is tiled with `sy × sx` cells, one destination per cell.
        public var sx: Int
        /// Destination stride in y.
        public var sy: Int
        /// Random destination inside each cell (forced off for an odd batch); off = the top-left token.
        public var useRand: Bool
        /// Which sub-layers of the block are wrapped in merge/unmerge (`merge_attn`, `merge_crossattn`, `merge_mlp`).
        public var mergeAttention: Bool
        public var mergeCrossAttention: Bool
        public var mergeMLP: Bool

        /// Defaults: `apply_patch`'s (ratio 0.5, max_downsample 1, 2×2 cells, random destinations,
        /// self-attention only).
        public init(ratio: Double = 0.5, maxDownsample: Int = 1, sx: Int = 2, sy: Int = 2, useRand: Bool = true,
                    mergeAttention: Bool = true, mergeCrossAttention: Bool = false, mergeMLP: Bool = false) {
            self.ratio = ratio
            self.maxDownsample = maxDownsample
            self.sx = sx
            self.sy = sy
            self.useRand = useRand
            self.mergeAttention = mergeAttention
            self.mergeCrossAttention = mergeCrossAttention
            self.mergeMLP = mergeMLP
        }

        public func validate() throws {
            // The code accepts any float; a negative ratio merges nothing and one above 1 is clamped to
            // the source count. We refuse both (and non-finite values) as meaningless settings.
            guard ratio.isFinite, ratio >= 0, ratio <= 1 else {
                throw CompressionError.invalidParameter("ToMe-SD ratio = \(ratio) must be in [0, 1]")
            }
            guard maxDownsample >= 1 else {
                throw CompressionError.invalidParameter("ToMe-SD maxDownsample = \(maxDownsample) must be ≥ 1")
            }
            guard sx >= 1, sy >= 1 else {
                throw CompressionError.invalidParameter("ToMe-SD strides sx = \(sx), sy = \(sy) must be ≥ 1")
            }
        }
    }

    /// Where the destination of each sy×sx cell sits.
    public enum DestinationChoice: Sendable, Equatable {
        /// `no_rand`: position 0 of every cell, its top-left token.
        case topLeft
        /// One position k ∈ [0, sy·sx) per cell, cells row-major over `(h // sy, w // sx)`; k lies at
        /// row `k // sx`, column `k % sx` of its cell. This is the code's `rand_idx` (a
        /// `torch.randint(sy*sx, (h//sy, w//sx, 1))` draw), so a recorded draw reproduces a run.
        case cells([Int])
        /// Uniform positions drawn from our own seeded generator (SplitMix64); not torch's stream.
        /// The code's generator persists across blocks and steps: vary the seed per call to match that.
        case seeded(UInt64)
    }

    /// The sub-layers of a transformer block that `compute_merge` can wrap.
    public enum Sublayer: Sendable, CaseIterable {
        case selfAttention, crossAttention, mlp
    }

    // MARK: - compute_merge: which blocks, grid, r

    /// What `compute_merge` decides for one block before any matching.
    public struct BlockPlan: Sendable, Equatable {
        public let batchSize: Int
        public let tokenCount: Int
        /// `ceil(sqrt(original_h · original_w // N))`.
        public let downsample: Int
        /// `downsample ≤ maxDownsample`: the block merges (when r > 0).
        public let applies: Bool
        /// Token grid `h = ceil(original_h / downsample)`, `w = ceil(original_w / downsample)` (0 when not applied).
        public let height: Int
        public let width: Int
        /// `int(N · ratio)` (0 when not applied).
        public let requestedR: Int
        /// `min(requestedR, source count)`, 0 when nothing merges.
        public let effectiveR: Int
        /// `use_rand` after the odd-batch switch.
        public let useRand: Bool
        public let parameters: Parameters

        /// Destination count `(h // sy) · (w // sx)`.
        public var destinationCount: Int { applies ? (height / parameters.sy) * (width / parameters.sx) : 0 }
        /// Why the block is left as it is, when it is.
        public var noOpReason: String? {
            if !applies { return "downsample \(downsample) > maxDownsample \(parameters.maxDownsample): block not merged" }
            if effectiveR == 0 { return "r = int(\(tokenCount) · \(parameters.ratio)) = \(requestedR): nothing to merge" }
            return nil
        }
    }

    /// `compute_merge` without the matching: the block's downsample factor, grid, r and randomness.
    ///
    /// Settings where the authors' code raises throw `unsupportedSetting`: more tokens than the latent
    /// has (`downsample` 0, a division by zero), and, when r > 0, a grid whose `h·w` is not the token
    /// count (the gathers fail) or smaller than one cell (the max over no destination fails).
    public static func computeMerge(batchSize: Int, tokenCount: Int, originalSize: (height: Int, width: Int),
                                    parameters: Parameters = Parameters()) throws -> BlockPlan {
        try parameters.validate()
        guard batchSize >= 1, tokenCount >= 1 else {
            throw CompressionError.shapeMismatch("ToMe-SD needs batch ≥ 1 and tokens ≥ 1, got batch \(batchSize), \(tokenCount) tokens")
        }
        let (oh, ow) = originalSize
        guard oh >= 1, ow >= 1 else {
            throw CompressionError.invalidParameter("ToMe-SD original latent size \(oh)×\(ow) must be ≥ 1×1")
        }
        let (originalTokens, overflow) = oh.multipliedReportingOverflow(by: ow)
        guard !overflow else { throw CompressionError.invalidParameter("ToMe-SD original latent size \(oh)×\(ow) overflows") }
        // int(math.ceil(math.sqrt(original_tokens // N))): integer division inside the root.
        let downsample = Int((Double(originalTokens / tokenCount)).squareRoot().rounded(.up))
        guard downsample >= 1 else {
            throw CompressionError.unsupportedSetting("ToMe-SD: \(tokenCount) tokens exceed the \(oh)×\(ow) latent; compute_merge divides by downsample 0")
        }
        let useRand = batchSize % 2 == 1 ? false : parameters.useRand
        guard downsample <= parameters.maxDownsample else {
            return BlockPlan(batchSize: batchSize, tokenCount: tokenCount, downsample: downsample, applies: false,
                             height: 0, width: 0, requestedR: 0, effectiveR: 0, useRand: useRand, parameters: parameters)
        }
        let height = (oh + downsample - 1) / downsample
        let width = (ow + downsample - 1) / downsample
        // int(N * ratio): a Python float product truncated toward zero (ratio ≤ 1, so no overflow).
        let requestedR = Int(Double(tokenCount) * parameters.ratio)
        var effectiveR = 0
        if requestedR > 0 {
            try checkGrid(tokenCount: tokenCount, height: height, width: width, sx: parameters.sx, sy: parameters.sy)
            let sources = tokenCount - (height / parameters.sy) * (width / parameters.sx)
            effectiveR = min(requestedR, sources)
        }
        return BlockPlan(batchSize: batchSize, tokenCount: tokenCount, downsample: downsample, applies: true,
                         height: height, width: width, requestedR: requestedR, effectiveR: effectiveR,
                         useRand: useRand, parameters: parameters)
    }

    /// The settings under which `bipartite_soft_matching_random2d` with r > 0 fails in the code.
    static func checkGrid(tokenCount: Int, height: Int, width: Int, sx: Int, sy: Int) throws {
        guard height >= 1, width >= 1 else {
            throw CompressionError.invalidParameter("ToMe-SD grid \(height)×\(width) must be ≥ 1×1")
        }
        let (cells, overflow) = height.multipliedReportingOverflow(by: width)
        guard !overflow, cells == tokenCount else {
            throw CompressionError.unsupportedSetting("ToMe-SD: grid \(height)×\(width) does not hold the \(tokenCount) tokens (the code's gathers fail)")
        }
        guard height / sy >= 1, width / sx >= 1 else {
            throw CompressionError.unsupportedSetting("ToMe-SD: grid \(height)×\(width) is smaller than one \(sy)×\(sx) cell; no destination exists (the code's max over an empty set fails)")
        }
    }

    // MARK: - bipartite_soft_matching_random2d

    /// The index structure of one matching (what the code's `merge`/`unmerge` closures capture).
    public struct Matching: Sendable, Equatable {
        public let batchSize: Int
        public let tokenCount: Int
        /// Grid and strides passed to the matcher (0 for the do-nothing matching).
        public let height: Int
        public let width: Int
        public let sx: Int
        public let sy: Int
        /// r asked of the matcher, and r after `min(r, source count)` (0: do nothing).
        public let requestedR: Int
        public let effectiveR: Int
        /// Destination position k of each cell, row-major over `(h // sy, w // sx)` (the code's `rand_idx`).
        public let cells: [Int]
        /// Destination tokens (the code's `b_idx` as a set), ascending, shared by the batch.
        public let destinations: [Int]
        /// Source tokens (`a_idx` as a set), ascending: every other token.
        public let sources: [Int]
        /// Per batch element: the merged sources in edge order (descending best similarity) and the
        /// destination each one joins.
        public let mergedSources: [[Int]]
        public let mergedDestinations: [[Int]]
        /// Per batch element: the surviving sources in edge order.
        public let unmergedSources: [[Int]]
        /// Why nothing merges, for the do-nothing matching.
        public let noOpReason: String?

        public var isIdentity: Bool { effectiveR == 0 }
        public var outputCount: Int { tokenCount - effectiveR }

        /// The do-nothing matching: `merge` and `unmerge` return their input.
        public static func identity(batchSize: Int, tokenCount: Int, requestedR: Int = 0, reason: String) -> Matching {
            Matching(batchSize: batchSize, tokenCount: tokenCount, height: 0, width: 0, sx: 0, sy: 0,
                     requestedR: requestedR, effectiveR: 0, cells: [], destinations: [], sources: [],
                     mergedSources: Array(repeating: [], count: batchSize),
                     mergedDestinations: Array(repeating: [], count: batchSize),
                     unmergedSources: Array(repeating: [], count: batchSize), noOpReason: reason)
        }

        /// Rows of `merge`'s output for batch element `b`: the token each row is based on, ascending
        /// (surviving sources and all destinations). The code's own order is `[surviving sources in
        /// edge order, destinations in b_idx order]` with `a_idx`/`b_idx` from an UNSTABLE argsort, so
        /// it is not reproducible; we use this canonical order (unmerge restores positions, and SD's
        /// self-attention has no positional term, so the block output does not depend on it).
        public func order(batch b: Int) -> [Int] {
            if isIdentity { return Array(0..<tokenCount) }
            return (unmergedSources[b] + destinations).sorted()
        }

        /// For every token of batch element `b`, the token its merged row is based on (itself unless
        /// it is a merged source, then its destination).
        public func assignment(batch b: Int) -> [Int] {
            var base = Array(0..<tokenCount)
            for (s, d) in zip(mergedSources[b], mergedDestinations[b]) { base[s] = d }
            return base
        }

        /// The merge of batch element `b` in the core's vocabulary: tokens left as they are
        /// (surviving sources, destinations that received nothing) and merged tokens (a destination
        /// and its sources) at their output rows.
        public func result(batch b: Int) -> CompressionResult {
            let requested = max(0, tokenCount - requestedR)
            if isIdentity {
                return .noOp(tokenCount: tokenCount, requested: requested, policy: .notApplicable,
                             reason: noOpReason ?? "r = 0: nothing to merge")
            }
            var absorbed: [Int: [Int]] = [:]
            for (s, d) in zip(mergedSources[b], mergedDestinations[b]) { absorbed[d, default: [d]].append(s) }
            var kept: [Int] = [], merged: [MergedToken] = []
            for (row, token) in order(batch: b).enumerated() {
                if let group = absorbed[token] {
                    merged.append(MergedToken(outputIndex: row, sources: group.sorted()))
                } else {
                    kept.append(token)
                }
            }
            return CompressionResult(kept: kept, requestedCount: requested, achievedCount: outputCount,
                                     positionPolicy: .notApplicable, merged: merged)
        }
    }

    /// Destination tokens (ascending) for cell positions `cells` on an `height × width` grid.
    /// Rows and columns beyond `(h // sy)·sy`, `(w // sx)·sx` hold no cell: they are all sources.
    public static func destinationTokens(height: Int, width: Int, sx: Int, sy: Int, cells: [Int]) throws -> [Int] {
        let cellRows = height / sy, cellColumns = width / sx
        guard cells.count == cellRows * cellColumns else {
            throw CompressionError.shapeMismatch("ToMe-SD needs one destination position per cell (\(cellRows)×\(cellColumns)), got \(cells.count)")
        }
        if let bad = cells.first(where: { $0 < 0 || $0 >= sx * sy }) {
            throw CompressionError.invalidParameter("ToMe-SD destination position \(bad) outside a \(sy)×\(sx) cell (0..<\(sx * sy))")
        }
        var tokens: [Int] = []
        tokens.reserveCapacity(cells.count)
        for i in 0..<cellRows {
            for j in 0..<cellColumns {
                let k = cells[i * cellColumns + j]
                tokens.append((i * sy + k / sx) * width + j * sx + k % sx)
            }
        }
        return tokens.sorted()
    }

    /// `bipartite_soft_matching_random2d(metric, w, h, sx, sy, r, no_rand, generator)`.
    ///
    /// - Parameters:
    ///   - metric: `[B, N, C]` block input hidden states, `N = height · width` (row-major grid).
    ///   - r: tokens to remove; ≤ 0 gives the do-nothing matching (no draw, no checks of the grid).
    ///   - destinations: the position of the destination inside each cell (`.topLeft` is `no_rand`).
    public static func bipartiteSoftMatchingRandom2D(metric: Tensor, width: Int, height: Int, sx: Int = 2, sy: Int = 2,
                                                     r: Int, destinations: DestinationChoice) throws -> Matching {
        guard metric.rank == 3, metric.shape[0] >= 1, metric.shape[1] >= 1, metric.shape[2] >= 1 else {
            throw CompressionError.shapeMismatch("ToMe-SD metric must be [B, N, C] with B, N, C ≥ 1, got \(metric.shape)")
        }
        let batch = metric.shape[0], n = metric.shape[1], c = metric.shape[2]
        guard sx >= 1, sy >= 1 else {
            throw CompressionError.invalidParameter("ToMe-SD strides sx = \(sx), sy = \(sy) must be ≥ 1")
        }
        if r <= 0 { return .identity(batchSize: batch, tokenCount: n, requestedR: r, reason: "r = \(r): nothing to merge") }
        try checkGrid(tokenCount: n, height: height, width: width, sx: sx, sy: sy)

        let cellCount = (height / sy) * (width / sx)
        let cells: [Int]
        switch destinations {
        case .topLeft:
            cells = Array(repeating: 0, count: cellCount)
        case .cells(let given):
            cells = given
        case .seeded(let seed):
            var generator = SplitMix64(seed: seed)
            // Lemire's multiply-high: uniform in 0..<sx·sy up to a 2⁻⁶⁴ bias.
            cells = (0..<cellCount).map { _ in Int(generator.next().multipliedFullWidth(by: UInt64(sx * sy)).high) }
        }
        let dst = try destinationTokens(height: height, width: width, sx: sx, sy: sy, cells: cells)
        var isDestination = [Bool](repeating: false, count: n)
        for t in dst { isDestination[t] = true }
        let src = (0..<n).filter { !isDestination[$0] }
        // Can't reduce more than the number of sources.
        let rEff = min(r, src.count)

        // metric / metric.norm(dim=-1): no epsilon in the code (a zero row gives NaN); we refuse it.
        var unit = [Float](repeating: 0, count: batch * n * c)
        try metric.withUnsafeBufferPointer { m in
            for row in 0..<(batch * n) {
                var sum = 0.0
                for k in 0..<c { let v = Double(m[row * c + k]); sum += v * v }
                let norm = sum.squareRoot()
                guard norm > 0, norm.isFinite else {
                    throw CompressionError.invalidParameter("ToMe-SD metric row \(row % n) of batch element \(row / n) has norm \(norm); cosine similarity is undefined")
                }
                for k in 0..<c { unit[row * c + k] = Float(Double(m[row * c + k]) / norm) }
            }
        }

        var mergedSources: [[Int]] = [], mergedDestinations: [[Int]] = [], unmerged: [[Int]] = []
        var a = [Float](repeating: 0, count: src.count * c)
        var bMatrix = [Float](repeating: 0, count: dst.count * c)
        var scores = [Float](repeating: 0, count: src.count * dst.count)
        for b in 0..<batch {
            let offset = b * n * c
            for (i, t) in src.enumerated() { for k in 0..<c { a[i * c + k] = unit[offset + t * c + k] } }
            for (j, t) in dst.enumerated() { for k in 0..<c { bMatrix[j * c + k] = unit[offset + t * c + k] } }
            // scores = a @ bᵀ, [sources, destinations], float32 as in the code.
            a.withUnsafeBufferPointer { ap in
                bMatrix.withUnsafeBufferPointer { bp in
                    scores.withUnsafeMutableBufferPointer { sp in
                        BLAS.sgemm(transposeA: false, transposeB: true, m: src.count, n: dst.count, k: c,
                                   a: ap.baseAddress!, lda: c, b: bp.baseAddress!, ldb: c, c: sp.baseAddress!, ldc: dst.count)
                    }
                }
            }
            // node_max, node_idx = scores.max(dim=-1); ties go to the lowest destination token (the code's
            // tie-break follows b_idx, an unstable-argsort order).
            var best = [Float](repeating: -.infinity, count: src.count)
            var bestIndex = [Int](repeating: 0, count: src.count)
            for i in 0..<src.count {
                for j in 0..<dst.count where scores[i * dst.count + j] > best[i] {
                    best[i] = scores[i * dst.count + j]
                    bestIndex[i] = j
                }
            }
            // edge_idx = node_max.argsort(descending=True); ties (absent for real-valued inputs) go to
            // the lowest source token.
            let edges = Selection.argsort(best, descending: true)
            mergedSources.append(edges.prefix(rEff).map { src[$0] })
            mergedDestinations.append(edges.prefix(rEff).map { dst[bestIndex[$0]] })
            unmerged.append(edges.dropFirst(rEff).map { src[$0] })
        }
        return Matching(batchSize: batch, tokenCount: n, height: height, width: width, sx: sx, sy: sy,
                        requestedR: r, effectiveR: rEff, cells: cells, destinations: dst, sources: src,
                        mergedSources: mergedSources, mergedDestinations: mergedDestinations,
                        unmergedSources: unmerged, noOpReason: nil)
    }

    // MARK: - merge and unmerge

    static func checkBatch(_ x: Tensor, batch: Int, tokens: Int, _ what: String) throws -> Int {
        guard x.rank == 3, x.shape[0] == batch, x.shape[1] == tokens else {
            throw CompressionError.shapeMismatch("ToMe-SD \(what) must be [\(batch), \(tokens), C], got \(x.shape)")
        }
        return x.shape[2]
    }

    /// `merge(x, mode="mean")`: `[B, N, C]` → `[B, N − r, C]`, rows in the canonical order
    /// (``Matching/order(batch:)``). A destination row becomes the mean of itself and the sources
    /// merged into it (`scatter_reduce(..., reduce="mean")`, `include_self=True`: an unweighted mean,
    /// float32 sums in edge order); surviving sources pass unchanged.
    public static func merge(_ x: Tensor, matching: Matching) throws -> Tensor {
        let c = try checkBatch(x, batch: matching.batchSize, tokens: matching.tokenCount, "merge input")
        if matching.isIdentity { return x }
        let n = matching.tokenCount, outRows = matching.outputCount
        var out = Tensor(zeros: [matching.batchSize, outRows, c])
        out.withUnsafeMutableBufferPointer { o in
            x.withUnsafeBufferPointer { v in
                // Slot of each destination token in the sums (−1: not a destination).
                var slot = [Int](repeating: -1, count: n)
                for (j, d) in matching.destinations.enumerated() { slot[d] = j }
                var sums = [Float](repeating: 0, count: matching.destinations.count * c)
                var counts = [Float](repeating: 0, count: matching.destinations.count)
                for b in 0..<matching.batchSize {
                    let base = b * n * c
                    for (j, d) in matching.destinations.enumerated() {
                        for k in 0..<c { sums[j * c + k] = v[base + d * c + k] }
                        counts[j] = 1
                    }
                    for (s, d) in zip(matching.mergedSources[b], matching.mergedDestinations[b]) {
                        let j = slot[d]
                        for k in 0..<c { sums[j * c + k] += v[base + s * c + k] }
                        counts[j] += 1
                    }
                    for (row, token) in matching.order(batch: b).enumerated() {
                        let target = (b * outRows + row) * c
                        let j = slot[token]
                        if j >= 0 {
                            for k in 0..<c { o[target + k] = sums[j * c + k] / counts[j] }
                        } else {
                            for k in 0..<c { o[target + k] = v[base + token * c + k] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// `unmerge(x)`: `[B, N − r, C]` (canonical order, as ``merge(_:matching:)`` gives) → `[B, N, C]`.
    /// Every token takes the row it was merged into: destinations and surviving sources their own,
    /// merged sources their destination's.
    public static func unmerge(_ x: Tensor, matching: Matching) throws -> Tensor {
        let c = try checkBatch(x, batch: matching.batchSize, tokens: matching.outputCount, "unmerge input")
        if matching.isIdentity { return x }
        let n = matching.tokenCount, inRows = matching.outputCount
        var out = Tensor(zeros: [matching.batchSize, n, c])
        out.withUnsafeMutableBufferPointer { o in
            x.withUnsafeBufferPointer { v in
                for b in 0..<matching.batchSize {
                    var rowOf = [Int](repeating: -1, count: n)
                    for (row, token) in matching.order(batch: b).enumerated() { rowOf[token] = row }
                    for (t, base) in matching.assignment(batch: b).enumerated() {
                        let source = (b * inRows + rowOf[base]) * c, target = (b * n + t) * c
                        for k in 0..<c { o[target + k] = v[source + k] }
                    }
                }
            }
        }
        return out
    }

    // MARK: - compute_merge with the matching

    /// One block's merge decision: the plan and the matching (the do-nothing one when the block is
    /// skipped or r = 0), and which sub-layers use it.
    public struct Block: Sendable {
        public let plan: BlockPlan
        public let matching: Matching

        /// `m_a/u_a`, `m_c/u_c`, `m_m/u_m`: the matching for a sub-layer, or the do-nothing one when the
        /// parameters do not merge it.
        public func sublayerMatching(_ sublayer: Sublayer) -> Matching {
            let on: Bool
            switch sublayer {
            case .selfAttention: on = plan.parameters.mergeAttention
            case .crossAttention: on = plan.parameters.mergeCrossAttention
            case .mlp: on = plan.parameters.mergeMLP
            }
            return on ? matching : .identity(batchSize: plan.batchSize, tokenCount: plan.tokenCount,
                                              reason: "\(sublayer) is not merged (parameters)")
        }

        /// The self-attention merge of batch element `b` in the core's vocabulary.
        public func result(batch b: Int = 0) -> CompressionResult { sublayerMatching(.selfAttention).result(batch: b) }
    }

    /// `compute_merge(x, tome_info)`: plan the block and match on its input hidden states.
    ///
    /// - Parameters:
    ///   - metric: `[B, N, C]` the block's input hidden states (before `norm1`).
    ///   - originalSize: the U-Net input's latent `(height, width)` (64×64 for SD at 512²).
    ///   - destinations: the destination positions used when randomness is on; with `useRand` off or an
    ///     odd batch the code's fixed choice (`.topLeft`) is used instead.
    public static func computeMerge(metric: Tensor, originalSize: (height: Int, width: Int),
                                    parameters: Parameters = Parameters(), destinations: DestinationChoice) throws -> Block {
        guard metric.rank == 3 else {
            throw CompressionError.shapeMismatch("ToMe-SD metric must be [B, N, C], got \(metric.shape)")
        }
        let plan = try computeMerge(batchSize: metric.shape[0], tokenCount: metric.shape[1],
                                    originalSize: originalSize, parameters: parameters)
        if let reason = plan.noOpReason {
            return Block(plan: plan, matching: .identity(batchSize: plan.batchSize, tokenCount: plan.tokenCount,
                                                         requestedR: plan.requestedR, reason: reason))
        }
        let matching = try bipartiteSoftMatchingRandom2D(metric: metric, width: plan.width, height: plan.height,
                                                         sx: parameters.sx, sy: parameters.sy, r: plan.requestedR,
                                                         destinations: plan.useRand ? destinations : .topLeft)
        return Block(plan: plan, matching: matching)
    }
}
