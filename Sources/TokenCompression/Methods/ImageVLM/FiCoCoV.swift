import Foundation
import Tensors

/// FiCoCo-V (Han et al., "Filter, Correlate, Compress", AAAI 2026, arXiv 2411.17686): in each late
/// CLIP layer (12…23, after attention, before the MLP) merge r tokens away. Filter scores redundancy
/// from the pre-softmax logits, Correlate picks each merged token's targets from its attention row,
/// Compress scatters the weighted token into them.
///
/// Follows `llava/model/multimodal_encoder/FiCoCo_V.py` of kawhiiiileo/FiCoCo (`Filter`, `Correlate`,
/// `Compress`, `merge_ficoco_v`, `find_windows_min_indices`) as `FiCoCo_CLIPEncoderLayer` calls them,
/// quirks included (see `layer`). Note the repository ships with `merge_visual = False`.
public struct FiCoCoV {
    public static let info = MethodInfo(
        name: "ficoco_v", displayName: "FiCoCo-V", domain: .imageVLM, families: [.merge],
        placement: .visionLayers(Array(12...23)),
        signals: [.attentionLogits, .queries, .keys, .hiddenStates],
        needsAttentionProbabilities: true,
        paper: "Filter, Correlate, Compress: Training-Free Token Reduction for MLLM Acceleration (AAAI 2026, arXiv 2411.17686)",
        repository: "kawhiiiileo/FiCoCo",
        summary: "per ViT layer: merge the r most redundant tokens (CLS vs. mean logits, 2×2 local penalty) into their top-attention targets")

    public struct Parameters: Sendable, Equatable {
        /// Tokens merged away per layer (module global r = 42).
        public var r: Int
        /// Weight of the [CLS] term in the redundancy score (0.35).
        public var beta: Double
        /// Local-penalty window `[sy, sx]` on the score buffer grid (2×2).
        public var windowHeight: Int
        public var windowWidth: Int
        /// Window minima penalised (144 = 576 / 4); must equal the number of windows.
        public var penaltyCount: Int
        /// Length of the score buffer (576 = 24×24), a perfect square.
        public var stateSize: Int
        /// Correlate quantile that sets the number of targets per merged token (0.998).
        public var quantile: Float

        public init(r: Int = 42, beta: Double = 0.35, windowHeight: Int = 2, windowWidth: Int = 2,
                    penaltyCount: Int = 144, stateSize: Int = 576, quantile: Float = 0.998) {
            self.r = r
            self.beta = beta
            self.windowHeight = windowHeight
            self.windowWidth = windowWidth
            self.penaltyCount = penaltyCount
            self.stateSize = stateSize
            self.quantile = quantile
        }

        var side: Int { Int(Double(stateSize).squareRoot()) }
    }

    /// The code's module-global `dst_score_global`: a score buffer indexed as if it were the 24×24 grid.
    /// Positions set to +inf stay excluded from later writes. The code never resets it (state leaks
    /// across images); start a fresh `State` per image.
    public struct State: Sendable, Equatable {
        public var buffer: [Float]
        public init(size: Int = 576) { buffer = [Float](repeating: 1e9, count: size) }
        public var infinite: [Bool] { buffer.map { $0 == .infinity } }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        let p = parameters
        guard p.r >= 0 else { throw CompressionError.invalidParameter("r \(p.r) must be ≥ 0") }
        guard p.beta.isFinite, p.beta >= 0, p.beta <= 1 else { throw CompressionError.invalidParameter("beta \(p.beta) must be in [0, 1]") }
        guard p.quantile.isFinite, p.quantile >= 0, p.quantile <= 1 else { throw CompressionError.invalidParameter("quantile \(p.quantile) must be in [0, 1]") }
        guard p.stateSize >= 1, p.side * p.side == p.stateSize else {
            throw CompressionError.invalidParameter("stateSize \(p.stateSize) must be a perfect square (the code views it as a grid)")
        }
        guard p.windowHeight >= 1, p.windowWidth >= 1, p.windowHeight <= p.side, p.windowWidth <= p.side else {
            throw CompressionError.invalidParameter("window \(p.windowHeight)×\(p.windowWidth) must fit the \(p.side)×\(p.side) buffer grid")
        }
        let windows = (p.side / p.windowHeight) * (p.side / p.windowWidth)
        guard p.penaltyCount == windows else {
            throw CompressionError.invalidParameter("penaltyCount \(p.penaltyCount) must equal the \(windows) windows (the code takes the window minima from an unstable argsort)")
        }
        self.parameters = parameters
    }

