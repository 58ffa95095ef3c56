import Foundation
import Tensors

/// VidCom² — Video Compression Commander (Liu, Wang, Ma, Zhang).
///
/// Acts on one video's projected (and pooled) visual tokens before the LLM; it needs no attention
/// map, so it works with any attention kernel. Two criteria, one strategy:
/// 1. **Frame uniqueness**: each frame's mean multi-scale Gaussian similarity to the video centre;
///    a sharp softmax (τ = 0.01) over frames gives more unique frames a larger share of the budget.
/// 2. **Token distinctiveness**: inside a frame, similarity to the video centre plus similarity to
///    the frame centre; the least similar tokens (outliers) are kept.
///
/// All similarities are computed on the lowest-variance half of the channels of L2-normalised tokens.
public struct VidCom2 {
    public static let info = MethodInfo(
        name: "vidcom2",
        displayName: "VidCom²",
        domain: .videoLLM,
        families: [.prune],
        placement: .llmLayer(0),
        signals: [.hiddenStates, .frameLayout],
        needsAttentionProbabilities: false,
        paper: "Video Compression Commander: Plug-and-Play Inference Acceleration for Video Large Language Models (EMNLP 2025, arXiv 2505.14454)",
        repository: "xuyang-liu16/VidCom2",
        summary: "Per-frame budgets from frame uniqueness, then keeps the tokens least similar to the video and frame centres."
    )

    /// The model integration (`MODEL_SPECS` in the code): tokens per frame and how kept indices map
    /// into the LLM input.
    public enum Model: Sendable, Equatable {
        /// LLaVA-OneVision: 196 (14×14 bilinear-pooled) tokens per frame, one trailing newline;
        /// positions are renumbered after pruning.
        case llavaOneVision
        /// LLaVA-Video: 169 (13×13) tokens per frame scored before the newline grid; the kept tokens are
        /// gathered from the 13×14 newline grid and each frame's 13 newlines are appended after them.
        case llavaVideo
        /// Qwen2/2.5/3-VL: `h·w/4` tokens per temporal slice (2 frames); kept tokens keep their M-RoPE ids.
        case qwenVL(tokensPerFrame: Int)

        public var tokensPerFrame: Int {
            switch self {
            case .llavaOneVision: return 196
            case .llavaVideo: return 169
            case .qwenVL(let n): return n
            }
        }

        /// Rows (= columns) of the LLaVA-Video grid.
        public static let llavaVideoGridSide = 13

        public var positionPolicy: PositionPolicy {
            if case .qwenVL = self { return .keepOriginal }
            return .renumber
        }
    }

    public struct Parameters: Sendable, Equatable {
        /// ρ (`R_RATIO` / `base_scale`): mean fraction of tokens kept per frame (paper default 0.25).
        public var retentionRatio: Double
        /// τ of the frame softmax (`compute_scales` default 0.01).
        public var temperature: Double
        /// Fraction of channels used for scoring (`select_low_var_channels` default 0.5).
        public var channelRatio: Double
        /// Gaussian kernel widths a (2^k for k = −3…1).
        public var alphas: [Double]

        public init(retentionRatio: Double = 0.25, temperature: Double = 0.01, channelRatio: Double = 0.5,
                    alphas: [Double] = [0.125, 0.25, 0.5, 1, 2]) {
            self.retentionRatio = retentionRatio
            self.temperature = temperature
            self.channelRatio = channelRatio
            self.alphas = alphas
        }

        public func validate() throws {
            guard retentionRatio.isFinite, retentionRatio > 0, retentionRatio <= 1 else {
                throw CompressionError.invalidBudget("VidCom² retention ratio \(retentionRatio) must be in (0, 1]")
            }
            guard temperature.isFinite, temperature > 0 else {
                throw CompressionError.invalidParameter("VidCom² temperature \(temperature) must be > 0")
            }
            guard channelRatio.isFinite, channelRatio > 0, channelRatio <= 1 else {
                throw CompressionError.invalidParameter("VidCom² channel ratio \(channelRatio) must be in (0, 1]")
            }
            guard !alphas.isEmpty, alphas.allSatisfy({ $0.isFinite && $0 > 0 }) else {
                throw CompressionError.invalidParameter("VidCom² kernel widths \(alphas) must be positive")
            }
        }
    }

