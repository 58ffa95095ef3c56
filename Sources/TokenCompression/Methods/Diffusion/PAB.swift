import Tensors

/// Pyramid Attention Broadcast: reuse ("broadcast") attention outputs to the next steps in the
/// stable middle of sampling, with ranges growing from spatial to temporal to cross-attention.
///
/// Criterion: per-block call counters and a strict timestep window `lo < t < hi` (t = the integer
/// timestep the blocks see). Strategy: reuse — inside the window an attention kind is recomputed on
/// calls whose 0-based counter is a multiple of its range and reused otherwise; optional MLP
/// broadcast computes the MLP at listed timesteps and reuses it for the next `skipCount` steps.
/// Follows VideoSys `pab_mgr.py` driven by the Open-Sora 1.2 `STDiT3Block.forward`.
public struct PAB {
    public static let info = MethodInfo(
        name: "pab",
        displayName: "PAB (Pyramid Attention Broadcast)",
        domain: .diffusion,
        families: [.cache],
        placement: .everyDiffusionStep,
        signals: [.moduleOutputs, .timestep],
        needsAttentionProbabilities: false,
        paper: "Real-Time Video Generation with Pyramid Attention Broadcast (arXiv 2408.12588)",
        repository: "NUS-HPC-AI-Lab/VideoSys",
        summary: "Attention outputs reused inside a timestep window with per-kind ranges (spatial < temporal < cross); optional MLP reuse at listed steps.")

    /// Which attention a broadcast rule covers.
    public enum AttentionKind: String, Sendable, CaseIterable { case spatial, temporal, cross }

    /// One broadcast rule: reuse iff `count % range != 0` and `lower < t < upper` (strict).
    public struct Broadcast: Sendable, Equatable {
        public var lower: Int
        public var upper: Int
        public var range: Int
        public init(lower: Int, upper: Int, range: Int) {
            self.lower = lower; self.upper = upper; self.range = range
        }
    }

    /// MLP broadcast entry: at `timestep` listed blocks compute and store their gated MLP output,
    /// which they reuse for the next `skipCount` entries of the timestep list.
    public struct MLPRule: Sendable, Equatable {
        public var timestep: Int
        public var blocks: [Int]
        public var skipCount: Int
        public init(timestep: Int, blocks: [Int], skipCount: Int) {
            self.timestep = timestep; self.blocks = blocks; self.skipCount = skipCount
        }
    }

    /// Which gate multiplies a broadcast self-attention or MLP output.
    public enum ReuseGate: String, Sendable, CaseIterable {
        /// The gate of the call that computed it: VideoSys stores `gate · out` (the paper's code).
        case computing
        /// The current call's gate: diffusers' hooks (`apply_pyramid_attention_broadcast`) cache the
        /// attention module's output, which the block gates afterwards (FORA's rule).
        case current
    }

    public struct Parameters: Sendable, Equatable {
        /// nil = that kind is never broadcast (its counter still advances).
        public var spatial: Broadcast?
        public var temporal: Broadcast?
        public var cross: Broadcast?
        /// MLP broadcast rules for spatial / temporal blocks, in the config's order (the first
        /// matching range wins). Empty and `mlpBroadcast == false` = off.
        public var mlpBroadcast: Bool
        public var mlpSpatial: [MLPRule]
        public var mlpTemporal: [MLPRule]
        /// Gate of a reused term; decides no schedule, only the values added.
        public var reuseGate: ReuseGate = .computing

        /// Defaults: `OpenSoraPABConfig` (the paper setting).
        public init(spatial: Broadcast? = Broadcast(lower: 450, upper: 930, range: 2),
                    temporal: Broadcast? = Broadcast(lower: 450, upper: 930, range: 4),
                    cross: Broadcast? = Broadcast(lower: 450, upper: 930, range: 6),
                    mlpBroadcast: Bool = true,
                    mlpSpatial: [MLPRule] = PAB.rules([676, 788, 864], blocks: Array(0...4), skipCount: 2),
                    mlpTemporal: [MLPRule] = PAB.rules([676, 788, 864], blocks: Array(0...4), skipCount: 2)) throws {
            self.spatial = spatial
            self.temporal = temporal
            self.cross = cross
            self.mlpBroadcast = mlpBroadcast
            self.mlpSpatial = mlpSpatial
            self.mlpTemporal = mlpTemporal
            try validate()
        }

        /// `OpenSoraPABConfig`: `[450, 930]`, ranges 2/4/6, MLP at 676/788/864 for blocks 0–4, skip 2.
        public static func openSora() throws -> Parameters { try Parameters() }

