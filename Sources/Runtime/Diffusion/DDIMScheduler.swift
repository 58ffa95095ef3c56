import Foundation
import Models
import Tensors

/// diffusers' `DDIMScheduler` with η = 0 (deterministic), as `DiTPipeline` calls it.
///
/// Quirk kept from diffusers: the previous timestep is `t − num_train_timesteps / steps` (integer
/// division) whatever `timestep_spacing` chose, so with `linspace` or `trailing` spacing the step
/// does not land exactly on the next listed timestep.
public struct DDIMScheduler: DiffusionScheduler {
    public let className = "DDIMScheduler"
    public let schedule: NoiseSchedule
    public let clipSample: Bool
    public let clipSampleRange: Float
    /// ᾱ after the last step: 1 with `set_alpha_to_one`, else ᾱ_0.
    public let finalAlphaCumprod: Float
    public private(set) var timesteps: [Float] = []
    public var initNoiseSigma: Float { 1 }
    private var steps = 0

    public init(config file: DiffusersConfigFile) throws {
        schedule = try NoiseSchedule(file, defaultSpacing: .leading)
        clipSample = try file.reader.bool("clip_sample", default: true)
        clipSampleRange = Float(try file.reader.double("clip_sample_range", default: 1))
        finalAlphaCumprod = try file.reader.bool("set_alpha_to_one", default: true) ? 1 : schedule.alphasCumprod[0]
    }

    public mutating func setTimesteps(_ steps: Int) throws {
        try schedule.checkSteps(steps, scheduler: className)
        self.steps = steps
        let ts = try DiffusionTimesteps.ddpmGrid(schedule, steps: steps, scheduler: className)
        timesteps = ts.map(Float.init)
    }

    public func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor { sample }

    public mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) throws -> Tensor {
        guard index >= 0, index < timesteps.count else { throw ModelError("\(className): step \(index) of \(timesteps.count)") }
        let t = Int(timesteps[index])
        let prev = t - schedule.trainTimesteps / steps
        let a = schedule.alphasCumprod[t]
        let aPrev = prev >= 0 ? schedule.alphasCumprod[prev] : finalAlphaCumprod
        let b = 1 - a
        var x0: Tensor, eps: Tensor
        switch schedule.predictionType {
        case .epsilon:
            x0 = try sample.removing(b.squareRoot(), of: modelOutput, dividedBy: a.squareRoot())
            eps = modelOutput
        case .sample:
            x0 = modelOutput
            eps = try sample.removing(a.squareRoot(), of: modelOutput, dividedBy: b.squareRoot())
        case .vPrediction:
            x0 = try sample.combined(a.squareRoot(), modelOutput, -b.squareRoot())
            eps = try modelOutput.combined(a.squareRoot(), sample, b.squareRoot())
        }
        if clipSample { x0 = x0.map { min(max($0, -clipSampleRange), clipSampleRange) } }
        // η = 0: σ_t = 0, so the direction term is √(1 − ᾱ_prev) · ε.
        return try x0.combined(aPrev.squareRoot(), eps, (1 - aPrev).squareRoot())
    }
}

/// Timestep grids shared by the schedulers.
enum DiffusionTimesteps {
    /// The DDPM / DDIM grid of `steps` integer timesteps, largest first, by `timestep_spacing`.
    static func ddpmGrid(_ schedule: NoiseSchedule, steps: Int, scheduler: String) throws -> [Int] {
        let n = schedule.trainTimesteps
        let ts: [Int]
        switch schedule.timestepSpacing {
        case .linspace:
            ts = (0..<steps).reversed().map { i in Int((Double(n - 1) * Double(i) / Double(max(steps - 1, 1))).rounded(.toNearestOrEven)) }
        case .leading:
            let ratio = n / steps
            ts = (0..<steps).reversed().map { $0 * ratio + schedule.stepsOffset }
        case .trailing:
            ts = trailing(from: n, count: n, ratio: Double(n) / Double(steps)).map { $0 - 1 }
        }
        if let bad = ts.first(where: { $0 < 0 || $0 >= n }) {
            throw ModelError("\(scheduler): timestep \(bad) is outside 0..<\(n) (check steps_offset = \(schedule.stepsOffset))")
        }
        return ts
    }

    /// `np.round(np.arange(start, 0, -ratio))` (round half to even), before the schedulers subtract 1.
    static func trailing(from start: Int, count: Int, ratio: Double) -> [Int] {
        var out: [Int] = []
        var v = Double(start)
        var i = 0
        while v > 0 {
            out.append(Int(v.rounded(.toNearestOrEven)))
            i += 1
            v = Double(start) - Double(i) * ratio
        }
        return out
    }
}
