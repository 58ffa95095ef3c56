import Foundation
import ModelIO
import Models
import Tensors

/// A diffusers sampler as the pipelines drive it: `setTimesteps`, then per step `scaleModelInput`,
/// the model, `step`. One latent `[C, H, W]` at a time (the pipelines' batch rows step identically).
public protocol DiffusionScheduler: Sendable {
    /// The diffusers class name (`DDIMScheduler`, ...).
    var className: String { get }
    /// The timestep of each sampling step, in call order, as the model receives it (Euler's are fractional).
    var timesteps: [Float] { get }
    /// Multiplies the starting noise (1 for the DDPM family, σ_max-based for Euler); DiTPipeline does not apply it.
    var initNoiseSigma: Float { get }
    mutating func setTimesteps(_ steps: Int) throws
    /// The model's input at step `index` (Euler divides by √(σ² + 1); the others return `sample`).
    func scaleModelInput(_ sample: Tensor, index: Int) -> Tensor
    /// The previous sample from the model output at step `index`; `noise` gives N(0, 1) noise when the
    /// sampler is stochastic (DDPM).
    mutating func step(_ modelOutput: Tensor, index: Int, sample: Tensor, noise: () -> Tensor) throws -> Tensor
}

/// Builds the scheduler a pipeline's `scheduler/scheduler_config.json` names.
public enum DiffusionSchedulers {
    /// Supported class names and their builders.
    public static let builders: [String: (DiffusersConfigFile) throws -> any DiffusionScheduler] = [
        "DDIMScheduler": { try DDIMScheduler(config: $0) },
        "DPMSolverMultistepScheduler": { try DPMSolverMultistepScheduler(config: $0) },
        "DDPMScheduler": { try DDPMScheduler(config: $0) },
        "EulerDiscreteScheduler": { try EulerDiscreteScheduler(config: $0) },
    ]

    /// The scheduler of `file`'s `_class_name`, or of `className` when given (diffusers'
    /// `OtherScheduler.from_config(pipe.scheduler.config)`: the same fields, the other class's defaults).
    public static func make(config file: DiffusersConfigFile, className: String? = nil) throws -> any DiffusionScheduler {
        guard let name = className ?? file.className else {
            throw ModelError("\(file.path): no _class_name says which scheduler this is")
        }
        guard let build = builders[name] else {
            throw ModelError("\(file.path): unknown scheduler '\(name)' (supported: \(builders.keys.sorted().joined(separator: ", ")))")
        }
        return try build(file)
    }
}

extension Tensor {
    /// `a · self + b · other` element-wise (same shape): the schedulers' update rules, in Float32 as torch.
    func combined(_ a: Float, _ other: Tensor, _ b: Float) throws -> Tensor {
        guard shape == other.shape else { throw ModelError("scheduler: sample \(shape) vs model output \(other.shape)") }
        var out = self
        out.withUnsafeMutableBufferPointer { o in
            other.withUnsafeBufferPointer { y in for i in 0..<o.count { o[i] = a * o[i] + b * y[i] } }
        }
        return out
    }

    /// `(self − b · other) / a` element-wise, written as torch evaluates it (the x₀ prediction from ε).
    func removing(_ b: Float, of other: Tensor, dividedBy a: Float) throws -> Tensor {
        guard shape == other.shape else { throw ModelError("scheduler: sample \(shape) vs model output \(other.shape)") }
        var out = self
        out.withUnsafeMutableBufferPointer { o in
            other.withUnsafeBufferPointer { y in for i in 0..<o.count { o[i] = (o[i] - b * y[i]) / a } }
        }
        return out
    }
}