        /// `LattePABConfig`: `[100, 800]`, ranges 2/3/6, MLP at 720/640/560/480/400 for blocks 0–4, skip 2.
        public static func latte() throws -> Parameters {
            let w = { (r: Int) in Broadcast(lower: 100, upper: 800, range: r) }
            let mlp = PAB.rules([720, 640, 560, 480, 400], blocks: Array(0...4), skipCount: 2)
            return try Parameters(spatial: w(2), temporal: w(3), cross: w(6), mlpBroadcast: true, mlpSpatial: mlp, mlpTemporal: mlp)
        }

        /// `CogVideoXPABConfig`: spatial only, `[100, 850]`, range 2.
        public static func cogVideoX() throws -> Parameters {
            try Parameters(spatial: Broadcast(lower: 100, upper: 850, range: 2), temporal: nil, cross: nil,
                           mlpBroadcast: false, mlpSpatial: [], mlpTemporal: [])
        }

        /// `enable_pab()`: the manager acts (counters advance, MLP rule runs) only if some attention kind broadcasts.
        public var isEnabled: Bool { spatial != nil || temporal != nil || cross != nil }

        public func broadcast(_ kind: AttentionKind) -> Broadcast? {
            switch kind { case .spatial: return spatial; case .temporal: return temporal; case .cross: return cross }
        }

        public func validate() throws {
            for kind in AttentionKind.allCases {
                if let b = broadcast(kind), b.range < 1 {
                    throw CompressionError.invalidParameter("PAB \(kind.rawValue) range must be ≥ 1, got \(b.range)")
                }
            }
            for rule in mlpSpatial + mlpTemporal where rule.skipCount < 0 {
                throw CompressionError.invalidParameter("PAB MLP skip_count must be ≥ 0, got \(rule.skipCount) at t=\(rule.timestep)")
            }
        }
    }

    /// MLP rules with the same blocks and skip count for each timestep, in the given order.
    public static func rules(_ timesteps: [Int], blocks: [Int], skipCount: Int) -> [MLPRule] {
        timesteps.map { MLPRule(timestep: $0, blocks: blocks, skipCount: skipCount) }
    }

    /// `if_broadcast_{spatial,temporal,cross}`: reuse iff enabled, `count % range != 0` and `lo < t < hi`.
    public static func broadcasts(_ kind: AttentionKind, timestep: Int, count: Int, parameters: Parameters) -> Bool {
        guard let b = parameters.broadcast(kind) else { return false }
        return count % b.range != 0 && b.lower < timestep && timestep < b.upper
    }

    /// What the MLP rule decides for one block call.
    public enum MLPDecision: Sendable, Equatable {
        case compute
        /// `t` is a config key listing this block: compute and store the gated output.
        case computeAndStore
        /// Reuse the output stored at `key`; it is released after the call at `lastTimestep`.
        case reuse(key: Int, lastTimestep: Int)
    }

    /// `if_skip_mlp` + `_is_t_in_skip_config`. Keys missing from `allTimesteps` are ignored; the
    /// search stops at the FIRST key (config order) whose range `allTimesteps[i0 ... i0+skipCount]`
    /// contains `t`, and only that key's block list is consulted.
    public static func mlpDecision(timestep t: Int, block: Int, temporal: Bool, allTimesteps: [Int]?,
                                   parameters p: Parameters) throws -> MLPDecision {
        let config = temporal ? p.mlpTemporal : p.mlpSpatial
        guard p.isEnabled, p.mlpBroadcast, !config.isEmpty else { return .compute }
        guard let all = allTimesteps else {
            // The released STDiT3.forward calls its blocks without all_timesteps, so the default
            // Open-Sora config (MLP broadcast on) raises TypeError there; we refuse with the reason.
            throw CompressionError.missingSignal("PAB MLP broadcast needs the run's timestep list (all_timesteps); the released Open-Sora STDiT3.forward does not pass it")
        }
        var match: (key: Int, last: Int)?
        for rule in config {
            guard let i0 = all.firstIndex(of: rule.timestep) else { continue }
            let end = min(all.count, i0 + 1 + rule.skipCount)
            if all[i0..<end].contains(t) {
                guard i0 + rule.skipCount < all.count else {
                    throw CompressionError.unsupportedSetting("PAB MLP range of t=\(rule.timestep) runs past the last timestep (IndexError in the reference)")
                }
                match = (rule.timestep, all[i0 + rule.skipCount])
                break
            }
        }
        if let rule = config.first(where: { $0.timestep == t }), rule.blocks.contains(block) { return .computeAndStore }
        if let m = match, let rule = config.first(where: { $0.timestep == m.key }), rule.blocks.contains(block) {
            return .reuse(key: m.key, lastTimestep: m.last)
        }
        return .compute
    }

