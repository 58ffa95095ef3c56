import Foundation
import Tensors

/// ToCa — token-wise feature caching for diffusion transformers.
///
/// A cache cycle is one full step (every module of every block recomputed and cached) followed by
/// partial steps. On a partial step self-attention is reused whole, and the *partial modules*
/// (the MLP; in PixArt also cross-attention) recompute only a few "fresh" tokens chosen by a score,
/// writing them back into the cache so it is refreshed progressively.
///
/// Criterion: s1 (attention a token receives, from the map stored at the last full step; DiT) or
/// s2 (entropy of a token's cross-attention, shared by the CFG halves; PixArt), plus s3 (staleness,
/// `λ3 · age / N0`), then s4 (the best token of every g×g grid block gets `×(1+λ4)`).
/// Strategy: recompute the top `int(r·N)` tokens, reuse the rest. `r` depends on layer, step and
/// module; the full-step interval `N_t` depends on the step.
///
/// Everything here follows the released code (Shenyi-Z/ToCa), quirks included; see each function.
public struct ToCa {
    public static let info = MethodInfo(
        name: "toca", displayName: "ToCa", domain: .diffusion, families: [.cache],
        placement: .everyDiffusionStep,
        signals: [.attentionProbabilities, .hiddenStates, .timestep, .moduleOutputs],
        needsAttentionProbabilities: true,
        paper: "Accelerating Diffusion Transformers with Token-wise Feature Caching (ICLR 2025, arXiv 2410.05317)",
        repository: "Shenyi-Z/ToCa",
        summary: "Full step every N_t steps; between them reuse attention and recompute only the top-scored MLP (and cross-attention) tokens.")

    /// Code family: decides the step direction, the interval and ratio schedule forms and the score.
    public enum Model: String, Sendable, CaseIterable {
        /// DiT-ToCa: the step index counts DOWN (S−1 … 0); score s1 (self-attention received).
        case dit = "DiT"
        /// PixArt-α-ToCa: the step index counts UP (0 … S−1); score s2 (cross-attention entropy).
        case pixart = "PixArt"

        /// Step indices passed to the model, in call order.
        public func stepIndices(numSteps: Int) -> [Int] {
            self == .dit ? Array((0..<numSteps).reversed()) : Array(0..<numSteps)
        }

        /// Modules that a partial step recomputes token-wise (self-attention never is).
        public var partialModules: [String] { self == .dit ? ["mlp"] : ["cross-attn", "mlp"] }

        /// Modules of one block, as shown in schedules.
        public var moduleNames: [String] { ["attn"] + partialModules }
    }

    /// Per-(layer, step, module) fresh-ratio schedule (`fresh_ratio_scheduler`).
    public enum RatioSchedule: String, Sendable, CaseIterable {
        /// DiT DDPM-250 setting: step weight 0.4, layer weight 0.8, module weight 2.5, time weight 0.6.
        case ditDDPM250 = "ToCa-ddpm250"
        /// DiT DDIM-50 setting: step weight 2.0, layer weight −0.2 (DuCa-DiT's "ToCa").
        case ditDDIM50 = "ToCa-ddim50"
        /// PixArt form `1 − w + 2w·s/S` with w = −0.9, layer weight 0.6, module weight 1.0.
        case pixart = "ToCa"
        /// `r0` everywhere.
        case constant
        /// `r0 · (1 + 0.9 − 1.8·s/S)`.
        case linear

        /// The schedule a code family calls `name`. The DiT code has no plain "ToCa" schedule (it
        /// raises), so there the name must say ddpm250 or ddim50.
        public static func named(_ name: String, model: Model) throws -> RatioSchedule {
            switch (name, model) {
            case ("ToCa-ddpm250", .dit): return .ditDDPM250
            case ("ToCa-ddim50", .dit): return .ditDDIM50
            case ("ToCa", .pixart): return .pixart
            case ("constant", _): return .constant
            case ("linear", _): return .linear
            default:
                throw CompressionError.invalidParameter("ratio schedule '\(name)' is not defined for \(model.rawValue) (DiT: ToCa-ddpm250, ToCa-ddim50; PixArt: ToCa; both: constant, linear)")
            }
        }
    }

