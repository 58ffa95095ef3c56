import Tensors

/// FORA — fast-forward caching: static, interval-based reuse of every block's attention and MLP
/// outputs across sampling steps.
///
/// Criterion: the step index alone (staleness by a fixed interval). Strategy: on a compute step
/// every block runs and stores its attention and MLP outputs *before the adaLN gate*; on the other
/// steps no norm, attention or MLP runs at all: each residual adds the stored output times the
/// gate computed from the CURRENT conditioning.
///
/// Follows prathebaselva/FORA `src/models.py::DiTBlock.forward` (`boost_infer_static`).
public struct FORA {
    public static let info = MethodInfo(
        name: "fora", displayName: "FORA", domain: .diffusion, families: [.cache],
        placement: .everyDiffusionStep,
        signals: [.timestep, .moduleOutputs],
        needsAttentionProbabilities: false,
        paper: "FORA: Fast-Forward Caching in Diffusion Transformer Acceleration (arXiv 2407.01425)",
        repository: "prathebaselva/FORA",
        summary: "Recompute all blocks every N steps and reuse their pre-gate attention and MLP outputs, with fresh gates, in between.")

    public struct Parameters: Sendable, Equatable {
        /// S, sampler steps; the DiT loop passes i = S−1 … 0 (counts DOWN).
        public var numSteps: Int
        /// N (`--cache-threshold`).
        public var interval: Int
        /// Blocks per step (DiT-XL/2: 28).
        public var numLayers: Int

        /// Defaults: the README/paper setting, DDPM-250 with N = 3 on DiT-XL/2 (28 blocks). The
        /// argparse default `--cache-threshold 98` is not the paper method.
        public init(numSteps: Int = 250, interval: Int = 3, numLayers: Int = 28) {
            self.numSteps = numSteps
            self.interval = interval
            self.numLayers = numLayers
        }

        public func validated() throws -> Parameters {
            guard numSteps >= 1 else { throw CompressionError.invalidParameter("FORA numSteps must be ≥ 1, got \(numSteps)") }
            guard interval >= 1 else { throw CompressionError.invalidParameter("FORA interval must be ≥ 1, got \(interval)") }
            guard numLayers >= 1 else { throw CompressionError.invalidParameter("FORA numLayers must be ≥ 1, got \(numLayers)") }
            return self
        }
    }

    /// Step index passed at each sampler call, in call order: S−1 down to 0.
    public static func stepIndices(_ p: Parameters) -> [Int] { Array((0..<p.numSteps).reversed()) }

    /// Whether the blocks recompute at step `i`: `i == S−1 or i mod N == 0`, on the absolute
    /// downward index (not a count since the last compute). So the last call (i = 0) always
    /// computes, and when S−1 is not a multiple of N the first two computes can be adjacent
    /// (S = 50, N = 4: i = 49 forced, then i = 48). The same for every block.
    public static func computes(step i: Int, parameters p: Parameters) -> Bool {
        i == p.numSteps - 1 || i % p.interval == 0
    }

    /// The run's decisions in the core's vocabulary (modules attn, mlp).
    public static func schedule(_ parameters: Parameters) throws -> CacheSchedule {
        let p = try parameters.validated()
        let actions = stepIndices(p).map { i -> [[CacheAction]] in
            let a: CacheAction = computes(step: i, parameters: p) ? .compute : .reuse
            return Array(repeating: [a, a], count: p.numLayers)
        }
        return CacheSchedule(moduleNames: ["attn", "mlp"], actions: actions)
    }

    /// One DiT block under FORA at step `i`:
    /// `x += gate_msa · A;  x += gate_mlp · M`, with A = `attention(x)` and M = `mlp(x)` computed
    /// and stored (pre-gate) on compute steps, and the stored ones on reuse steps. The closures get
    /// the current residual stream and do norm + modulate + module themselves. `x` is
    /// `[tokens, width]`, gates are `[width]`. Throws on a reuse step whose cache was never filled.
    public static func block(_ x: Tensor, layer: Int, step i: Int, gateMSA: Tensor, gateMLP: Tensor,
                             parameters: Parameters, cache: inout TokenFeatureCache,
                             attention: (Tensor) throws -> Tensor, mlp: (Tensor) throws -> Tensor) throws -> Tensor {
        let p = try parameters.validated()
        guard x.rank == 2, gateMSA.count == x.columns, gateMLP.count == x.columns else {
            throw CompressionError.shapeMismatch("FORA block: x \(x.shape), gates \(gateMSA.shape) / \(gateMLP.shape)")
        }
        guard (0..<p.numSteps).contains(i), (0..<p.numLayers).contains(layer) else {
            throw CompressionError.invalidParameter("FORA block: step \(i) / layer \(layer) outside 0..<\(p.numSteps) / 0..<\(p.numLayers)")
        }
        let attnSlot = TokenFeatureCache.Slot(layer: layer, module: "attn")
        let mlpSlot = TokenFeatureCache.Slot(layer: layer, module: "mlp")
        let compute = computes(step: i, parameters: p)
        var h = x
        let a: Tensor
        if compute {
            a = try attention(h)
            try cache.store([a], at: attnSlot)
        } else {
            a = try cache.read(attnSlot)[0]
        }
        h = try gatedAdd(h, gateMSA, a)
        let m: Tensor
        if compute {
            m = try mlp(h)
            try cache.store([m], at: mlpSlot)
        } else {
            m = try cache.read(mlpSlot)[0]
        }
        return try gatedAdd(h, gateMLP, m)
    }

    /// `x + gate · y` with the gate broadcast over tokens (product first, then the add, in float32).
    private static func gatedAdd(_ x: Tensor, _ gate: Tensor, _ y: Tensor) throws -> Tensor {
        guard y.shape == x.shape else { throw CompressionError.shapeMismatch("FORA: module output \(y.shape) for x \(x.shape)") }
        return try x + y.multiplyingRowVector(gate)
    }
}
