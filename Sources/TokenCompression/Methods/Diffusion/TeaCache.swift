import Tensors

/// TeaCache: skip the whole block stack while the accumulated, rescaled change of the
/// timestep-modulated input stays below a threshold; reuse the stack's cached residual instead.
///
/// Criterion: relative L1 distance `δ = mean|m_t − m_{t−1}| / mean|m_{t−1}|` of the first block's
/// modulated input between consecutive calls, rescaled by a per-model polynomial fitted offline
/// (input change → output change) and accumulated. Strategy: reuse — on a skipped call the output
/// is `h_in + previous_residual`, the residual of the most recent computed call.
/// Follows `TeaCache4FLUX/teacache_flux.py` and `eval/teacache/experiments/{opensora,latte}.py`.
public struct TeaCache {
    public static let info = MethodInfo(
        name: "teacache",
        displayName: "TeaCache",
        domain: .diffusion,
        families: [.cache],
        placement: .everyDiffusionStep,
        signals: [.hiddenStates, .timestep, .moduleOutputs],
        needsAttentionProbabilities: false,
        paper: "Timestep Embedding Tells: It's Time to Cache for Video Diffusion Model (CVPR 2025, arXiv 2411.19108)",
        repository: "ali-vilab/TeaCache",
        summary: "Skip all blocks while the accumulated polynomial-rescaled relative L1 change of the modulated input stays below a threshold; reuse the cached residual.")

    public struct Parameters: Sendable, Equatable {
        /// Skip while the accumulated rescaled distance is `< relL1Threshold`.
        public var relL1Threshold: Double
        /// Polynomial coefficients, highest degree first (`numpy.poly1d`), as shipped per model.
        public var coefficients: [Double]

        /// Defaults: the FLUX script (`rel_l1_thresh = 0.6`, ≈2.0× on FLUX.1-dev, 28 steps).
        public init(relL1Threshold: Double = 0.6, coefficients: [Double] = TeaCache.fluxCoefficients) throws {
            self.relL1Threshold = relL1Threshold
            self.coefficients = coefficients
            try validate()
        }

        /// FLUX (also TangoFlux): 0.25 → 1.5×, 0.4 → 1.8×, 0.6 → 2.0×, 0.8 → 2.25×.
        public static func flux(threshold: Double = 0.6) throws -> Parameters { try Parameters(relL1Threshold: threshold, coefficients: fluxCoefficients) }
        /// Open-Sora 1.2: 0.1 (slow) / 0.2 (fast).
        public static func openSora(threshold: Double = 0.1) throws -> Parameters { try Parameters(relL1Threshold: threshold, coefficients: openSoraCoefficients) }
        /// Latte: 0.1 (slow) / 0.2 (fast).
        public static func latte(threshold: Double = 0.1) throws -> Parameters { try Parameters(relL1Threshold: threshold, coefficients: latteCoefficients) }

        public func validate() throws {
            guard relL1Threshold.isFinite, relL1Threshold >= 0 else {
                throw CompressionError.invalidParameter("TeaCache relL1Threshold must be finite and ≥ 0, got \(relL1Threshold)")
            }
            guard !coefficients.isEmpty, coefficients.allSatisfy(\.isFinite) else {
                throw CompressionError.invalidParameter("TeaCache needs finite polynomial coefficients, got \(coefficients)")
            }
        }
    }

    public static let fluxCoefficients: [Double] = [498.651651, -283.781631, 55.8554382, -3.82021401, 0.264230861]
    public static let openSoraCoefficients: [Double] = [217.546007, -118.329252, 26.8662585, -0.0459364272, 0.0484426240]
    public static let latteCoefficients: [Double] = [-2464.34137, 308.044764, 80.7447667, -4.11385132, 0.111001402]

    /// `np.poly1d(coefficients)(x)`: Horner's scheme in float64 starting from 0.
    public static func rescale(_ x: Double, coefficients: [Double]) -> Double {
        coefficients.reduce(0.0) { $0 * x + $1 }
    }

    /// `mean|current − previous| / mean|previous|` over all elements; each mean rounded to float32
    /// and the quotient taken in float32, then handed to Python as a float (`.item()`).
    public static func relativeL1(current: Tensor, previous: Tensor) throws -> Float {
        guard current.shape == previous.shape, current.count > 0 else {
            throw CompressionError.shapeMismatch("TeaCache indicator \(current.shape) vs previous \(previous.shape)")
        }
        var diff = 0.0, base = 0.0
        current.withUnsafeBufferPointer { c in
            previous.withUnsafeBufferPointer { p in
                for i in 0..<c.count {
                    diff += Double(abs(c[i] - p[i]))
                    base += Double(abs(p[i]))
                }
            }
        }
        let n = Double(current.count)
        return Float(diff / n) / Float(base / n)
    }

    /// Which calls are forced computes (`acc` reset, no distance evaluated).
    public enum Forcing {
        /// FLUX: class counter `cnt`, forced at `cnt == 0` and `cnt == steps − 1`, wrapping after `steps` calls.
        public static func counter(calls: Int, steps: Int) throws -> [Bool] {
            guard steps >= 1, calls >= 0 else { throw CompressionError.invalidParameter("TeaCache counter with \(steps) steps") }
            return (0..<calls).map { $0 % steps == 0 || $0 % steps == steps - 1 }
        }