    /// What one block call used and did.
    public struct BlockStep: Sendable {
        public let output: Tensor
        public let attentionTerm: Tensor
        public let crossTerm: Tensor
        public let mlpTerm: Tensor
        public let attentionComputed: Bool
        public let crossComputed: Bool
        public let mlpComputed: Bool
        public let mlpStored: Bool
    }

    /// The PAB state of one block (`attn_count`, `last_attn`, `cross_count`, `last_cross`, its stored
    /// MLP outputs). Never hands out a cache it has not filled.
    public struct BlockCache: Sendable {
        public let block: Int
        public let temporal: Bool
        /// Number of sampling steps: counters run modulo this.
        public let steps: Int
        public private(set) var attentionCount = 0
        public private(set) var crossCount = 0
        /// Raw and gated outputs of the last computed self-attention and of the stored MLPs.
        private var lastAttention: (raw: Tensor, gated: Tensor)?
        private var lastCross: Tensor?
        private var mlpOutputs: [Int: (raw: Tensor, gated: Tensor)] = [:]

        public init(block: Int, temporal: Bool, steps: Int) throws {
            guard steps >= 1, block >= 0 else { throw CompressionError.invalidParameter("PAB block \(block) with \(steps) steps") }
            self.block = block; self.temporal = temporal; self.steps = steps
        }

        /// One `STDiT3Block.forward` call. The closures return the raw module outputs (`[N, C]`) from the
        /// current hidden state; `gateMSA`/`gateMLP` are the `[C]` gates of this call. Self-attention
        /// and MLP reuse return the STORED GATED tensors (the old gate is reused, unlike FORA/ToCa) —
        /// or, with `reuseGate == .current`, the stored raw output times this call's gate;
        /// cross-attention has no gate.
        public mutating func forward(_ x: Tensor, timestep t: Int, allTimesteps: [Int]?, gateMSA: Tensor, gateMLP: Tensor,
                                     parameters p: Parameters,
                                     attention: (Tensor) throws -> Tensor,
                                     crossAttention: (Tensor) throws -> Tensor,
                                     mlp: (Tensor) throws -> Tensor) throws -> BlockStep {
            let enabled = p.isEnabled
            var h = x
            var attnBroadcast = false
            if enabled {
                attnBroadcast = PAB.broadcasts(temporal ? .temporal : .spatial, timestep: t, count: attentionCount, parameters: p)
                attentionCount = (attentionCount + 1) % steps
            }
            let attnTerm: Tensor
            if attnBroadcast {
                guard let last = lastAttention else { throw CompressionError.missingSignal("PAB block \(block): attention broadcast before any compute") }
                attnTerm = p.reuseGate == .computing ? last.gated : try PAB.gated(last.raw, gateMSA)
            } else {
                let raw = try attention(h)
                attnTerm = try PAB.gated(raw, gateMSA)
                if enabled { lastAttention = (raw, attnTerm) }
            }
            h = try h + attnTerm

            var crossBroadcast = false
            if enabled {
                crossBroadcast = PAB.broadcasts(.cross, timestep: t, count: crossCount, parameters: p)
                crossCount = (crossCount + 1) % steps
            }
            let crossTerm: Tensor
            if crossBroadcast {
                guard let last = lastCross else { throw CompressionError.missingSignal("PAB block \(block): cross-attention broadcast before any compute") }
                crossTerm = last
            } else {
                crossTerm = try crossAttention(h)
                if enabled { lastCross = crossTerm }
            }
            h = try h + crossTerm

            let decision = enabled ? try PAB.mlpDecision(timestep: t, block: block, temporal: temporal, allTimesteps: allTimesteps, parameters: p) : .compute
            let mlpTerm: Tensor
            if case .reuse(let key, let last) = decision {
                guard let stored = mlpOutputs[key] else {
                    throw CompressionError.missingSignal("PAB block \(block): no stored MLP output for t=\(key) at t=\(t) (ValueError in the reference)")
                }
                mlpTerm = p.reuseGate == .computing ? stored.gated : try PAB.gated(stored.raw, gateMLP)
                if t == last { mlpOutputs[key] = nil }
            } else {
                let raw = try mlp(h)
                mlpTerm = try PAB.gated(raw, gateMLP)
                if decision == .computeAndStore { mlpOutputs[t] = (raw, mlpTerm) }
            }
            h = try h + mlpTerm
            let reused: Bool
            if case .reuse = decision { reused = true } else { reused = false }
            return BlockStep(output: h, attentionTerm: attnTerm, crossTerm: crossTerm, mlpTerm: mlpTerm,
                             attentionComputed: !attnBroadcast, crossComputed: !crossBroadcast,
                             mlpComputed: !reused, mlpStored: decision == .computeAndStore)
        }
    }

