import Foundation
import Models
import Tensors

/// diffusers' `DPMSolverMultistepScheduler` (deterministic variants): DPM-Solver++ (the default) or
/// DPM-Solver, order 1 or 2, midpoint or Heun second-order update, `lower_order_final`.
///
/// With its defaults (`solver_order=2`, `algorithm_type="dpmsolver++"`, `final_sigmas_type="zero"`):
/// the first step is first order, the middle steps second order (multistep, from the last two x₀
/// predictions), the last step first order; below 15 steps `lower_order_final` also makes the
/// second-to-last step second order without the third-order option (order 3 is not implemented here).
public struct DPMSolverMultistepScheduler: DiffusionScheduler {
    public let className = "DPMSolverMultistepScheduler"
    public let schedule: NoiseSchedule
    public let order: Int
    public let plusPlus: Bool
    public let heun: Bool
    public let lowerOrderFinal: Bool
    public let eulerAtFinal: Bool
    public let finalSigmaZero: Bool
    public private(set) var timesteps: [Float] = []
    public var initNoiseSigma: Float { 1 }
    /// σ_t = √((1 − ᾱ)/ᾱ) per sampling step, plus the final σ (0 or σ_min).
    public private(set) var sigmas: [Float] = []
    private var outputs: [Tensor] = []
    private var lowerOrderCount = 0

    public init(config file: DiffusersConfigFile) throws {
        let r = file.reader, context = file.path
        schedule = try NoiseSchedule(file, defaultSpacing: .linspace)
        order = try r.positiveInt("solver_order", default: 2)
        guard order <= 2 else { throw ModelError("\(context): solver_order \(order) is not supported (1 or 2)") }
        let algorithm = try r.string("algorithm_type", default: "dpmsolver++")
        guard ["dpmsolver++", "dpmsolver", "deis"].contains(algorithm) else {
            throw ModelError("\(context): algorithm_type '\(algorithm)' is not supported (dpmsolver++, dpmsolver; the SDE variants need torch's noise)")
        }
        plusPlus = algorithm != "dpmsolver"  // diffusers maps 'deis' to dpmsolver++
        let solver = try r.string("solver_type", default: "midpoint")
        guard ["midpoint", "heun", "logrho", "bh1", "bh2"].contains(solver) else {
            throw ModelError("\(context): solver_type '\(solver)' is not supported (midpoint, heun)")
        }
        heun = solver == "heun"
        lowerOrderFinal = try r.bool("lower_order_final", default: true)
        eulerAtFinal = try r.bool("euler_at_final", default: false)
        let finalType = try r.string("final_sigmas_type", default: "zero")
        guard finalType == "zero" || finalType == "sigma_min" else {
            throw ModelError("\(context): final_sigmas_type '\(finalType)' is not supported (zero, sigma_min)")
        }
        guard plusPlus || finalType != "zero" else {
            throw ModelError("\(context): final_sigmas_type 'zero' needs algorithm_type dpmsolver++ (diffusers refuses it too)")
        }
        finalSigmaZero = finalType == "zero"
        for flag in ["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas", "use_flow_sigmas", "use_dynamic_shifting"]
        where try r.bool(flag, default: false) {
            throw ModelError("\(context): \(flag) = true is not supported yet")
        }
        if let variance = r.value("variance_type"), !variance.isNull {
            throw ModelError("\(context): variance_type \(variance) is not supported (DiTPipeline already drops the learned variance)")
        }
        if let clip = r.value("lambda_min_clipped")?.doubleValue, clip.isFinite {
            throw ModelError("\(context): a finite lambda_min_clipped (\(clip)) is not supported yet")
        }
    }