    /// Token score of the criterion.
    public enum ScoreType: String, Sendable, CaseIterable {
        /// The paper method: s1 (DiT) or s2 (PixArt) from stored attention maps.
        case attention
        /// Ablation: L2-normalised `1 − cosine(token, cached output)`.
        case similarity
        /// Ablation: L2-normalised token norms.
        case norm
    }

    public struct Parameters: Sendable, Equatable {
        public var model: Model
        /// S, sampler steps (model evaluations).
        public var numSteps: Int
        /// L, blocks per step (DiT-XL/2 and PixArt-XL/2: 28). The ratio schedule's layer factor
        /// divides by 27 whatever L is, as the code does.
        public var numLayers: Int
        /// N, image tokens (256 at 256² for XL/2), used to turn ratios into counts in schedules.
        public var numTokens: Int
        /// N0, the base full-step interval (`fresh_threshold`).
        public var freshThreshold: Int
        /// r0, the base fresh ratio (0 ⇒ FORA: no fresh tokens, constant interval N0).
        public var freshRatio: Double
        public var ratioSchedule: RatioSchedule
        /// λ3, weight of the staleness score s3.
        public var softFreshWeight: Double
        public var scoreType: ScoreType
        /// λ4 of the spatial bonus s4 (hard-coded 0.6 in DiT-ToCa, 0.4 in PixArt-ToCa).
        public var bonusRatio: Double
        /// g of s4 (hard-coded 2 in DiT-ToCa, 4 in PixArt-ToCa).
        public var gridSize: Int

        /// Defaults: the paper's main DiT-XL/2 setting (DDPM-250, N0 = 4, r0 = 0.07, ToCa-ddpm250,
        /// λ3 = 0.25, s4 = 0.6 on 2×2 blocks, attention score).
        public init(model: Model = .dit, numSteps: Int = 250, numLayers: Int = 28, numTokens: Int = 256,
                    freshThreshold: Int = 4, freshRatio: Double = 0.07, ratioSchedule: RatioSchedule = .ditDDPM250,
                    softFreshWeight: Double = 0.25, scoreType: ScoreType = .attention,
                    bonusRatio: Double = 0.6, gridSize: Int = 2) {
            self.model = model
            self.numSteps = numSteps
            self.numLayers = numLayers
            self.numTokens = numTokens
            self.freshThreshold = freshThreshold
            self.freshRatio = freshRatio
            self.ratioSchedule = ratioSchedule
            self.softFreshWeight = softFreshWeight
            self.scoreType = scoreType
            self.bonusRatio = bonusRatio
            self.gridSize = gridSize
        }

        /// DiT-XL/2 DDIM-50 command: N0 = 3, r0 = 0.07, ToCa-ddim50.
        public static var ditDDIM50: Parameters {
            Parameters(numSteps: 50, freshThreshold: 3, ratioSchedule: .ditDDIM50)
        }

        /// PixArt-α 256 README setting: 20 DPM-Solver++ steps, N0 = 3, r0 = 0.3, s4 = 0.4 on 4×4.
        public static var pixart: Parameters {
            Parameters(model: .pixart, numSteps: 20, freshThreshold: 3, freshRatio: 0.3, ratioSchedule: .pixart,
                       bonusRatio: 0.4, gridSize: 4)
        }

        public func validated() throws -> Parameters {
            func bad(_ s: String) -> CompressionError { .invalidParameter(s) }
            guard numSteps >= 1 else { throw bad("numSteps must be ≥ 1, got \(numSteps)") }
            guard numLayers >= 1 else { throw bad("numLayers must be ≥ 1, got \(numLayers)") }
            guard numTokens >= 1 else { throw bad("numTokens must be ≥ 1, got \(numTokens)") }
            guard freshThreshold >= 1 else { throw bad("freshThreshold (N0) must be ≥ 1, got \(freshThreshold)") }
            guard freshRatio.isFinite, (0...1).contains(freshRatio) else { throw CompressionError.invalidBudget("freshRatio must be in [0, 1], got \(freshRatio)") }
            guard softFreshWeight.isFinite, softFreshWeight >= 0 else { throw bad("softFreshWeight must be ≥ 0, got \(softFreshWeight)") }
            guard bonusRatio.isFinite, bonusRatio >= 0 else { throw bad("bonusRatio must be ≥ 0, got \(bonusRatio)") }
            guard gridSize >= 1 else { throw bad("gridSize must be ≥ 1, got \(gridSize)") }
            switch (ratioSchedule, model) {
            case (.ditDDPM250, .pixart), (.ditDDIM50, .pixart), (.pixart, .dit):
                throw bad("ratio schedule \(ratioSchedule.rawValue) does not belong to the \(model.rawValue) code")
            default: break
            }
            return self
        }
    }

