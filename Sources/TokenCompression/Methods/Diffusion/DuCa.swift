import Foundation
import Tensors

/// DuCa — dual feature caching: ToCa's cache cycle with two kinds of cached step.
///
/// Inside each cycle of N_t steps (same interval rule as ToCa, `k = step mod N_t`):
/// `k = 0` is a full step, odd `k` a *conservative* step (ToCa partial step: attention reused,
/// MLP recomputed on fresh tokens) and even `k ≠ 0` an *aggressive* step (every block does
/// nothing; the last block's output of the previous step, cached every step, replaces the hidden
/// state). The paper argues selection hardly matters; the code adds a FlashAttention-compatible
/// criterion, the V-norm score, next to ToCa's attention score. Both feed ToCa's staleness (s3) and
/// spatial bonus (s4, here λ4 = 0.8 on 2×2 blocks) and its top-k strategy.
///
/// PixArt-α (DuCa-PixArt-alpha): step counts UP, constant interval N0 (interval schedule weight 0),
/// conservative steps recompute the fresh cross-attention AND MLP rows with ToCa's PixArt criterion
/// (s2 cross-attention entropy, λ4 = 0.4 on 4×4 blocks) and ratio schedule.
///
/// Follows Shenyi-Z/DuCa (DuCa-DiT, DuCa-PixArt-alpha and DuCa-Open-Sora `cache_functions`).
public struct DuCa {
    public static let info = MethodInfo(
        name: "duca", displayName: "DuCa", domain: .diffusion, families: [.cache],
        placement: .everyDiffusionStep,
        signals: [.attentionProbabilities, .values, .hiddenStates, .timestep, .moduleOutputs],
        needsAttentionProbabilities: true,
        paper: "Accelerating Diffusion Transformers with Dual Feature Caching (arXiv 2412.18911)",
        repository: "Shenyi-Z/DuCa",
        summary: "ToCa cycles alternating aggressive (skip every block) and conservative (recompute top-k MLP tokens) cached steps; the V-norm score needs no attention map.")

    /// Code family.
    public enum Model: String, Sendable, CaseIterable {
        /// DuCa-DiT: step index counts DOWN; per-layer decisions with ToCa's interval rule.
        case dit = "DiT"
        /// DuCa-Open-Sora (STDiT3): step index counts UP; fixed per-module intervals and a 6-step
        /// table of kinds; no layer dependence.
        case openSora = "OpenSora"
        /// DuCa-PixArt-alpha: step index counts UP; ToCa-PixArt's per-layer rule with a constant
        /// interval N0; conservative steps recompute cross-attention and MLP rows.
        case pixart = "PixArt"

        /// Modules that a conservative step recomputes token-wise (DiT/PixArt schedules).
        public var partialModules: [String] { self == .pixart ? ["cross-attn", "mlp"] : ["mlp"] }
    }

    public enum ScoreType: String, Sendable, CaseIterable {
        /// ToCa s1 from the self-attention map stored at the last full step (DiT README command).
        case attention
        /// `normalize(Σ_h (1 − ‖V[h, n]‖₂))` from the values stored at the last full step: works
        /// with fused attention. Tokens with SMALL value norms score HIGH (norms > 1 give negative
        /// terms) — reproduced as is.
        case kvNorm = "kv-norm"
    }

    public struct Parameters: Sendable, Equatable {
        public var model: Model
        public var numSteps: Int
        public var numLayers: Int
        public var numTokens: Int
        /// N0, base full-step interval.
        public var freshThreshold: Int
        /// r0, base fresh ratio of conservative steps.
        public var freshRatio: Double
        /// DuCa-DiT's "ToCa" schedule has ToCa's DDIM-50 numbers.
        public var ratioSchedule: ToCa.RatioSchedule
        public var softFreshWeight: Double
        public var scoreType: ScoreType
        /// λ4 of s4, hard-coded 0.8 in DuCa-DiT (ToCa-DiT: 0.6).
        public var bonusRatio: Double
        public var gridSize: Int
        /// Open-Sora per-module full-step intervals (`force_scheduler`): spatial attention,
        /// temporal attention, cross-attention, MLP.
        public var openSoraIntervals: [Int]

