import Foundation
import Models
import Tensors

/// diffusers' `EulerDiscreteScheduler` without churn (`s_churn = 0`, deterministic), linear σ
/// interpolation, discrete timesteps.
///
/// Its model input is `x / √(σ² + 1)` and its timesteps may be fractional (linspace spacing). diffusers'
/// `DiTPipeline` does not multiply the starting noise by `init_noise_sigma`; the pipeline here follows it.
public struct EulerDiscreteScheduler: DiffusionScheduler {
    public let className = "EulerDiscreteScheduler"
    public let schedule: NoiseSchedule
    public let finalSigmaZero: Bool
    public private(set) var timesteps: [Float] = []
    public private(set) var sigmas: [Float] = []

    public var initNoiseSigma: Float {
        let m = sigmas.max() ?? 1
        return schedule.timestepSpacing == .leading ? (m * m + 1).squareRoot() : m
    }

    public init(config file: DiffusersConfigFile) throws {
        let r = file.reader, context = file.path
        schedule = try NoiseSchedule(file, defaultSpacing: .linspace)
        let interpolation = try r.string("interpolation_type", default: "linear")
        guard interpolation == "linear" else { throw ModelError("\(context): interpolation_type '\(interpolation)' is not supported (linear)") }
        let type = try r.string("timestep_type", default: "discrete")
        guard type == "discrete" else { throw ModelError("\(context): timestep_type '\(type)' is not supported (discrete)") }
        for flag in ["use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas"] where try r.bool(flag, default: false) {
            throw ModelError("\(context): \(flag) = true is not supported yet")
        }
        let finalType = try r.string("final_sigmas_type", default: "zero")
        guard finalType == "zero" || finalType == "sigma_min" else {
            throw ModelError("\(context): final_sigmas_type '\(finalType)' is not supported (zero, sigma_min)")
        }
        finalSigmaZero = finalType == "zero"
    }

    public mutating func setTimesteps(_ steps: Int) throws {
        try schedule.checkSteps(steps, scheduler: className)
        let n = schedule.trainTimesteps
        let ts: [Double]
        switch schedule.timestepSpacing {
        case .linspace:
            ts = (0..<steps).reversed().map { i in Double(Float(Double(n - 1) * Double(i) / Double(max(steps - 1, 1)))) }
        case .leading:
            ts = (0..<steps).reversed().map { Double($0 * (n / steps) + schedule.stepsOffset) }
        case .trailing:
            ts = DiffusionTimesteps.trailing(from: n, count: n, ratio: Double(n) / Double(steps)).map { Double($0 - 1) }
        }
        if let bad = ts.first(where: { $0 < 0 || $0 > Double(n - 1) }) {
            throw ModelError("\(className): timestep \(bad) is outside 0...\(n - 1) (check steps_offset = \(schedule.stepsOffset))")
        }
        let train = schedule.alphasCumprod.map { a in Double(((1 - a) / a).squareRoot()) }
        // np.interp over the training σ.
        sigmas = ts.map { t in
            let lo = Int(t.rounded(.down)), hi = min(lo + 1, n - 1), w = t - Double(lo)
            return Float(train[lo] + w * (train[hi] - train[lo]))
        } + [finalSigmaZero ? 0 : Float(train[0])]
        timesteps = ts.map { Float($0) }
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor {
        let s = sigmas[index]
        let d = (s * s + 1).squareRoot()
        return sample.map { $0 / d }
    }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) throws -> Tensor {
        guard index >= 0, index < timesteps.count else { throw ModelError("\(className): step \(index) of \(timesteps.count)") }
        let sigma = sigmas[index]
        let x0: Tensor
        switch schedule.predictionType {
        case .sample: x0 = modelOutput
        case .epsilon: x0 = try sample.combined(1, modelOutput, -sigma)
        case .vPrediction:
            let s2 = sigma * sigma + 1
            x0 = try modelOutput.combined(-sigma / s2.squareRoot(), sample.map { $0 / s2 }, 1)
        }
        // derivative = (x − x₀)/σ; x_prev = x + derivative · (σ_next − σ)
        let derivative = try sample.combined(1, x0, -1).map { $0 / sigma }
        return try sample.combined(1, derivative, sigmas[index + 1] - sigma)
    }
}