    // MARK: - Schedules (which steps are full, how many tokens are fresh)

    /// Fresh ratio of (layer, step, module), clamped to [0, 1].
    ///
    /// The scheduler computes in Python float64 with the code's operation order; `torch.tensor()`
    /// then casts to float32 before the clamp, so the result is a Float.
    public static func freshRatio(layer: Int, step: Int, module: String, parameters p: Parameters) -> Float {
        let r0 = p.freshRatio, l = Double(layer), s = Double(step), n = Double(p.numSteps)
        let value: Double
        switch p.ratioSchedule {
        case .constant:
            value = r0
        case .linear:
            let w = 0.9
            value = r0 * (1 + w - 2 * w * s / n)
        case .ditDDPM250, .ditDDIM50:
            let (sw, lw) = p.ratioSchedule == .ditDDPM250 ? (0.4, 0.8) : (2.0, -0.2)
            let mw = 2.5, mt = 0.6
            let stepFactor = 1 + sw - 2 * sw * s / n
            let layerFactor = 1 + lw - 2 * lw * l / 27   // 27 hard-coded (DiT-XL/2 has 28 blocks)
            // Self-attention gets 1 − 0.4·2.5 = 0: it is never partially computed.
            let moduleFactor = module == "attn" ? 1 - (1 - mt) * mw : 1 + mt * mw
            value = r0 * layerFactor * stepFactor * moduleFactor
        case .pixart:
            let sw = -0.9, lw = 0.6, mw = 1.0, mt = 0.6
            let stepFactor = 1 - sw + 2 * sw * s / n     // step counts up here, hence the flipped form
            let layerFactor = 1 + lw - 2 * lw * l / 27
            let moduleFactor = module == "cross-attn" ? 1 - (1 - mt) * mw : 1 + mt * mw
            value = r0 * layerFactor * stepFactor * moduleFactor
        }
        return min(max(Float(value), 0), 1)
    }

    /// Fresh tokens out of `tokens`: `int(r · N)` with the product in float32, truncated
    /// (a mathematically integral product can come out one lower).
    public static func freshCount(ratio: Float, tokens: Int) -> Int {
        Int((ratio * Float(tokens)).rounded(.towardZero))
    }

    /// The full-step interval N_t set at a full step (`force_scheduler`).
    ///
    /// DiT: `round(N0 / (1 + w − 2w·i/S))`, w = 0.4 (0 when r0 = 0, i.e. FORA), and N_t = 2 when
    /// r0 ≠ 0 and `int(0.2S) ≤ i < int(0.4S)` ("the model is extremely sensitive in these steps").
    /// PixArt: `round(N0 / (1 − w + 2w·s/S))`, w = 0.2 (0 when r0 = 0), no sensitive window.
    /// The step factor is a float32 tensor, the division is float32 and `torch.round` rounds half to
    /// even. Never below 1 (the reference would divide by zero).
    public static func forceInterval(step: Int, model: Model, numSteps: Int, freshThreshold: Int, freshRatio: Double) -> Int {
        let s = Double(step), n = Double(numSteps)
        let factor: Float
        switch model {
        case .dit:
            let w = freshRatio == 0 ? 0.0 : 0.4
            factor = Float(1 + w - 2 * w * s / n)
        case .pixart:
            let w = freshRatio == 0 ? 0.0 : 0.2
            factor = Float(1 - w + 2 * w * s / n)
        }
        var interval = Int((Float(freshThreshold) / factor).rounded(.toNearestOrEven))
        if model == .dit, freshRatio != 0, Int(0.2 * n) <= step, step < Int(0.4 * n) { interval = 2 }
        return max(interval, 1)
    }