    /// The criterion's intermediate values (what the code computes, in its order).
    public struct Scores: Sendable {
        /// Channels used for scoring, in ascending-variance order.
        public let selectedChannels: [Int]
        /// `V[f][j]`: similarity of token j of frame f to the video centre.
        public let videoScore: [[Float]]
        /// `Fs[f][j]`: similarity to the frame centre.
        public let frameScore: [[Float]]
        /// `u[f] = −mean_j V[f][j]`.
        public let frameUniqueness: [Float]
        /// `r[f] = min(1, ρ·(1 + p[f] − mean p))`, `p = softmax((u − max u)/τ)`.
        public let frameRetention: [Float]
        /// `k[f] = max(1, round_half_even(r[f]·N))`.
        public let frameBudgets: [Int]
    }

    public struct Compression: Sendable {
        public let scores: Scores
        /// Kept local indices per frame, ascending.
        public let keptPerFrame: [[Int]]
        /// Kept indices into the flattened video `f·N + j`, ascending.
        public let kept: [Int]
        /// The kept rows of the full-width input.
        public let x: Tensor
        public let result: CompressionResult
    }

    /// Scores, budgets and selection for one video.
    ///
    /// - Parameter tokens: `[F·N, C]` visual tokens, frame-major (N = `model.tokensPerFrame`).
    public static func compress(tokens: Tensor, model: Model, parameters: Parameters = Parameters()) throws -> Compression {
        try parameters.validate()
        let n = model.tokensPerFrame
        guard n >= 1 else { throw CompressionError.invalidParameter("VidCom² tokens per frame \(n) must be >= 1") }
        guard tokens.rank == 2, tokens.rows >= n, tokens.rows % n == 0 else {
            throw CompressionError.shapeMismatch("VidCom² tokens \(tokens.shape) are not [F·\(n), C]")
        }
        let frames = tokens.rows / n, c = tokens.columns
        // k = int(C·ratio) channels (Python int truncation).
        let channelCount = Int(Double(c) * parameters.channelRatio)
        guard channelCount >= 1 else {
            throw CompressionError.invalidParameter("VidCom² keeps int(\(c)·\(parameters.channelRatio)) = 0 channels")
        }
        let values = tokens.values
        let total = tokens.rows

        // 1. Channel subset. Quirk kept: the LOWEST population variance (`topk(largest=False)`), not the highest.
        var variance = [Double](repeating: 0, count: c)
        for ch in 0..<c {
            var mean = 0.0
            for i in 0..<total { mean += Double(values[i * c + ch]) }
            mean /= Double(total)
            var v = 0.0
            for i in 0..<total { let d = Double(values[i * c + ch]) - mean; v += d * d }
            variance[ch] = v / Double(total)
        }
        let channels = Selection.topK(variance, channelCount, largest: false)

        // 2. L2-normalise each token over those channels (F.normalize, eps 1e-12).
        let d = channels.count
        var z = [Double](repeating: 0, count: total * d)
        for i in 0..<total {
            var norm = 0.0
            for (k, ch) in channels.enumerated() { let v = Double(values[i * c + ch]); z[i * d + k] = v; norm += v * v }
            let scale = 1 / max(norm.squareRoot(), 1e-12)
            for k in 0..<d { z[i * d + k] *= scale }
        }
        // 3. Centres. Quirk kept: means of normalised vectors, NOT re-normalised (so the distances are
        // not cosine distances).
        var videoCentre = [Double](repeating: 0, count: d)
        var frameCentres = [[Double]](repeating: [Double](repeating: 0, count: d), count: frames)
        for f in 0..<frames {
            for j in 0..<n { for k in 0..<d { frameCentres[f][k] += z[(f * n + j) * d + k] } }
            for k in 0..<d { videoCentre[k] += frameCentres[f][k]; frameCentres[f][k] /= Double(n) }
        }
        for k in 0..<d { videoCentre[k] /= Double(total) }

        // 4. Multi-scale Gaussian similarities K(u, c) = Σ_a exp(−‖u − c‖² / (2a)).
        func kernel(_ row: Int, _ centre: [Double]) -> Double {
            var dist = 0.0
            for k in 0..<d { let diff = z[row * d + k] - centre[k]; dist += diff * diff }
            return parameters.alphas.reduce(0) { $0 + Foundation.exp(-dist / (2 * $1)) }
        }
        var video = [[Double]](), frame = [[Double]]()
        for f in 0..<frames {
            video.append((0..<n).map { kernel(f * n + $0, videoCentre) })
            frame.append((0..<n).map { kernel(f * n + $0, frameCentres[f]) })
        }
        // 5. Frame uniqueness uses the video similarity only.
        let uniqueness = video.map { Float(-$0.reduce(0, +) / Double(n)) }
        // 6. Budgets, in float32 like the code (the rounding of r·N at exact .5 depends on it).
        let retention = frameRetention(uniqueness: uniqueness, ratio: parameters.retentionRatio, temperature: parameters.temperature)
        // Quirk kept: torch .round() is half-to-even (13.5 → 14 but 4.5 → 4), and k ≥ 1.
        let budgets = retention.map { max(1, Int(($0 * Float(n)).rounded(.toNearestOrEven))) }

        // 7. Keep the k[f] tokens with the smallest V + Fs (most distinct), sorted ascending.
        var keptPerFrame: [[Int]] = []
        for f in 0..<frames {
            let score = (0..<n).map { video[f][$0] + frame[f][$0] }
            keptPerFrame.append(Selection.topK(score, budgets[f], largest: false).sorted())
        }
        var kept: [Int] = []
        for (f, local) in keptPerFrame.enumerated() { kept += local.map { f * n + $0 } }
        let x = try tokens.gatherRows(kept)

        let scores = Scores(selectedChannels: channels, videoScore: video.map { $0.map(Float.init) },
                            frameScore: frame.map { $0.map(Float.init) }, frameUniqueness: uniqueness,
                            frameRetention: retention, frameBudgets: budgets)
        // The total is Σ k[f], only close to ρ·F·N because of the per-frame rounding.
        let requested = Selection.roundHalfEven(parameters.retentionRatio * Double(total))
        let result: CompressionResult
        if kept.count == total {
            result = .noOp(tokenCount: total, requested: requested, policy: model.positionPolicy,
                           reason: "every frame budget covers all \(n) tokens (ρ = \(parameters.retentionRatio))")
        } else {
            result = CompressionResult(kept: kept, requestedCount: requested, achievedCount: kept.count,
                                       positionPolicy: model.positionPolicy)
        }
        return Compression(scores: scores, keptPerFrame: keptPerFrame, kept: kept, x: x, result: result)
    }