        /// Defaults: the DuCa-DiT README command (DDIM-50, N0 = 3, r0 = 0.05, "ToCa" schedule,
        /// λ3 = 0.25, s4 = 0.8 on 2×2, attention score).
        public init(model: Model = .dit, numSteps: Int = 50, numLayers: Int = 28, numTokens: Int = 256,
                    freshThreshold: Int = 3, freshRatio: Double = 0.05, ratioSchedule: ToCa.RatioSchedule = .ditDDIM50,
                    softFreshWeight: Double = 0.25, scoreType: ScoreType = .attention, bonusRatio: Double = 0.8,
                    gridSize: Int = 2, openSoraIntervals: [Int] = [3, 3, 6, 3]) {
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
            self.openSoraIntervals = openSoraIntervals
        }

        /// DuCa-Open-Sora release: 30 rectified-flow steps, r0 = 0.1, kv-norm score.
        public static var openSora: Parameters {
            Parameters(model: .openSora, numSteps: 30, freshRatio: 0.1, ratioSchedule: .constant, scoreType: .kvNorm)
        }

        /// DuCa-PixArt-alpha README setting: 20 DPM-Solver++ steps, N0 = 3, r0 = 0.75, ToCa-PixArt's
        /// ratio schedule, λ3 = 0.25, s4 = 0.4 on 4×4 blocks, attention (s2) score.
        public static var pixart: Parameters {
            Parameters(model: .pixart, numSteps: 20, freshThreshold: 3, freshRatio: 0.75, ratioSchedule: .pixart,
                       bonusRatio: 0.4, gridSize: 4)
        }

        /// DuCa's schedule names: "ToCa" (DiT: ToCa's ddim50 numbers; PixArt: ToCa-PixArt's),
        /// "constant", "linear".
        public static func ratioSchedule(named name: String, model: Model = .dit) throws -> ToCa.RatioSchedule {
            switch name {
            case "ToCa" where model == .pixart: return .pixart
            case "ToCa", "ToCa-ddim50": return .ditDDIM50
            case "constant": return .constant
            case "linear": return .linear
            default: throw CompressionError.invalidParameter("DuCa ratio schedule '\(name)' unknown (ToCa, constant, linear)")
            }
        }

        public func validated() throws -> Parameters {
            _ = try tocaParameters.validated()
            guard openSoraIntervals.count == 4, openSoraIntervals.allSatisfy({ $0 >= 1 }) else {
                throw CompressionError.invalidParameter("openSoraIntervals must be 4 intervals ≥ 1, got \(openSoraIntervals)")
            }
            return self
        }

        /// The ToCa machinery configured as DuCa-DiT (or DuCa-PixArt) uses it.
        var tocaParameters: ToCa.Parameters {
            ToCa.Parameters(model: model == .pixart ? .pixart : .dit, numSteps: numSteps, numLayers: numLayers, numTokens: numTokens,
                            freshThreshold: freshThreshold, freshRatio: freshRatio, ratioSchedule: ratioSchedule,
                            softFreshWeight: softFreshWeight, scoreType: .attention, bonusRatio: bonusRatio, gridSize: gridSize)
        }
    }

    // MARK: - Schedules

    /// DuCa-DiT / DuCa-PixArt run: `kinds[call][layer]`, intervals, and the MLP fresh ratio/count of
    /// conservative steps (`moduleFreshCounts` has every partial module's).
    public struct Schedule: Sendable {
        public let stepIndices: [Int]
        public let kinds: [[TokenCacheStepKind]]
        public let intervals: [Int]
        public let freshRatios: [[Float]]
        public let freshCounts: [[Int]]
        /// Modules recomputed token-wise on conservative steps (DiT: mlp; PixArt: cross-attn, mlp).
        public let partialModules: [String]
        /// `moduleFreshCounts[call][layer][partial module]` = `int(ratio · N)`.
        public let moduleFreshCounts: [[[Int]]]
        public let cacheSchedule: CacheSchedule
    }