    /// Per-step, per-layer kinds of a run of the ToCa family, with the interval after each step.
    ///
    /// The decision is re-evaluated in every block (`cal_type` / `global_force_fresh`): full iff
    /// it is the first step (where the base N0 is used) or `step mod N_t == 0` on the ABSOLUTE step
    /// index (quirk F2). N_t is recomputed inside the full branch, so when layer 0 is full and the
    /// new N_t does not divide the step, layers 1… take the off-cycle path in the same step
    /// (quirk F1). `offCycle(k)` gives the kind for `k = step mod N_t ≠ 0` (ToCa: always partial).
    static func intervalKinds(model: Model, numSteps: Int, numLayers: Int, freshThreshold: Int, freshRatio: Double,
                              offCycle: (Int) -> TokenCacheStepKind) -> (steps: [Int], kinds: [[TokenCacheStepKind]], intervals: [Int]) {
        let steps = model.stepIndices(numSteps: numSteps)
        let firstStep = model == .dit ? numSteps - 1 : 0
        var current = freshThreshold
        var kinds: [[TokenCacheStepKind]] = [], intervals: [Int] = []
        for step in steps {
            var row: [TokenCacheStepKind] = []
            for _ in 0..<numLayers {
                let isFirst = step == firstStep
                let interval = isFirst ? freshThreshold : current
                if isFirst || step % interval == 0 {
                    row.append(.full)
                    current = forceInterval(step: step, model: model, numSteps: numSteps,
                                            freshThreshold: freshThreshold, freshRatio: freshRatio)
                } else {
                    row.append(offCycle(step % interval))
                }
            }
            kinds.append(row)
            intervals.append(current)
        }
        return (steps, kinds, intervals)
    }

    /// A whole run's decisions.
    public struct Schedule: Sendable {
        /// Step index passed to the model at each call, in call order.
        public let stepIndices: [Int]
        /// `kinds[call][layer]`.
        public let kinds: [[TokenCacheStepKind]]
        /// N_t after each call.
        public let intervals: [Int]
        /// Modules recomputed token-wise on partial steps (`model.partialModules`).
        public let partialModules: [String]
        /// `freshRatios[call][layer][partial module]` (used on partial steps only).
        public let freshRatios: [[[Float]]]
        /// `freshCounts[call][layer][partial module]` = `int(ratio · N)`.
        public let freshCounts: [[[Int]]]
        /// The same decisions in the core's vocabulary (a partial module with 0 fresh tokens is a
        /// plain reuse).
        public let cacheSchedule: CacheSchedule
    }

    public static func schedule(_ parameters: Parameters) throws -> Schedule {
        let p = try parameters.validated()
        let run = intervalKinds(model: p.model, numSteps: p.numSteps, numLayers: p.numLayers,
                                freshThreshold: p.freshThreshold, freshRatio: p.freshRatio) { _ in .partial }
        let modules = p.model.partialModules
        var ratios: [[[Float]]] = [], counts: [[[Int]]] = [], actions: [[[CacheAction]]] = []
        for (r, step) in run.steps.enumerated() {
            var rr: [[Float]] = [], cr: [[Int]] = [], ar: [[CacheAction]] = []
            for layer in 0..<p.numLayers {
                let lr = modules.map { freshRatio(layer: layer, step: step, module: $0, parameters: p) }
                let lc = lr.map { freshCount(ratio: $0, tokens: p.numTokens) }
                rr.append(lr)
                cr.append(lc)
                switch run.kinds[r][layer] {
                case .full: ar.append(Array(repeating: .compute, count: modules.count + 1))
                case .partial: ar.append([.reuse] + lc.map { $0 > 0 ? .partial : .reuse })
                case .aggressive: ar.append(Array(repeating: .skip, count: modules.count + 1))
                }
            }
            ratios.append(rr)
            counts.append(cr)
            actions.append(ar)
        }
        return Schedule(stepIndices: run.steps, kinds: run.kinds, intervals: run.intervals, partialModules: modules,
                        freshRatios: ratios, freshCounts: counts,
                        cacheSchedule: CacheSchedule(moduleNames: p.model.moduleNames, actions: actions))
    }

    // MARK: - Criterion (token scores)