    /// Head-mean logits `mean_h (q_h·k_hᵀ)` from per-head queries (already scaled) and keys `[H, T, d]`.
    public static func headMeanLogits(queries: Tensor, keys: Tensor) throws -> Tensor {
        guard queries.rank == 3, queries.shape == keys.shape else {
            throw CompressionError.shapeMismatch("queries \(queries.shape) and keys \(keys.shape) must both be [H, T, d]")
        }
        let h = queries.shape[0], t = queries.shape[1], d = queries.shape[2]
        var out = Tensor(zeros: [t, t])
        // Σ_h (1/H)·Q_h·K_hᵀ accumulated by BLAS (beta = 1 after the first head): float32 like the
        // reference's per-head matmuls, without its scalar cost (seconds at 577 tokens).
        queries.withUnsafeBufferPointer { q in
            keys.withUnsafeBufferPointer { k in
                out.withUnsafeMutableBufferPointer { o in
                    for head in 0..<h {
                        BLAS.sgemm(transposeA: false, transposeB: true, m: t, n: t, k: d,
                                   alpha: 1 / Float(h),
                                   a: q.baseAddress! + head * t * d, lda: d,
                                   b: k.baseAddress! + head * t * d, ldb: d,
                                   beta: head == 0 ? 0 : 1,
                                   c: o.baseAddress!, ldc: t)
                    }
                }
            }
        }
        return out
    }

    /// One FiCoCo-V layer on `hidden` `[T, C]` (row 0 = the protected token) with head-mean logits `[T, T]`.
    public func layer(hidden: Tensor, logits: Tensor, state: inout State) throws -> FiCoCoVLayerResult {
        let p = parameters
        let t = hidden.rows, c = hidden.columns
        guard hidden.rank == 2, logits.shape == [t, t] else {
            throw CompressionError.shapeMismatch("hidden \(hidden.shape) needs [T, C] and logits \(logits.shape) [T, T]")
        }
        guard state.buffer.count == p.stateSize else {
            throw CompressionError.shapeMismatch("state buffer has \(state.buffer.count) slots, parameters say \(p.stateSize)")
        }
        if p.r == 0 {
            return FiCoCoVLayerResult(output: hidden, sizes: [Float](repeating: 1, count: t), scores: [], penalized: [],
                                      mergeIndices: [], remainIndices: Array(0..<t), targets: [], weights: [], scatterPositions: [],
                                      compression: .noOp(tokenCount: t, requested: t, policy: .notApplicable, reason: "r = 0: nothing to merge"))
        }
        guard t >= 2, p.r <= t - 2 else {
            throw CompressionError.invalidBudget("r = \(p.r) needs at least r + 2 = \(p.r + 2) tokens, got \(t)")
        }
        // The code remaps a target index i ≥ T − r to i − r (see Compress); with 2r > T that can be
        // negative, which torch's scatter rejects. Say so instead of indexing out of bounds.
        guard 2 * p.r <= t else {
            throw CompressionError.invalidBudget("r = \(p.r) exceeds half of the \(t) tokens: the code's target remapping (i − r for i ≥ T − r) would leave the rows")
        }
        let n = t - 1

        // Filter: d_i = β·n(L[0, i]) − (1−β)·n(mean_j L[i, j]) over patches i, j ≥ 1, float32.
        var cls = [Float](repeating: 0, count: n), p2p = [Float](repeating: 0, count: n)
        logits.withUnsafeBufferPointer { l in
            for i in 1..<t {
                cls[i - 1] = l[i]
                var s: Double = 0
                for j in 1..<t { s += Double(l[i * t + j]) }
                p2p[i - 1] = Float(s / Double(n))
            }
        }
        // F.normalize: x / max(‖x‖, 1e-12), float32 values.
        cls = L2Norm.normalized(cls, eps: 1e-12, accumulation: .float64)
        p2p = L2Norm.normalized(p2p, eps: 1e-12, accumulation: .float64)
        // Python floats β and 1 − β meet float32 tensors: each is rounded to float32 first.
        let beta = Float(p.beta), oneMinusBeta = Float(1 - p.beta)
        var score = (0..<n).map { beta * cls[$0] - oneMinusBeta * p2p[$0] }

        // Quirk (code): the scores are written, in order, into the buffer slots that are not yet +inf
        // (as many as fit), so after the first layer buffer positions no longer match token positions.
        let free = state.buffer.indices.filter { state.buffer[$0] != .infinity }
        for (slot, position) in free.prefix(n).enumerated() { state.buffer[position] = score[slot] }

        // Local penalty: the minimum of every window of the buffer grid (first index on ties, as
        // torch.min). Quirk: the BUFFER position p then indexes the SCORE vector (token p+1).
        let side = p.side, sy = p.windowHeight, sx = p.windowWidth
        var minima: [Int] = []
        for wy in 0..<(side / sy) {
            for wx in 0..<(side / sx) {
                var best = (wy * sy) * side + wx * sx
                for dy in 0..<sy {
                    for dx in 0..<sx {
                        let pos = (wy * sy + dy) * side + wx * sx + dx
                        if !(state.buffer[pos] >= state.buffer[best]) { best = pos }
                    }
                }
                minima.append(best)
            }
        }
        let penalized = minima.filter { $0 < n }.sorted()
        for q in penalized {
            score[q] = score[q] > 0 ? score[q] / 2 : score[q] * 2
            state.buffer[q] = .infinity
        }

        // Order: argsort of [+inf, scores] ascending; the protected token 0 therefore ends up LAST.
        let order = Selection.argsort([Float.infinity] + score)
        let merge = Array(order.prefix(p.r)), remain = Array(order.dropFirst(p.r))

        // Correlate: k = max over merged tokens of #(logits > row quantile); targets = top-k of the
        // softmax row (the row includes the source itself and token 0); weights normalised to sum 1.
        var targets: [[Int]] = [], weights: [[Float]] = []
        var k = 0
        for m in merge { k = max(k, FiCoCoV.countAboveQuantile(logits.row(m), p.quantile)) }
        for m in merge {
            let prob = FiCoCoV.softmax(logits.row(m))
            let top = Selection.topK(prob, k)
            let total = top.reduce(Float(0)) { $0 + prob[$1] }
            targets.append(top)
            weights.append(top.map { prob[$0] / total })
        }

        // Compress (sizes always start at 1: the code never carries them forward).
        var output = try hidden.gatherRows(remain)
        var sizes = [Float](repeating: 1, count: remain.count)
        var scatter: [Int] = []
        output.withUnsafeMutableBufferPointer { o in
            hidden.withUnsafeBufferPointer { x in
                for (s, m) in merge.enumerated() {
                    for (j, target) in targets[s].enumerated() {
                        // Quirk (code): targets are INPUT indices remapped by `t − r if t ≥ T − r`, not
                        // mapped to their output rows; targets may be merged tokens or token 0.
                        let row = target >= t - p.r ? target - p.r : target
                        scatter.append(row)
                        let w = weights[s][j]
                        for d in 0..<c { o[row * c + d] += x[m * c + d] * w }
                        sizes[row] += w
                    }
                }
                for i in 0..<remain.count { for d in 0..<c { o[i * c + d] /= sizes[i] } }
            }
        }
        var sourcesByRow: [Int: [Int]] = [:]
        for (s, m) in merge.enumerated() {
            for j in targets[s].indices { sourcesByRow[scatter[s * k + j], default: []].append(m) }
        }
        let merged = sourcesByRow.keys.sorted().map { MergedToken(outputIndex: $0, sources: [remain[$0]] + sourcesByRow[$0]!) }
        let compression = CompressionResult(kept: remain.sorted(), requestedCount: t - p.r, achievedCount: remain.count,
                                            positionPolicy: .notApplicable, merged: merged)
        return FiCoCoVLayerResult(output: output, sizes: sizes, scores: score, penalized: penalized, mergeIndices: merge,
                                  remainIndices: remain, targets: targets, weights: weights, scatterPositions: scatter,
                                  compression: compression)
    }