    public mutating func setTimesteps(_ steps: Int) throws {
        try schedule.checkSteps(steps, scheduler: className)
        let n = schedule.trainTimesteps, last = n  // lambda_min_clipped = -inf keeps every training step
        let ts: [Int]
        switch schedule.timestepSpacing {
        case .linspace:
            // np.linspace(0, last − 1, steps + 1).round()[::-1][:-1]
            ts = (1...steps).reversed().map { i in Int((Double(last - 1) * Double(i) / Double(steps)).rounded(.toNearestOrEven)) }
        case .leading:
            let ratio = last / (steps + 1)
            ts = (1...steps).reversed().map { $0 * ratio + schedule.stepsOffset }
        case .trailing:
            ts = DiffusionTimesteps.trailing(from: last, count: n, ratio: Double(n) / Double(steps)).map { $0 - 1 }
        }
        if let bad = ts.first(where: { $0 < 0 || $0 >= n }) {
            throw ModelError("\(className): timestep \(bad) is outside 0..<\(n) (check steps_offset = \(schedule.stepsOffset))")
        }
        let trainSigmas = schedule.alphasCumprod.map { a in ((1 - a) / a).squareRoot() }
        sigmas = ts.map { trainSigmas[$0] } + [finalSigmaZero ? 0 : trainSigmas[0]]
        timesteps = ts.map(Float.init)
        outputs = []
        lowerOrderCount = 0
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    /// (α_t, σ_t) of a σ: α = 1/√(σ² + 1), σ_t = σ·α.
    private func alphaSigma(_ sigma: Float) -> (Float, Float) {
        let alpha = 1 / (sigma * sigma + 1).squareRoot()
        return (alpha, sigma * alpha)
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) throws -> Tensor {
        let count = timesteps.count
        guard index >= 0, index < count else { throw ModelError("\(className): step \(index) of \(count)") }
        let finalLower = index == count - 1 && (eulerAtFinal || (lowerOrderFinal && count < 15) || finalSigmaZero)
        // (`lower_order_second` only matters for order 3: with order ≤ 2 that step is second order anyway.)
        let converted = try convert(modelOutput, index: index, sample: sample)
        outputs.append(converted)
        if outputs.count > order { outputs.removeFirst() }

        let (alphaT, sigmaT) = alphaSigma(sigmas[index + 1])
        let (alphaS0, sigmaS0) = alphaSigma(sigmas[index])
        let lambdaT = logf(alphaT) - logf(sigmaT), lambdaS0 = logf(alphaS0) - logf(sigmaS0)
        let h = lambdaT - lambdaS0
        let result: Tensor
        if order == 1 || lowerOrderCount < 1 || finalLower {
            result = plusPlus
                ? try sample.combined(sigmaT / sigmaS0, converted, -(alphaT * (expf(-h) - 1)))
                : try sample.combined(alphaT / alphaS0, converted, -(sigmaT * (expf(h) - 1)))
        } else {
            let (alphaS1, sigmaS1) = alphaSigma(sigmas[index - 1])
            let lambdaS1 = logf(alphaS1) - logf(sigmaS1)
            let m0 = outputs[outputs.count - 1], m1 = outputs[outputs.count - 2]
            let r0 = (lambdaS0 - lambdaS1) / h
            let d1 = try m0.combined(1, m1, -1).scaled(by: 1 / r0)  // (1/r0)·(m0 − m1), in torch's order
            if plusPlus {
                let c = alphaT * (expf(-h) - 1)
                let d1Coefficient = heun ? alphaT * ((expf(-h) - 1) / h + 1) : -0.5 * c
                result = try sample.combined(sigmaT / sigmaS0, m0, -c).combined(1, d1, d1Coefficient)
            } else {
                let c = sigmaT * (expf(h) - 1)
                let d1Coefficient = heun ? -(sigmaT * ((expf(h) - 1) / h - 1)) : -0.5 * c
                result = try sample.combined(alphaT / alphaS0, m0, -c).combined(1, d1, d1Coefficient)
            }
        }
        if lowerOrderCount < order { lowerOrderCount += 1 }
        return result
    }

    /// `convert_model_output`: the x₀ prediction (DPM-Solver++) or the noise prediction (DPM-Solver).
    private func convert(_ output: Tensor, index: Int, sample: Tensor) throws -> Tensor {
        let (alpha, sigma) = alphaSigma(sigmas[index])
        switch (plusPlus, schedule.predictionType) {
        case (true, .epsilon): return try sample.removing(sigma, of: output, dividedBy: alpha)
        case (true, .sample): return output
        case (true, .vPrediction): return try sample.combined(alpha, output, -sigma)
        case (false, .epsilon): return output
        case (false, .sample): return try sample.removing(alpha, of: output, dividedBy: sigma)
        case (false, .vPrediction): return try output.combined(alpha, sample, sigma)
        }
    }
}