    /// Slot names under which a full step stores the maps the scores read.
    public static let attentionMapModule = "attn_map"
    public static let crossAttentionMapModule = "cross_attn_map"

    /// `x / max(‖x‖₂, 1e-12)` in float32 (`F.normalize`), the normalisation of every score.
    static func l2Normalized(_ x: [Float]) -> [Float] { L2Norm.normalized(x, eps: 1e-12, accumulation: .float32) }

    /// s1: attention each token receives (column sums of the head-mean map `[query, key]` stored
    /// at the last full step), L2-normalised over tokens. The map is stale on partial steps (F4).
    public static func attentionScore(attentionMap map: Tensor) throws -> [Float] {
        guard map.rank == 2, map.shape[0] == map.shape[1] else {
            throw CompressionError.shapeMismatch("ToCa s1: attention map must be [N, N], got \(map.shape)")
        }
        let n = map.shape[0]
        var sums = [Float](repeating: 0, count: n)
        map.withUnsafeBufferPointer { a in
            for i in 0..<n { for j in 0..<n { sums[j] += a[i * n + j] } }
        }
        return l2Normalized(sums)
    }

    /// s2: entropy of each token's cross-attention over the text, with the two CFG halves averaged
    /// (0.5/0.5) so both halves get the same score; `normalize(1 + H)`, repeated for both halves.
    /// `maps[b]` is `[N, text columns]`; in PixArt's flattened layout a row's probabilities for the
    /// other sample's text are exact zeros, which add nothing (`0·log(1e-7)`).
    public static func crossAttentionEntropyScores(maps: [Tensor]) throws -> [[Float]] {
        guard !maps.isEmpty, maps.count % 2 == 0 else {
            throw CompressionError.shapeMismatch("ToCa s2: needs an even CFG batch of cross-attention maps, got \(maps.count)")
        }
        guard maps.allSatisfy({ $0.rank == 2 && $0.shape == maps[0].shape }) else {
            throw CompressionError.shapeMismatch("ToCa s2: cross-attention maps must share one [N, L] shape, got \(maps.map(\.shape))")
        }
        let half = maps.count / 2, n = maps[0].shape[0], l = maps[0].shape[1]
        var scores: [[Float]] = []
        for b in 0..<half {
            let cond = maps[b].values, uncond = maps[b + half].values
            var entropy = [Float](repeating: 0, count: n)
            for i in 0..<n {
                var h: Float = 0
                for k in 0..<l {
                    let c = Float(0.5) * cond[i * l + k] + Float(0.5) * uncond[i * l + k]
                    h += c * logf(c + 1e-7)
                }
                entropy[i] = 1 + (-h)
            }
            scores.append(l2Normalized(entropy))
        }
        return scores + scores
    }

    /// Ablation score: L2-normalised `1 − cosine(token, cached output)` per token.
    public static func similarityScore(tokens: Tensor, cached: Tensor) throws -> [Float] {
        guard tokens.rank == 2, tokens.shape == cached.shape else {
            throw CompressionError.shapeMismatch("ToCa similarity: tokens \(tokens.shape) vs cached \(cached.shape)")
        }
        let c = tokens.columns
        var out = [Float](repeating: 0, count: tokens.rows)
        tokens.withUnsafeBufferPointer { t in
            cached.withUnsafeBufferPointer { m in
                for i in 0..<tokens.rows {
                    let a = UnsafeBufferPointer(rebasing: t[(i * c)..<((i + 1) * c)])
                    let b = UnsafeBufferPointer(rebasing: m[(i * c)..<((i + 1) * c)])
                    out[i] = 1 - L2Norm.cosine(a, b, eps: 1e-8)
                }
            }
        }
        return l2Normalized(out)
    }

    /// Ablation score: L2-normalised token L2 norms.
    public static func normScore(tokens: Tensor) -> [Float] {
        l2Normalized((0..<tokens.rows).map { L2Norm.float32Norm(tokens.row($0)) })
    }

    /// s3 added: `score + λ3 · (age / N0)` in float32. N0 is the BASE interval, not the current N_t.
    public static func withStaleness(_ score: [Float], ages: [Int], weight: Double, freshThreshold: Int) -> [Float] {
        zip(score, ages).map { s, a in s + Float(weight) * (Float(a) / Float(freshThreshold)) }
    }

