import Tensors

/// TaylorSeer: forecast a module's output at skipped steps with a truncated Taylor series.
///
/// Criterion: staleness — full steps are fixed by a counter (`interval` N) after `firstEnhance`
/// warm-up steps. Strategy: forecast — at every full step the module output and finite-difference
/// estimates of its derivatives with respect to the *step index* are kept; at the other steps the
/// output is `Σ_i D_i · x^i / i!` with `x = step − lastFullStep`.
///
/// The reference has two step conventions (spec §0.1): TaylorSeer-DiT counts the step index down
/// `S−1 … 0` (distances are negative), TaylorSeer-FLUX counts up `0 … S−1`. Both are reproduced,
/// including their different warm-up and derivative gates.
public struct TaylorSeer {
    public static let info = MethodInfo(
        name: "taylorseer",
        displayName: "TaylorSeer",
        domain: .diffusion,
        families: [.forecast, .cache],
        placement: .everyDiffusionStep,
        signals: [.moduleOutputs, .timestep],
        needsAttentionProbabilities: false,
        paper: "From Reusing to Forecasting: Accelerating Diffusion Models with TaylorSeers (ICCV 2025, arXiv 2503.06923)",
        repository: "Shenyi-Z/TaylorSeer",
        summary: "Full steps every N; in between, module outputs are forecast by a Taylor series of finite differences over the step index.")

    /// Which reference code's step index and gates are followed.
    public enum StepConvention: String, Sendable, Equatable {
        /// TaylorSeer-DiT: index counts down `S−1 … 0`, first step `S−1`.
        case dit
        /// TaylorSeer-FLUX: index counts up `0 … S−1`, first step `0`.
        case flux
    }

    public struct Parameters: Sendable, Equatable {
        /// N: after the warm-up, one full step every N calls.
        public var interval: Int
        /// m: highest derivative order kept (m + 1 factors).
        public var maxOrder: Int
        /// Number of initial calls that are always full (DiT hard-codes 2, FLUX 3).
        public var firstEnhance: Int
        public var convention: StepConvention
        /// The value `activated_steps` is seeded with before the first full step: the code
        /// hard-codes `[49]` (DiT) and `[0]` (FLUX). It only shows up as the (unused) first
        /// difference distance.
        public var seedActivatedStep: Int

        /// Defaults: the paper's DiT setting (DDIM-50, `--interval 4 --max-order 4`, first_enhance 2).
        public init(interval: Int = 4, maxOrder: Int = 4, firstEnhance: Int? = nil,
                    convention: StepConvention = .dit, seedActivatedStep: Int? = nil) throws {
            self.interval = interval
            self.maxOrder = maxOrder
            self.convention = convention
            self.firstEnhance = firstEnhance ?? (convention == .dit ? 2 : 3)
            self.seedActivatedStep = seedActivatedStep ?? (convention == .dit ? 49 : 0)
            try validate()
        }

        /// TaylorSeer-DiT defaults (interval 4, max order 4, first_enhance 2).
        public static func dit(interval: Int = 4, maxOrder: Int = 4) throws -> Parameters {
            try Parameters(interval: interval, maxOrder: maxOrder, convention: .dit)
        }

        /// TaylorSeer-FLUX `cache_init` defaults (fresh_threshold 6, max_order 1, first_enhance 3).
        public static func flux(interval: Int = 6, maxOrder: Int = 1) throws -> Parameters {
            try Parameters(interval: interval, maxOrder: maxOrder, convention: .flux)
        }

        public func validate() throws {
            guard interval >= 1 else { throw CompressionError.invalidParameter("TaylorSeer interval must be ≥ 1, got \(interval)") }
            guard maxOrder >= 0 else { throw CompressionError.invalidParameter("TaylorSeer maxOrder must be ≥ 0, got \(maxOrder)") }
            // firstEnhance ≥ 1 makes the very first call a full step, so no forecast ever reads an empty cache.
            guard firstEnhance >= 1 else {
                throw CompressionError.invalidParameter("TaylorSeer firstEnhance must be ≥ 1 (the first step must be computed), got \(firstEnhance)")
            }
        }

        /// Step indices in call order for a run of `steps` model calls.
        public func stepIndices(steps: Int) -> [Int] {
            convention == .dit ? Array((0..<steps).reversed()) : Array(0..<steps)
        }
    }