    /// `#(row > torch.quantile(row, q))`, with torch's float32 linear interpolation.
    static func countAboveQuantile(_ row: [Float], _ q: Float) -> Int {
        let sorted = row.sorted()
        let rank = q * Float(sorted.count - 1)
        let below = Int(rank), above = Int(rank.rounded(.up))
        let w = rank - Float(below)
        let a = sorted[below], b = sorted[min(above, sorted.count - 1)]
        // torch.lerp: a + w·(b−a) for w < 0.5, else b − (b−a)·(1−w).
        let threshold = w < 0.5 ? a + w * (b - a) : b - (b - a) * (1 - w)
        return row.filter { $0 > threshold }.count
    }

    static func softmax(_ x: [Float]) -> [Float] {
        let m = x.max() ?? 0
        let e = x.map { Foundation.exp($0 - m) }
        let z = e.reduce(Float(0), +)
        return e.map { $0 / z }
    }
}

/// One FiCoCo-V layer's decisions and output.
public struct FiCoCoVLayerResult: Sendable {
    /// `[T − r, C]` in the code's order: remaining tokens by ascending score, the protected token LAST.
    public var output: Tensor
    /// 1 + merge weights received per output row (the code returns and then discards it).
    public var sizes: [Float]
    /// Redundancy score per non-protected input token (rows 1…T−1) after the local penalty.
    public var scores: [Float]
    /// Buffer positions whose score was penalised (ascending).
    public var penalized: [Int]
    /// Input indices of the merged tokens, ascending score.
    public var mergeIndices: [Int]
    /// Input indices of the output rows, in output order.
    public var remainIndices: [Int]
    /// `[r][k]` target input indices per merged token.
    public var targets: [[Int]]
    /// `[r][k]` merge weights (sum 1 per merged token).
    public var weights: [[Float]]
    /// Output row each (source, target) contribution went to, source-major.
    public var scatterPositions: [Int]
    public var compression: CompressionResult
}