    /// s4 (`local_selection_with_bonus`): on the √N×√N token grid cut into g×g blocks, the best
    /// token of each block gets `s + λ4·s`; the others are unchanged. The first maximum in block
    /// order wins ties. Applied to the total score (after s3).
    public static func spatialBonus(_ score: [Float], ratio: Double, gridSize g: Int) throws -> [Float] {
        let n = score.count
        let side = Int(Double(n).squareRoot())
        guard side * side == n, g >= 1, side % g == 0 else {
            throw CompressionError.unsupportedSetting("ToCa s4 needs a square token grid with side divisible by \(g), got \(n) tokens")
        }
        var out = score
        let blocks = side / g
        for br in 0..<blocks {
            for bc in 0..<blocks {
                var best = -1
                for r in 0..<g {
                    for c in 0..<g {
                        let t = (br * g + r) * side + bc * g + c
                        if best < 0 || score[t] > score[best] { best = t }
                    }
                }
                out[best] = score[best] + score[best] * Float(ratio)
            }
        }
        return out
    }

    // MARK: - Strategy (fresh tokens, cache refresh)

    /// One `cache_cutfresh` call, with its intermediate scores.
    public struct FreshSelection: Sendable {
        /// Clamped fresh ratio and `k = int(r·N)`.
        public let ratio: Float
        public let count: Int
        /// Per batch row: the main score (s1/s2/…), + s3, + s4.
        public let scoreMain: [[Float]]
        public let score: [[Float]]
        public let scoreBonus: [[Float]]
        /// Per batch row, the fresh tokens in the code's order (descending final score); this is
        /// the row order of `freshTokens` and of the outputs scattered back.
        public let freshIndices: [[Int]]
        public let freshTokens: [Tensor]
        /// Token ages after the call (all +1, fresh set to 0).
        public let agesAfter: [[Int]]
    }

    /// Main score per batch row from the cache or the tokens, as `cache_type` selects.
    static func mainScore(tokens: [Tensor], cache: TokenFeatureCache, layer: Int, module: String,
                          parameters p: Parameters) throws -> [[Float]] {
        switch p.scoreType {
        case .attention where p.model == .dit:
            return try cache.peek(.init(layer: layer, module: attentionMapModule)).map { try attentionScore(attentionMap: $0) }
        case .attention:
            return try crossAttentionEntropyScores(maps: try cache.peek(.init(layer: layer, module: crossAttentionMapModule)))
        case .similarity:
            let cached = try cache.peek(.init(layer: layer, module: module))
            guard cached.count == tokens.count else {
                throw CompressionError.shapeMismatch("ToCa similarity: \(tokens.count) token rows, \(cached.count) cached rows")
            }
            return try zip(tokens, cached).map { try similarityScore(tokens: $0, cached: $1) }
        case .norm:
            return tokens.map { normScore(tokens: $0) }
        }
    }

    /// Shared by ToCa and DuCa: s3, s4, top-k, age update and gather, given the main score.
    static func selectFresh(scoreMain: [[Float]], tokens: [Tensor], cache: inout TokenFeatureCache,
                            slot: TokenFeatureCache.Slot, ratio: Float, softFreshWeight: Double,
                            freshThreshold: Int, bonusRatio: Double, gridSize: Int) throws -> FreshSelection {
        let ages = try cache.ages(slot)
        guard !tokens.isEmpty, tokens.count == scoreMain.count, tokens.count == ages.count else {
            throw CompressionError.shapeMismatch("fresh selection at \(slot): \(tokens.count) token rows, \(scoreMain.count) score rows, \(ages.count) age rows")
        }
        let n = ages[0].count
        for b in tokens.indices where tokens[b].rank != 2 || tokens[b].rows != n || scoreMain[b].count != n {
            throw CompressionError.shapeMismatch("fresh selection at \(slot), row \(b): tokens \(tokens[b].shape), \(scoreMain[b].count) scores, \(n) ages")
        }
        let k = freshCount(ratio: ratio, tokens: n)
        var score: [[Float]] = [], bonus: [[Float]] = [], fresh: [[Int]] = []
        for b in tokens.indices {
            let s = withStaleness(scoreMain[b], ages: ages[b], weight: softFreshWeight, freshThreshold: freshThreshold)
            let sb = try spatialBonus(s, ratio: bonusRatio, gridSize: gridSize)
            score.append(s)
            bonus.append(sb)
            fresh.append(Array(Selection.argsort(sb, descending: true).prefix(k)))
        }
        let after = try cache.advanceAges(of: slot, refreshed: fresh)
        let gathered = try zip(tokens, fresh).map { try $0.gatherRows($1) }
        return FreshSelection(ratio: ratio, count: k, scoreMain: scoreMain, score: score, scoreBonus: bonus,
                              freshIndices: fresh, freshTokens: gathered, agesAfter: after)
    }