    /// What `cal_type` and the Taylor bookkeeping decide for one model call.
    public struct StepPlan: Sendable, Equatable {
        public let step: Int
        /// `.compute` (full step) or `.forecast` (Taylor step).
        public let action: CacheAction
        /// `activated_steps[-1]` after the decision: the most recent full step.
        public let activatedStep: Int
        /// `x = step − activatedStep` used by the Taylor formula (0 on full steps).
        public let forecastDistance: Int
        /// On full steps `activated_steps[-1] − activated_steps[-2]`, the finite-difference divisor; 0 otherwise.
        public let differenceDistance: Int
        /// Full step whose derivative gate is open (new orders are formed from the old factors).
        public let updatesDerivatives: Bool
        /// `taylor_cache_init` empties the module cache (only at the run's first step index).
        public let resetsCache: Bool
    }

    /// The `cal_type` state machine (counter + activated steps) for one sampling run.
    public struct Scheduler: Sendable {
        public let steps: Int
        public let parameters: Parameters
        private var counter = 0
        private var activatedSteps: [Int]

        public init(steps: Int, parameters: Parameters) throws {
            guard steps >= 1 else { throw CompressionError.invalidParameter("TaylorSeer needs ≥ 1 step, got \(steps)") }
            try parameters.validate()
            self.steps = steps
            self.parameters = parameters
            activatedSteps = [parameters.seedActivatedStep]
        }

        /// Decides the call with step index `step` (calls must come in the convention's order).
        public mutating func next(step: Int) throws -> StepPlan {
            guard (0..<steps).contains(step) else {
                throw CompressionError.invalidParameter("TaylorSeer step index \(step) outside 0..<\(steps)")
            }
            let p = parameters
            let warmUp: Bool
            let gateOpen: Bool
            switch p.convention {
            case .dit:
                // cal_type: full iff step > S − first_enhance − 1 (the first calls) or counter hit N − 1.
                warmUp = step > steps - p.firstEnhance - 1
                // derivative_approximation gate as written: step < S − first_enhance + 1.
                gateOpen = step < steps - p.firstEnhance + 1
            case .flux:
                warmUp = step < p.firstEnhance
                // FLUX gate `step > first_enhance − 2`: the update is skipped on steps 0 *and* 1,
                // not only on the first full step (conformance README correction).
                gateOpen = step > p.firstEnhance - 2
            }
            let firstStep = step == (p.convention == .dit ? steps - 1 : 0)
            if warmUp || counter == p.interval - 1 {
                counter = 0
                activatedSteps.append(step)
                let n = activatedSteps.count
                return StepPlan(step: step, action: .compute, activatedStep: step, forecastDistance: 0,
                                differenceDistance: activatedSteps[n - 1] - activatedSteps[n - 2],
                                updatesDerivatives: gateOpen, resetsCache: firstStep)
            }
            counter += 1
            let last = activatedSteps[activatedSteps.count - 1]
            return StepPlan(step: step, action: .forecast, activatedStep: last, forecastDistance: step - last,
                            differenceDistance: 0, updatesDerivatives: false, resetsCache: firstStep)
        }
    }

    /// The plan of every call of a run of `steps` calls, in call order.
    /// `stepIndices` defaults to the convention's order (DiT `S−1 … 0`, FLUX `0 … S−1`).
    public static func plan(steps: Int, parameters: Parameters, stepIndices: [Int]? = nil) throws -> [StepPlan] {
        var scheduler = try Scheduler(steps: steps, parameters: parameters)
        return try (stepIndices ?? parameters.stepIndices(steps: steps)).map { try scheduler.next(step: $0) }
    }

    /// The cache schedule `[call][layer][module]` (TaylorSeer acts on every module of every layer alike).
    public static func schedule(steps: Int, layers: Int, parameters: Parameters,
                                moduleNames: [String] = ["attn", "mlp"]) throws -> CacheSchedule {
        guard layers >= 1, !moduleNames.isEmpty else {
            throw CompressionError.invalidParameter("TaylorSeer schedule needs ≥ 1 layer and module, got \(layers) layers, \(moduleNames.count) modules")
        }
        let plans = try plan(steps: steps, parameters: parameters)
        return CacheSchedule(moduleNames: moduleNames, actions: plans.map { p in
            Array(repeating: Array(repeating: p.action, count: moduleNames.count), count: layers)
        })
    }