    /// `compute_scales` in float32: `softmax((u − max u)/τ)`, then `min(1, ρ·(1 + p − mean p))`.
    /// (`mean p` is 1/F up to rounding; the first release added 1e-8 to the softmax denominator.)
    static func frameRetention(uniqueness u: [Float], ratio: Double, temperature: Double) -> [Float] {
        let top = u.max() ?? 0
        let logits = u.map { ($0 - top) / Float(temperature) }
        let e = logits.map { Foundation.exp($0) }
        let inverse = 1 / e.reduce(0, +)
        let p = e.map { $0 * inverse }
        let mean = p.reduce(0, +) / Float(p.count)
        return p.map { min(1, Float(ratio) * ((1 + $0) - mean)) }
    }

    // MARK: - LLaVA-Video newline grid

    /// Indices into the LLaVA-Video newline grid (`F·13·14` rows) in the code's order: per frame the
    /// kept tokens (local j ↦ f·182 + (j/13)·14 + j%13), then ALL 13 newline positions of that frame
    /// (f·182 + r·14 + 13). Quirk kept: the newlines form a block after the frame's tokens instead of
    /// closing each kept row.
    public static func llavaVideoGridIndices(keptPerFrame: [[Int]]) -> [Int] {
        let h = Model.llavaVideoGridSide, w = h + 1, stride = h * w
        var out: [Int] = []
        for (f, local) in keptPerFrame.enumerated() {
            out += local.map { f * stride + ($0 / h) * w + $0 % h }
            out += (0..<h).map { f * stride + $0 * w + h }
        }
        return out
    }

    /// LLaVA-NeXT's `add_token_per_grid` for LLaVA-Video frames: `[F·169, C]` tokens and the newline
    /// embedding → `[F·182, C]` (13 rows of 13 tokens, each followed by the newline).
    public static func llavaVideoGrid(tokens: Tensor, newline: [Float]) throws -> Tensor {
        let h = Model.llavaVideoGridSide, n = h * h
        guard tokens.rank == 2, tokens.rows % n == 0, newline.count == tokens.columns else {
            throw CompressionError.shapeMismatch("LLaVA-Video grid needs [F·\(n), C] tokens and a C-vector newline, got \(tokens.shape) and \(newline.count)")
        }
        var rows: [Float] = []
        rows.reserveCapacity((tokens.rows / n) * h * (h + 1) * tokens.columns)
        for f in 0..<(tokens.rows / n) {
            for r in 0..<h {
                for col in 0..<h { rows += tokens.row(f * n + r * h + col) }
                rows += newline
            }
        }
        return try Tensor(shape: [(tokens.rows / n) * h * (h + 1), tokens.columns], values: rows)
    }
}