    /// `cache_cutfresh` for a partial module at a partial step: scores, picks the fresh tokens,
    /// ages the slot's tokens, and gathers the fresh rows of `tokens` (the module input, one
    /// `[N, C]` tensor per CFG batch row; DiT rows are selected independently).
    public static func cutFresh(tokens: [Tensor], cache: inout TokenFeatureCache, step: Int, layer: Int,
                                module: String, parameters: Parameters) throws -> FreshSelection {
        let p = try parameters.validated()
        guard p.model.partialModules.contains(module) else {
            throw CompressionError.invalidParameter("module '\(module)' is never partially computed in \(p.model.rawValue)-ToCa (partial modules: \(p.model.partialModules))")
        }
        let main = try mainScore(tokens: tokens, cache: cache, layer: layer, module: module, parameters: p)
        return try selectFresh(scoreMain: main, tokens: tokens, cache: &cache, slot: .init(layer: layer, module: module),
                               ratio: freshRatio(layer: layer, step: step, module: module, parameters: p),
                               softFreshWeight: p.softFreshWeight, freshThreshold: p.freshThreshold,
                               bonusRatio: p.bonusRatio, gridSize: p.gridSize)
    }

    /// A full step of one block: stores every module output (pre-gate) and the maps the scores
    /// read, and resets the ages (`force_init`).
    public static func storeFullStep(layer: Int, moduleOutputs: [String: [Tensor]], attentionMap: [Tensor]? = nil,
                                     crossAttentionMap: [Tensor]? = nil, cache: inout TokenFeatureCache) throws {
        for (module, rows) in moduleOutputs.sorted(by: { $0.key < $1.key }) {
            try cache.store(rows, at: .init(layer: layer, module: module))
        }
        if let m = attentionMap { try cache.store(m, at: .init(layer: layer, module: attentionMapModule)) }
        if let m = crossAttentionMap { try cache.store(m, at: .init(layer: layer, module: crossAttentionMapModule)) }
    }

    /// A partial step of one partial module: `cutFresh`, then `compute` runs the module on the
    /// fresh rows only, and `update_cache` scatters them into the cached output. Returns the
    /// selection and the whole refreshed cached output (fresh rows new, others stale), which the
    /// block adds with the CURRENT gate. PixArt also scatters the fresh rows of the new
    /// cross-attention map into the stored map; pass them as `freshMapRows` to do the same.
    public static func partialStep(tokens: [Tensor], cache: inout TokenFeatureCache, step: Int, layer: Int,
                                   module: String, parameters: Parameters,
                                   compute: (Tensor) throws -> Tensor,
                                   freshMapRows: ((Tensor, [Int]) throws -> Tensor)? = nil) throws -> (selection: FreshSelection, output: [Tensor]) {
        let selection = try cutFresh(tokens: tokens, cache: &cache, step: step, layer: layer, module: module, parameters: parameters)
        let slot = TokenFeatureCache.Slot(layer: layer, module: module)
        let outputs = try selection.freshTokens.map { try compute($0) }
        try cache.scatter(outputs, at: selection.freshIndices, into: slot)
        if let rowsOf = freshMapRows {
            let mapRows = try zip(selection.freshTokens, selection.freshIndices).map { try rowsOf($0, $1) }
            try cache.scatter(mapRows, at: selection.freshIndices, into: .init(layer: layer, module: crossAttentionMapModule))
        }
        return (selection, try cache.read(slot))
    }
}