    /// `derivative_approximation`: new factors `D_0 = feature`, `D_{i+1} = (D_i(new) − D_i(old)) / distance`
    /// while an old `D_i` exists, `i < maxOrder` and the gate is open. Each order uses the NEW lower
    /// order and the OLD same order; the float32 difference is taken first, then divided by the integer distance.
    public static func derivativeApproximation(feature: Tensor, oldFactors: [Tensor], distance: Int,
                                               maxOrder: Int, updateDerivatives: Bool) throws -> [Tensor] {
        guard maxOrder >= 0 else { throw CompressionError.invalidParameter("TaylorSeer maxOrder must be ≥ 0, got \(maxOrder)") }
        var factors = [feature]
        guard updateDerivatives else { return factors }
        let d = Float(distance)
        for i in 0..<maxOrder {
            guard i < oldFactors.count else { break }
            guard oldFactors[i].shape == feature.shape else {
                throw CompressionError.shapeMismatch("TaylorSeer factor \(i) has shape \(oldFactors[i].shape), feature \(feature.shape)")
            }
            guard distance != 0 else {
                throw CompressionError.invalidParameter("TaylorSeer finite difference with distance 0 at order \(i + 1)")
            }
            factors.append(try (factors[i] - oldFactors[i]).map { $0 / d })
        }
        return factors
    }

    /// `taylor_formula`: `Σ_i (1/i!) · D_i · x^i`, accumulated from 0 in order; each term is
    /// `((1/i!) · D_i) · x^i` in float32 (the Python float and int scalars are cast to float32).
    public static func taylorFormula(factors: [Tensor], distance: Int) throws -> Tensor {
        guard let first = factors.first else {
            throw CompressionError.missingSignal("TaylorSeer forecast from an empty factor cache (no full step yet)")
        }
        var output = Tensor(zeros: first.shape)
        var factorial = 1.0
        var power = 1.0
        for (i, factor) in factors.enumerated() {
            if i > 0 { factorial *= Double(i); power *= Double(distance) }
            guard factor.shape == first.shape else {
                throw CompressionError.shapeMismatch("TaylorSeer factor \(i) has shape \(factor.shape), factor 0 \(first.shape)")
            }
            let c = Float(1.0 / factorial)
            let x = Float(power)
            output = try output + factor.map { ($0 * c) * x }
        }
        return output
    }

    /// The Taylor factors of one module (`cache[-1][layer][module]`). Never hands out a forecast
    /// before a full step filled it.
    public struct FactorCache: Sendable {
        public private(set) var factors: [Tensor] = []
        public let maxOrder: Int

        public init(maxOrder: Int) { self.maxOrder = maxOrder }

        public var isEmpty: Bool { factors.isEmpty }

        /// Full step: optionally reset (`taylor_cache_init`), then replace the factors by the new ones.
        public mutating func update(feature: Tensor, plan: StepPlan) throws {
            guard plan.action == .compute else {
                throw CompressionError.invalidParameter("TaylorSeer factor update on a non-full step \(plan.step)")
            }
            if plan.resetsCache { factors = [] }
            factors = try TaylorSeer.derivativeApproximation(feature: feature, oldFactors: factors, distance: plan.differenceDistance,
                                                             maxOrder: maxOrder, updateDerivatives: plan.updatesDerivatives)
        }

        /// Taylor step: the forecast output at `plan.forecastDistance`.
        public func forecast(plan: StepPlan) throws -> Tensor {
            try TaylorSeer.taylorFormula(factors: factors, distance: plan.forecastDistance)
        }
    }

    /// One module over a whole run: the plan of every call, the factor count after it and the
    /// output the block uses (computed on full steps, forecast otherwise). `compute(callIndex)` is
    /// only asked on full steps.
    public struct ModuleRun: Sendable {
        public let plans: [StepPlan]
        public let factorCounts: [Int]
        public let outputs: [Tensor]
    }

    public static func runModule(steps: Int, parameters: Parameters, stepIndices: [Int]? = nil,
                                 compute: (Int) throws -> Tensor) throws -> ModuleRun {
        let plans = try plan(steps: steps, parameters: parameters, stepIndices: stepIndices)
        var cache = FactorCache(maxOrder: parameters.maxOrder)
        var counts: [Int] = []
        var outputs: [Tensor] = []
        for (k, p) in plans.enumerated() {
            if p.action == .compute {
                let feature = try compute(k)
                try cache.update(feature: feature, plan: p)
                outputs.append(feature)
            } else {
                outputs.append(try cache.forecast(plan: p))
            }
            counts.append(cache.factors.count)
        }
        return ModuleRun(plans: plans, factorCounts: counts, outputs: outputs)
    }
}
