import Foundation
import Models
import Tensors

/// diffusers' `DDPMScheduler` (ancestral sampling) with a fixed variance (`fixed_small`, the default,
/// or `fixed_large`).
///
/// It is stochastic: each step but the last adds `σ_t · z` with fresh noise `z`. The noise here comes
/// from the pipeline's seeded generator, not torch's, so runs are reproducible but not equal to
/// diffusers' (which is why the parity fixtures use DDIM and DPM-Solver++).
public struct DDPMScheduler: DiffusionScheduler {
    public let className = "DDPMScheduler"
    public let schedule: NoiseSchedule
    public let clipSample: Bool
    public let clipSampleRange: Float
    public let fixedLarge: Bool
    public private(set) var timesteps: [Float] = []
    public var initNoiseSigma: Float { 1 }
    private var steps = 0

    public init(config file: DiffusersConfigFile) throws {
        let r = file.reader, context = file.path
        schedule = try NoiseSchedule(file, defaultSpacing: .leading)
        clipSample = try r.bool("clip_sample", default: true)
        clipSampleRange = Float(try r.double("clip_sample_range", default: 1))
        let variance = try r.string("variance_type", default: "fixed_small")
        guard variance == "fixed_small" || variance == "fixed_large" else {
            throw ModelError("\(context): variance_type '\(variance)' is not supported (fixed_small, fixed_large; DiTPipeline passes only the noise channels)")
        }
        fixedLarge = variance == "fixed_large"
    }

    public mutating func setTimesteps(_ steps: Int) throws {
        try schedule.checkSteps(steps, scheduler: className)
        self.steps = steps
        timesteps = try DiffusionTimesteps.ddpmGrid(schedule, steps: steps, scheduler: className).map(Float.init)
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) throws -> Tensor {
        guard index >= 0, index < timesteps.count else { throw ModelError("\(className): step \(index) of \(timesteps.count)") }
        let t = Int(timesteps[index])
        let prev = t - schedule.trainTimesteps / steps
        let a = schedule.alphasCumprod[t]
        let aPrev = prev >= 0 ? schedule.alphasCumprod[prev] : 1
        let b = 1 - a, bPrev = 1 - aPrev
        let currentAlpha = a / aPrev, currentBeta = 1 - currentAlpha
        var x0: Tensor
        switch schedule.predictionType {
        case .epsilon: x0 = try sample.removing(b.squareRoot(), of: modelOutput, dividedBy: a.squareRoot())
        case .sample: x0 = modelOutput
        case .vPrediction: x0 = try sample.combined(a.squareRoot(), modelOutput, -b.squareRoot())
        }
        if clipSample { x0 = x0.map { min(max($0, -clipSampleRange), clipSampleRange) } }
        let x0Coefficient = aPrev.squareRoot() * currentBeta / b
        let sampleCoefficient = currentAlpha.squareRoot() * bPrev / b
        var mean = try x0.combined(x0Coefficient, sample, sampleCoefficient)
        if t > 0 {
            let variance = fixedLarge ? currentBeta : max(bPrev / b * currentBeta, 1e-20)
            let z = noise()
            mean = try mean.combined(1, z, variance.squareRoot())
        }
        return mean
    }
}
