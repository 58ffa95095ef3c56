import Foundation
import ModelIO
import Models

/// The training noise schedule shared by diffusers' discrete schedulers: betas from
/// `beta_schedule` (or `trained_betas`), their cumulative products ᾱ_t, and the config fields every
/// scheduler reads the same way.
///
/// Computed as torch does in the schedulers' `__init__`: `linspace` in Float32 (start + i·step for
/// the first half, end − (n−1−i)·step for the second), `cumprod` accumulated in Float64 and stored
/// as Float32, so that ᾱ_t matches diffusers' table to the last bit or two.
public struct NoiseSchedule: Sendable, Equatable {
    public let trainTimesteps: Int
    public let betas: [Float]
    public let alphasCumprod: [Float]
    public let predictionType: PredictionType
    public let timestepSpacing: TimestepSpacing
    public let stepsOffset: Int

    public enum PredictionType: String, Sendable, CaseIterable { case epsilon, sample, vPrediction = "v_prediction" }
    public enum TimestepSpacing: String, Sendable, CaseIterable { case linspace, leading, trailing }

    /// Reads the shared fields; `defaultSpacing` is the scheduler class's own `timestep_spacing` default.
    init(_ file: DiffusersConfigFile, defaultSpacing: TimestepSpacing) throws {
        let r = file.reader, context = file.path
        trainTimesteps = try r.positiveInt("num_train_timesteps", default: 1000)
        let start = try r.double("beta_start", default: 0.0001), end = try r.double("beta_end", default: 0.02)
        if let trained = r.value("trained_betas") {
            guard let list = trained.arrayValue?.compactMap(\.doubleValue), list.count == trained.arrayValue?.count,
                  list.count == trainTimesteps else {
                throw ModelError("\(context): trained_betas must be a list of \(trainTimesteps) numbers")
            }
            betas = list.map { Float($0) }
        } else {
            let schedule = try r.string("beta_schedule", default: "linear")
            switch schedule {
            case "linear": betas = Self.linspace(Float(start), Float(end), trainTimesteps)
            case "scaled_linear": betas = Self.linspace(Float(start.squareRoot()), Float(end.squareRoot()), trainTimesteps).map { $0 * $0 }
            case "squaredcos_cap_v2": betas = Self.cosineBetas(trainTimesteps)
            default:
                throw ModelError("\(context): beta_schedule '\(schedule)' is not supported (linear, scaled_linear, squaredcos_cap_v2)")
            }
        }
        if try r.bool("rescale_betas_zero_snr", default: false) {
            throw ModelError("\(context): rescale_betas_zero_snr = true is not supported yet")
        }
        if try r.bool("thresholding", default: false) {
            throw ModelError("\(context): thresholding = true (dynamic thresholding) is not supported yet")
        }
        var product = 1.0
        alphasCumprod = betas.map { b in product *= Double(1 - b); return Float(product) }
        let prediction = try r.string("prediction_type", default: "epsilon")
        guard let p = PredictionType(rawValue: prediction) else {
            throw ModelError("\(context): prediction_type '\(prediction)' is not supported (epsilon, sample, v_prediction)")
        }
        predictionType = p
        let spacing = try r.string("timestep_spacing", default: defaultSpacing.rawValue)
        guard let s = TimestepSpacing(rawValue: spacing) else {
            throw ModelError("\(context): timestep_spacing '\(spacing)' is not supported (linspace, leading, trailing)")
        }
        timestepSpacing = s
        stepsOffset = try r.int("steps_offset", default: 0)
    }

    /// `torch.linspace(start, end, n, dtype=float32)`.
    static func linspace(_ start: Float, _ end: Float, _ n: Int) -> [Float] {
        guard n > 1 else { return [start] }
        let step = (end - start) / Float(n - 1)
        return (0..<n).map { i in i < n / 2 ? start + step * Float(i) : end - step * Float(n - 1 - i) }
    }

    /// `betas_for_alpha_bar(n)` with the cosine ᾱ (`squaredcos_cap_v2`), betas capped at 0.999.
    static func cosineBetas(_ n: Int) -> [Float] {
        func alphaBar(_ t: Double) -> Double { let c = cos((t + 0.008) / 1.008 * Double.pi / 2); return c * c }
        return (0..<n).map { i in Float(min(1 - alphaBar(Double(i + 1) / Double(n)) / alphaBar(Double(i) / Double(n)), 0.999)) }
    }

    /// Checks the number of sampling steps against the training schedule.
    func checkSteps(_ steps: Int, scheduler: String) throws {
        guard steps >= 1, steps <= trainTimesteps else {
            throw ModelError("\(scheduler): \(steps) inference steps; it must be between 1 and num_train_timesteps = \(trainTimesteps)")
        }
    }
}