    /// `gate * raw` with a `[C]` gate broadcast over the rows of `raw`.
    static func gated(_ raw: Tensor, _ gate: Tensor) throws -> Tensor {
        guard gate.count == raw.columns else {
            throw CompressionError.shapeMismatch("PAB gate of \(gate.count) values for output \(raw.shape)")
        }
        return try raw.multiplyingRowVector(gate)
    }

    /// Cache schedule of an image transformer (DiT, PixArt-α): one block per layer whose self-attention
    /// follows the SPATIAL rule, cross-attention (when the model has it) the cross rule and the MLP the
    /// spatial MLP rule — a VideoSys spatial block without its temporal partner. `timesteps` are the
    /// integer timesteps the blocks see, one per sampler call. Modules: `attn, cross-attn, mlp`
    /// (PixArt-α) or `attn, mlp` (DiT); a model without cross-attention still advances the cross
    /// counter, which decides nothing there.
    public static func imageSchedule(timesteps: [Int], layers: Int, crossAttention: Bool,
                                     parameters: Parameters) throws -> CacheSchedule {
        try parameters.validate()
        guard !timesteps.isEmpty, layers >= 1 else {
            throw CompressionError.invalidParameter("PAB schedule needs ≥ 1 timestep and layer, got \(timesteps.count), \(layers)")
        }
        var blocks = try (0..<layers).map { try BlockCache(block: $0, temporal: false, steps: timesteps.count) }
        let one = Tensor(zeros: [1, 1])
        var actions: [[[CacheAction]]] = []
        for t in timesteps {
            var row: [[CacheAction]] = []
            for d in 0..<layers {
                let s = try blocks[d].forward(one, timestep: t, allTimesteps: timesteps, gateMSA: Tensor(zeros: [1]),
                                              gateMLP: Tensor(zeros: [1]), parameters: parameters,
                                              attention: { _ in one }, crossAttention: { _ in one }, mlp: { _ in one })
                let used = crossAttention ? [s.attentionComputed, s.crossComputed, s.mlpComputed] : [s.attentionComputed, s.mlpComputed]
                row.append(used.map { $0 ? CacheAction.compute : .reuse })
            }
            actions.append(row)
        }
        return CacheSchedule(moduleNames: crossAttention ? ["attn", "cross-attn", "mlp"] : ["attn", "mlp"], actions: actions)
    }

    /// Cache schedule over a run with the given block timesteps (one entry per call, descending), for
    /// `layers` (spatial, temporal) block pairs. Modules: `spatial-attn, spatial-cross, spatial-mlp,
    /// temporal-attn, temporal-cross, temporal-mlp`.
    public static func schedule(timesteps: [Int], layers: Int, parameters: Parameters) throws -> CacheSchedule {
        try parameters.validate()
        guard !timesteps.isEmpty, layers >= 1 else {
            throw CompressionError.invalidParameter("PAB schedule needs ≥ 1 timestep and layer, got \(timesteps.count), \(layers)")
        }
        var blocks = try (0..<layers).map { d in
            [try BlockCache(block: d, temporal: false, steps: timesteps.count), try BlockCache(block: d, temporal: true, steps: timesteps.count)]
        }
        let one = Tensor(zeros: [1, 1])
        var actions: [[[CacheAction]]] = []
        for t in timesteps {
            var row: [[CacheAction]] = []
            for d in 0..<layers {
                var cells: [CacheAction] = []
                for j in 0..<2 {
                    let s = try blocks[d][j].forward(one, timestep: t, allTimesteps: timesteps, gateMSA: Tensor(zeros: [1]),
                                                     gateMLP: Tensor(zeros: [1]), parameters: parameters,
                                                     attention: { _ in one }, crossAttention: { _ in one }, mlp: { _ in one })
                    cells += [s.attentionComputed, s.crossComputed, s.mlpComputed].map { $0 ? CacheAction.compute : .reuse }
                }
                row.append(cells)
            }
            actions.append(row)
        }
        return CacheSchedule(moduleNames: ["spatial-attn", "spatial-cross", "spatial-mlp", "temporal-attn", "temporal-cross", "temporal-mlp"],
                             actions: actions)
    }
}
