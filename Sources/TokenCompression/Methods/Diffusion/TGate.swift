import Tensors

/// T-GATE: cross-attention converges early, so freeze it after a gate step and drop CFG.
///
/// Criterion: the step index (phase of sampling). Before the gate ("semantics planning") the
/// cross-attention is computed and self-attention is cached periodically; at the gate step both are
/// computed and cached as the mean of the two CFG halves; afterwards ("fidelity improving") the
/// cross-attention is reused from that cache forever, self-attention is cached every
/// `fidelityInterval` steps, and the pipeline runs without classifier-free guidance (batch 1).
///
/// Step index `i` counts up from 0 (PixArt DPM-Solver loop, `cur_step = i` for order-1 schedulers).
public struct TGate {
    public static let info = MethodInfo(
        name: "tgate",
        displayName: "T-GATE",
        domain: .diffusion,
        families: [.cache],
        placement: .everyDiffusionStep,
        signals: [.moduleOutputs, .timestep],
        needsAttentionProbabilities: false,
        paper: "Faster Diffusion via Temporal Attention Decomposition (TMLR 2025, arXiv 2404.02747)",
        repository: "HaozheLiu-ST/T-GATE",
        summary: "Cross-attention cached (CFG-averaged) at a gate step and reused afterwards with CFG off; self-attention cached at intervals.")

    public struct Parameters: Sendable, Equatable {
        /// Step `gateStep − 1` is the gate step; steps `≥ gateStep` are the fidelity-improving phase.
        public var gateStep: Int
        /// Self-attention cache interval before the gate (`sp_interval`): compute+cache iff `i % sp == 0`.
        public var semanticsInterval: Int
        /// Self-attention cache interval after the gate (`fi_interval`).
        public var fidelityInterval: Int
        /// Steps `< warmUp` compute self-attention without caching; step `== warmUp` computes and caches.
        public var warmUp: Int
        /// Latent-consistency mode: keep the batch shape at the gate step (no CFG-half averaging).
        public var lcm: Bool
        /// CFG on (guidance scale > 1): batch `[uncond, cond]` before the gate.
        public var classifierFreeGuidance: Bool

        /// Defaults: the README's PixArt-α setting (25 steps, gate 15, sp 3, fi 1, warm-up 2, CFG on).
        public init(gateStep: Int = 15, semanticsInterval: Int = 3, fidelityInterval: Int = 1, warmUp: Int = 2,
                    lcm: Bool = false, classifierFreeGuidance: Bool = true) throws {
            self.gateStep = gateStep
            self.semanticsInterval = semanticsInterval
            self.fidelityInterval = fidelityInterval
            self.warmUp = warmUp
            self.lcm = lcm
            self.classifierFreeGuidance = classifierFreeGuidance
            try validate()
        }

        public func validate() throws {
            guard gateStep >= 1 else { throw CompressionError.invalidParameter("T-GATE gateStep must be ≥ 1, got \(gateStep)") }
            guard semanticsInterval >= 1 else { throw CompressionError.invalidParameter("T-GATE semanticsInterval must be ≥ 1, got \(semanticsInterval)") }
            guard fidelityInterval >= 1 else { throw CompressionError.invalidParameter("T-GATE fidelityInterval must be ≥ 1, got \(fidelityInterval)") }
            guard warmUp >= 0 else { throw CompressionError.invalidParameter("T-GATE warmUp must be ≥ 0, got \(warmUp)") }
            // The gate step averages the two batch halves (`chunk(2)`); with one row the code crashes.
            guard classifierFreeGuidance || lcm else {
                throw CompressionError.unsupportedSetting("T-GATE without CFG and without lcm: the gate step splits a batch of 1 into CFG halves (crashes in the reference)")
            }
        }
    }

    /// The three phases of a T-GATE run.
    public enum Phase: Sendable, Equatable { case semanticsPlanning, gate, fidelityImproving }

    /// `tgate_scheduler` output for one step (plus the pipeline's lcm override of `keep_shape`).
    public struct Flags: Sendable, Equatable {
        public var crossCache: Bool
        public var crossReuse: Bool
        public var selfCache: Bool
        public var selfReuse: Bool
        /// Cache the computed output as is (true) or the mean of its two batch halves (false).
        public var keepShape: Bool
    }