        /// Open-Sora / Latte: forced iff the call's timestep equals `allTimesteps[0]` or `allTimesteps.last`.
        /// Open-Sora compares the bf16-cast timestep with `int(bf16)` values, so a final timestep below
        /// 128 with a fractional bf16 value (e.g. 46.75 vs 46) is NOT forced — reproduced here.
        public static func timestepEquality(modelTimesteps: [Float], allTimesteps: [Int]) throws -> [Bool] {
            guard let first = allTimesteps.first, let last = allTimesteps.last else {
                throw CompressionError.invalidParameter("TeaCache timestep forcing needs a non-empty timestep list")
            }
            return modelTimesteps.map { $0 == Float(first) || $0 == Float(last) }
        }
    }

    /// Round a float32 to bfloat16 (nearest, ties to even), returned as float32: the model's
    /// `timestep.to(bfloat16)` cast in Open-Sora.
    public static func bfloat16(_ x: Float) -> Float {
        guard x.isFinite else { return x }
        let bits = x.bitPattern
        let rounded = bits &+ 0x7FFF &+ ((bits >> 16) & 1)
        return Float(bitPattern: rounded & 0xFFFF_0000)
    }

    /// The decision of one call.
    public struct Decision: Sendable, Equatable {
        /// The block stack runs (and refreshes the residual).
        public let compute: Bool
        /// The distance / polynomial branch ran (false on forced calls).
        public let evaluated: Bool
        public let relL1: Float
        public let rescaled: Double
        /// `acc + P(δ)`, compared with the threshold.
        public let accumulatedCompared: Double
        /// Accumulator after the call (0 after every compute).
        public let accumulatedAfter: Double
        public var action: CacheAction { compute ? .compute : .reuse }
    }

    /// The accumulate / threshold / reset rule over a sequence of distances.
    public struct Accumulator: Sendable {
        public let parameters: Parameters
        public private(set) var accumulated = 0.0
        public init(parameters: Parameters) { self.parameters = parameters }

        /// `distance` is ignored on forced calls.
        public mutating func decide(distance: Float, forced: Bool) -> Decision {
            if forced {
                accumulated = 0
                return Decision(compute: true, evaluated: false, relL1: 0, rescaled: 0, accumulatedCompared: 0, accumulatedAfter: 0)
            }
            let r = TeaCache.rescale(Double(distance), coefficients: parameters.coefficients)
            accumulated += r
            let compared = accumulated
            let compute = !(compared < parameters.relL1Threshold)
            if compute { accumulated = 0 }
            return Decision(compute: compute, evaluated: true, relL1: distance, rescaled: r, accumulatedCompared: compared,
                            accumulatedAfter: accumulated)
        }
    }

    /// TeaCache is input dependent: this is its schedule for a given sequence of per-call distances
    /// (`distances[k]` = δ between call k and k−1, unused on forced calls).
    public static func decisions(distances: [Float], forced: [Bool], parameters: Parameters) throws -> [Decision] {
        try parameters.validate()
        guard distances.count == forced.count else {
            throw CompressionError.shapeMismatch("TeaCache: \(distances.count) distances for \(forced.count) forcing flags")
        }
        guard forced.first ?? true else {
            throw CompressionError.invalidParameter("TeaCache: the first call must be forced (no previous input, no residual)")
        }
        var acc = Accumulator(parameters: parameters)
        return zip(distances, forced).map { acc.decide(distance: $0, forced: $1) }
    }

    /// The cache schedule for a distance sequence: every layer of the stack shares the call's action
    /// (module `blocks`: `.compute` or `.reuse` of the residual).
    public static func schedule(distances: [Float], forced: [Bool], layers: Int, parameters: Parameters) throws -> CacheSchedule {
        guard layers >= 1 else { throw CompressionError.invalidParameter("TeaCache schedule needs ≥ 1 layer, got \(layers)") }
        let d = try decisions(distances: distances, forced: forced, parameters: parameters)
        return CacheSchedule(moduleNames: ["blocks"], actions: d.map { Array(repeating: [$0.action], count: layers) })
    }

    /// The whole per-model state (`previous_modulated_input`, accumulator, `previous_residual`).
    /// Never reuses a residual that was never stored, and never evaluates a distance without a
    /// previous input: both throw.
    public struct State: Sendable {
        public private(set) var accumulator: Accumulator
        public private(set) var previousIndicator: Tensor?
        public private(set) var previousResidual: Tensor?

        public init(parameters: Parameters) throws {
            try parameters.validate()
            accumulator = Accumulator(parameters: parameters)
        }

        /// One call: `indicator` = modulated input of the first block, `input` = hidden state entering
        /// the stack, `compute(input)` = the stack's output when it runs. Returns the decision and the
        /// stack output used.
        public mutating func step(indicator: Tensor, input: Tensor, forced: Bool,
                                  compute: (Tensor) throws -> Tensor) throws -> (decision: Decision, output: Tensor) {
            var distance: Float = 0
            if !forced {
                guard let previous = previousIndicator else {
                    throw CompressionError.missingSignal("TeaCache: distance asked at the first call (no previous modulated input); force the first call")
                }
                distance = try TeaCache.relativeL1(current: indicator, previous: previous)
            }
            let decision = accumulator.decide(distance: distance, forced: forced)
            // previous_modulated_input is updated on every call, skipped or not.
            previousIndicator = indicator
            if decision.compute {
                let output = try compute(input)
                guard output.shape == input.shape else {
                    throw CompressionError.shapeMismatch("TeaCache stack output \(output.shape) vs input \(input.shape)")
                }
                previousResidual = try output - input
                return (decision, output)
            }
            guard let residual = previousResidual else {
                throw CompressionError.missingSignal("TeaCache: skip before any computed call (no residual cached)")
            }
            guard residual.shape == input.shape else {
                throw CompressionError.shapeMismatch("TeaCache residual \(residual.shape) vs input \(input.shape)")
            }
            return (decision, try input + residual)
        }
    }
}