    /// `cal_type` of DuCa-DiT in every block. ToCa's interval rule and quirks F1/F2 apply: N_t is
    /// recomputed in every full block (ToCa-DiT: layer 0 only; same values), so when layer 0 is full
    /// and the new N_t does not divide i, layers 1… take the kind of `k = i mod N_t` in the same
    /// step — when that is aggressive, layer 0's full computation only refreshes its own caches.
    /// With N_t = 2 (the 20–40 % window) steps alternate full / conservative, never aggressive.
    ///
    /// PixArt: the same per-layer rule on the UP-counting step with a constant interval N0 (the
    /// interval schedule's weight is 0, passed as ToCa's r0 = 0 rule); with N0 = 3 a cycle is full
    /// (s ≡ 0) → conservative (s ≡ 1) → aggressive (s ≡ 2). Conservative layers reuse
    /// self-attention and recompute fresh cross-attention and MLP rows.
    public static func schedule(_ parameters: Parameters) throws -> Schedule {
        let p = try parameters.validated()
        guard p.model != .openSora else {
            throw CompressionError.unsupportedSetting("DuCa.schedule is the DiT / PixArt schedule; use openSoraSchedule for Open-Sora")
        }
        let t = p.tocaParameters
        let family: ToCa.Model = p.model == .pixart ? .pixart : .dit
        // DuCa-PixArt: interval weight 0 ⇒ N_t = N0, which ToCa's force_scheduler gives for r0 = 0.
        let run = ToCa.intervalKinds(model: family, numSteps: p.numSteps, numLayers: p.numLayers,
                                     freshThreshold: p.freshThreshold, freshRatio: p.model == .pixart ? 0 : p.freshRatio) { k in
            k % 2 == 1 ? .partial : .aggressive
        }
        let modules = p.model.partialModules
        var ratios: [[Float]] = [], counts: [[Int]] = [], moduleCounts: [[[Int]]] = [], actions: [[[CacheAction]]] = []
        for (r, step) in run.steps.enumerated() {
            let mr = (0..<p.numLayers).map { l in modules.map { ToCa.freshRatio(layer: l, step: step, module: $0, parameters: t) } }
            let mc = mr.map { $0.map { ToCa.freshCount(ratio: $0, tokens: p.numTokens) } }
            ratios.append(mr.map { $0.last! })
            counts.append(mc.map { $0.last! })
            moduleCounts.append(mc)
            actions.append((0..<p.numLayers).map { l in
                switch run.kinds[r][l] {
                case .full: return Array(repeating: .compute, count: modules.count + 1)
                case .partial: return [.reuse] + mc[l].map { $0 > 0 ? .partial : .reuse }
                case .aggressive: return Array(repeating: .skip, count: modules.count + 1)
                }
            })
        }
        return Schedule(stepIndices: run.steps, kinds: run.kinds, intervals: run.intervals, freshRatios: ratios,
                        freshCounts: counts, partialModules: modules, moduleFreshCounts: moduleCounts,
                        cacheSchedule: CacheSchedule(moduleNames: ["attn"] + modules, actions: actions))
    }

    /// Open-Sora run: `kinds[step][block kind: spatial, temporal][module: self-attn, cross-attn, mlp]`.
    public struct OpenSoraSchedule: Sendable {
        public let stepIndices: [Int]
        public let kinds: [[[TokenCacheStepKind]]]
        /// True where all three modules of a block kind are aggressive: then the last block
        /// replaces the hidden state by its cached output of the previous step.
        public let allAggressive: [[Bool]]
        public let cacheSchedule: CacheSchedule
    }

    /// `lists_ToCa_CN` of DuCa-Open-Sora, indexed by `step mod interval`: self-attention and MLP
    /// (interval 3 reaches only entries 0…2) and cross-attention (interval 6).
    static let openSoraTable: [TokenCacheStepKind] = [.full, .partial, .aggressive, .full, .partial, .aggressive]
    static let openSoraCrossTable: [TokenCacheStepKind] = [.full, .partial, .aggressive, .partial, .partial, .aggressive]

    /// DuCa-Open-Sora `cal_type`: the first 3 steps are full for every module; afterwards a module
    /// is full iff `step mod interval == 0`, else it takes the table entry at `step mod interval`.
    /// On a conservative step self- and cross-attention are pure reuse and only the MLP is partial.
    public static func openSoraSchedule(_ parameters: Parameters = .openSora) throws -> OpenSoraSchedule {
        let p = try parameters.validated()
        let iv = p.openSoraIntervals   // spatial attn, temporal attn, cross-attn, mlp
        var kinds: [[[TokenCacheStepKind]]] = [], all: [[Bool]] = [], actions: [[[CacheAction]]] = []
        func kind(_ step: Int, _ interval: Int, _ table: [TokenCacheStepKind]) -> TokenCacheStepKind {
            if step <= 2 { return .full }
            let k = step % interval
            return k == 0 ? .full : table[k % table.count]
        }
        for step in 0..<p.numSteps {
            var sk: [[TokenCacheStepKind]] = [], sa: [Bool] = [], sc: [[CacheAction]] = []
            for selfInterval in [iv[0], iv[1]] {
                let m = [kind(step, selfInterval, openSoraTable), kind(step, iv[2], openSoraCrossTable), kind(step, iv[3], openSoraTable)]
                sk.append(m)
                sa.append(m.allSatisfy { $0 == .aggressive })
                sc.append(m.enumerated().map { i, k in
                    switch k {
                    case .full: return .compute
                    case .partial: return i == 2 ? .partial : .reuse
                    case .aggressive: return .skip
                    }
                })
            }
            kinds.append(sk)
            all.append(sa)
            actions.append(sc)
        }
        return OpenSoraSchedule(stepIndices: Array(0..<p.numSteps), kinds: kinds, allAggressive: all,
                                cacheSchedule: CacheSchedule(moduleNames: ["self-attn", "cross-attn", "mlp"], actions: actions))
    }