    public static func phase(step: Int, parameters: Parameters) -> Phase {
        step < parameters.gateStep - 1 ? .semanticsPlanning : (step == parameters.gateStep - 1 ? .gate : .fidelityImproving)
    }

    public static func flags(step: Int, parameters p: Parameters) -> Flags {
        switch phase(step: step, parameters: p) {
        case .semanticsPlanning:
            let selfCache: Bool, selfReuse: Bool
            if step < p.warmUp { (selfCache, selfReuse) = (false, false) }
            else if step == p.warmUp { (selfCache, selfReuse) = (true, false) }
            else if step % p.semanticsInterval == 0 { (selfCache, selfReuse) = (true, false) }
            else { (selfCache, selfReuse) = (false, true) }
            return Flags(crossCache: false, crossReuse: false, selfCache: selfCache, selfReuse: selfReuse, keepShape: true)
        case .gate:
            // keep_shape = keep_shape if not lcm else lcm: lcm never averages.
            return Flags(crossCache: true, crossReuse: false, selfCache: true, selfReuse: false, keepShape: p.lcm)
        case .fidelityImproving:
            let compute = step % p.fidelityInterval == 0
            return Flags(crossCache: false, crossReuse: true, selfCache: compute, selfReuse: !compute, keepShape: true)
        }
    }

    /// Batch run at `step`: 2 (`[uncond, cond]`) while CFG is on and `step < gateStep`, else 1.
    /// After the gate the single row is the NEGATIVE-prompt run and no guidance mix is applied.
    public static func batchSize(step: Int, parameters: Parameters) -> Int {
        parameters.classifierFreeGuidance && step < parameters.gateStep ? 2 : 1
    }

    /// The per-module cache of `tgate_processor` (`attn.cache`). Never returns an unfilled cache:
    /// a reuse flag with an empty cache computes instead, as the code does.
    public struct AttentionCache: Sendable {
        public private(set) var stored: Tensor?
        public init() {}

        /// One call of the module. `compute()` returns `[batch, …]`; returns the output used and
        /// whether the module ran. A compute step without the cache flag keeps the old cache.
        public mutating func call(cache: Bool, reuse: Bool, keepShape: Bool,
                                  compute: () throws -> Tensor) throws -> (output: Tensor, computed: Bool) {
            if reuse, let stored { return (stored, false) }
            let output = try compute()
            if cache { stored = keepShape ? output : try TGate.halfMean(output) }
            return (output, true)
        }
    }

    /// `(first half + second half) / 2` along the batch axis: `(uncond + cond) / 2` in float32.
    public static func halfMean(_ batch: Tensor) throws -> Tensor {
        guard let b = batch.shape.first, b >= 2, b % 2 == 0 else {
            throw CompressionError.shapeMismatch("T-GATE CFG-half average needs an even batch ≥ 2, got shape \(batch.shape)")
        }
        let inner = Array(batch.shape.dropFirst())
        let half = inner.reduce(1, *) * (b / 2)
        let v = batch.values
        let mean = (0..<half).map { (v[$0] + v[half + $0]) / 2 }
        return try Tensor(shape: [b / 2] + inner, values: mean)
    }

    /// Cache schedule over `steps` steps, modules `["self-attn", "cross-attn"]`: `.compute` when the
    /// module runs, `.reuse` when it returns its cache (tracking, as the code does, whether a cache exists).
    public static func schedule(steps: Int, layers: Int, parameters: Parameters) throws -> CacheSchedule {
        try parameters.validate()
        guard steps >= 1, layers >= 1 else {
            throw CompressionError.invalidParameter("T-GATE schedule needs ≥ 1 step and layer, got \(steps) steps, \(layers) layers")
        }
        var selfFilled = false, crossFilled = false
        var actions: [[[CacheAction]]] = []
        for step in 0..<steps {
            let f = flags(step: step, parameters: parameters)
            let selfAction: CacheAction = f.selfReuse && selfFilled ? .reuse : .compute
            let crossAction: CacheAction = f.crossReuse && crossFilled ? .reuse : .compute
            if selfAction == .compute && f.selfCache { selfFilled = true }
            if crossAction == .compute && f.crossCache { crossFilled = true }
            actions.append(Array(repeating: [selfAction, crossAction], count: layers))
        }
        return CacheSchedule(moduleNames: ["self-attn", "cross-attn"], actions: actions)
    }
}