    // MARK: - Criterion

    /// Slot of the per-head value norms stored at a full step.
    public static let valueNormModule = "v_norm"
    /// Slot of the last block's output, re-stored at every step (`cache['noise']`).
    public static let lastBlockOutputModule = "noise"

    /// `‖V[h, n, :]‖₂` for values `[heads, tokens, head_dim]` → `[heads, tokens]`.
    public static func valueNorms(values v: Tensor) throws -> Tensor {
        guard v.rank == 3 else { throw CompressionError.shapeMismatch("DuCa values must be [heads, tokens, head_dim], got \(v.shape)") }
        let h = v.shape[0], n = v.shape[1]
        var out = Tensor(zeros: [h, n])
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<(h * n) { o[r] = L2Norm.float32Norm(v.row(r)) }
        }
        return out
    }

    /// V-norm score: `normalize(Σ_h (1 − v_norm[h, :]))` over tokens (float32).
    public static func valueNormScore(valueNorms vn: Tensor) throws -> [Float] {
        guard vn.rank == 2 else { throw CompressionError.shapeMismatch("DuCa value norms must be [heads, tokens], got \(vn.shape)") }
        let h = vn.shape[0], n = vn.shape[1]
        var sums = [Float](repeating: 0, count: n)
        vn.withUnsafeBufferPointer { v in
            for head in 0..<h { for i in 0..<n { sums[i] += 1 - v[head * n + i] } }
        }
        return ToCa.l2Normalized(sums)
    }

    // MARK: - Strategy

    /// DuCa-DiT `cache_cutfresh` for the MLP on a conservative step: main score (attention map or
    /// value norms, from the cache), then ToCa's s3, s4 (λ4 = 0.8), top-k, ages and gather.
    /// DuCa-PixArt: the cross-attention or MLP, scored as ToCa-PixArt does (s2 from the stored
    /// cross-attention map, λ4 = 0.4 on 4×4 blocks, its ratio schedule).
    public static func cutFresh(tokens: [Tensor], cache: inout TokenFeatureCache, step: Int, layer: Int,
                                module: String = "mlp", parameters: Parameters) throws -> ToCa.FreshSelection {
        let p = try parameters.validated()
        guard p.model.partialModules.contains(module) else {
            throw CompressionError.invalidParameter("DuCa-\(p.model.rawValue) recomputes only \(p.model.partialModules) token-wise, got module '\(module)'")
        }
        let main: [[Float]]
        switch p.scoreType {
        case .attention where p.model == .pixart:
            main = try ToCa.crossAttentionEntropyScores(maps: try cache.peek(.init(layer: layer, module: ToCa.crossAttentionMapModule)))
        case .attention:
            main = try cache.peek(.init(layer: layer, module: ToCa.attentionMapModule)).map { try ToCa.attentionScore(attentionMap: $0) }
        case .kvNorm:
            main = try cache.peek(.init(layer: layer, module: valueNormModule)).map { try valueNormScore(valueNorms: $0) }
        }
        let t = p.tocaParameters
        return try ToCa.selectFresh(scoreMain: main, tokens: tokens, cache: &cache, slot: .init(layer: layer, module: module),
                                    ratio: ToCa.freshRatio(layer: layer, step: step, module: module, parameters: t),
                                    softFreshWeight: p.softFreshWeight, freshThreshold: p.freshThreshold,
                                    bonusRatio: p.bonusRatio, gridSize: p.gridSize)
    }

    /// Stores the last block's output of this step (done at every step, whatever its kind).
    public static func storeLastBlockOutput(_ rows: [Tensor], parameters: Parameters, cache: inout TokenFeatureCache) throws {
        try cache.store(rows, at: .init(layer: parameters.numLayers - 1, module: lastBlockOutputModule))
    }

    /// An aggressive step: every block is skipped and the hidden state after the last block is the
    /// last block's output of the previous step. Throws when no step has stored it yet.
    public static func aggressiveStep(parameters: Parameters, cache: inout TokenFeatureCache) throws -> [Tensor] {
        try cache.read(.init(layer: parameters.numLayers - 1, module: lastBlockOutputModule))
    }
}
