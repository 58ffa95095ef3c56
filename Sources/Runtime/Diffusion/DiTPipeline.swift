import Foundation
import ModelIO
import Models
import Tensors
import TokenCompression

/// diffusers' `DiTPipeline` on a pipeline folder as `save_pretrained` writes it (`model_index.json`,
/// `transformer/`, `vae/`, `scheduler/`): class-conditional sampling with classifier-free guidance,
/// then the VAE decode to an RGB image.
///
/// Guidance follows DiTPipeline: only when the scale is > 1, the batch is [conditional, null class],
/// the guided noise `uncond + g·(cond − uncond)` replaces the first `in_channels` output channels (the
/// noise prediction; the learned variance channels are dropped before the scheduler step). The null
/// class is `num_embeds_ada_norm` (DiTPipeline hard-codes 1000, the value of every DiT checkpoint).
public final class DiTPipeline: @unchecked Sendable {
    public let folder: String
    public let transformer: DiTTransformer
    public let vae: VAEDecoder
    public let schedulerConfig: DiffusersConfigFile

    public init(folder: String) throws {
        self.folder = folder
        let root = URL(fileURLWithPath: folder)
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError("\(folder): no such folder (expected a diffusers pipeline folder)")
        }
        let index = try DiffusersConfigFile(path: root.appendingPathComponent("model_index.json").path)
        if let name = index.className, name != "DiTPipeline" {
            throw ModelError("\(index.path): _class_name '\(name)' is not supported (expected DiTPipeline)")
        }
        for component in ["transformer", "vae", "scheduler"] where index.reader.value(component) == nil {
            throw ModelError("\(index.path): no '\(component)' component")
        }
        transformer = try DiTTransformer(folder: root.appendingPathComponent("transformer").path)
        vae = try VAEDecoder(folder: root.appendingPathComponent("vae").path)
        schedulerConfig = try DiffusersConfigFile(path: root.appendingPathComponent("scheduler/scheduler_config.json").path)
        guard transformer.config.inChannels == vae.config.latentChannels else {
            throw ModelError("\(folder): the transformer takes \(transformer.config.inChannels) latent channels, the VAE decodes \(vae.config.latentChannels)")
        }
        // Fails early (before any sampling) on an unknown or unsupported scheduler.
        _ = try DiffusionSchedulers.make(config: schedulerConfig)
    }

    /// `[C, H, W]` of the latents the transformer samples.
    public var latentShape: [Int] {
        let c = transformer.config
        return [c.inChannels, c.sampleSize, c.sampleSize]
    }

    /// Runs the sampler and the decoder.
    public func generate(_ options: DiTGenerationOptions) throws -> DiTGenerationResult {
        let c = transformer.config
        guard options.classLabel >= 0, options.classLabel < c.classCount else {
            throw ModelError("class id \(options.classLabel) is out of range: this model has classes 0..<\(c.classCount)")
        }
        guard options.guidance >= 0, options.guidance.isFinite else {
            throw ModelError("guidance scale must be ≥ 0, got \(options.guidance)")
        }
        var scheduler = try DiffusionSchedulers.make(config: schedulerConfig, className: options.scheduler)
        try scheduler.setTimesteps(options.steps)
        var rng = SplitMix64(seed: options.seed &+ 0x5EED)
        var latents: Tensor
        if let noise = options.noise {
            guard noise.shape == [1] + latentShape || noise.shape == latentShape else {
                throw ModelError("noise tensor has shape \(noise.shape), this model samples [1, \(latentShape.map(String.init).joined(separator: ", "))]")
            }
            latents = try noise.reshaped(latentShape)
        } else {
            latents = Self.gaussian(shape: latentShape, rng: &rng)
        }
        let guided = options.guidance > 1
        let cache = try options.caching.map { try DiTFeatureCache(method: $0.method, schedule: $0.schedule, layers: c.layers) }
        if let cache, cache.schedule.steps != scheduler.timesteps.count {
            throw ModelError("\(cache.method): its schedule covers \(cache.schedule.steps) steps, the sampler runs \(scheduler.timesteps.count)")
        }
        var stepSeconds: [Double] = []
        for (i, t) in scheduler.timesteps.enumerated() {
            let start = Date()
            let input = scheduler.scaleModelInput(latents, index: i)
            let outputs = guided
                ? try transformer([input, input], timesteps: [t, t], classes: [options.classLabel, c.nullClass], cache: cache)
                : try transformer([input], timesteps: [t], classes: [options.classLabel], cache: cache)
            let eps = guided ? try Self.guide(cond: outputs[0], uncond: outputs[1], scale: Float(options.guidance), channels: c.inChannels)
                             : try Self.noiseChannels(outputs[0], channels: c.inChannels, learnedSigma: c.learnedSigma)
            let shape = latentShape
            latents = try scheduler.step(eps, index: i, sample: latents, noise: { Self.gaussian(shape: shape, rng: &rng) })
            stepSeconds.append(Date().timeIntervalSince(start))
        }
        let vaeStart = Date()
        let inverse = Float(1 / vae.config.scalingFactor)
        let decoded = try vae(latents.map { inverse * $0 })
        let vaeSeconds = Date().timeIntervalSince(vaeStart)
        return DiTGenerationResult(latents: latents, decoded: decoded, image: try Self.image(decoded),
                                   scheduler: scheduler.className, timesteps: scheduler.timesteps,
                                   stepSeconds: stepSeconds, vaeSeconds: vaeSeconds,
                                   transformerFLOPsPerStep: transformerFLOPs(batch: guided ? 2 : 1),
                                   transformerFLOPsTotal: transformerFLOPs(batch: guided ? 2 : 1) * Double(stepSeconds.count)
                                       - Double(guided ? 2 : 1) * moduleFLOPs(reusedBy: cache),
                                   cacheDecisions: cache?.executed, cacheMethod: cache?.method)
    }

    /// Multiply-adds × 2 of one transformer call on `batch` samples (linear layers, attention scores
    /// and their weighted sum, patch embedding, final projection; norms and activations not counted).
    public func transformerFLOPs(batch: Int) -> Double {
        let c = transformer.config
        let n = Double(c.tokenCount), d = Double(c.width), p2 = Double(c.patchSize * c.patchSize)
        let perBlock = 2 * n * d * d * 4 + 2 * 2 * n * n * d + 2 * 2 * n * d * 4 * d + 2 * d * 6 * d
        let embed = 2 * n * d * Double(c.inChannels) * p2 + 2 * n * d * p2 * Double(c.outChannels) + 2 * d * 2 * d
        return Double(batch) * (Double(c.layers) * perBlock + embed)
    }

    /// FLOPs per sample that the cache's reused modules did not spend (attention: QKV, scores, weighted
    /// sum, output projection; MLP: both layers).
    func moduleFLOPs(reusedBy cache: DiTFeatureCache?) -> Double {
        guard let cache else { return 0 }
        let c = transformer.config
        let n = Double(c.tokenCount), d = Double(c.width)
        let cost = [2 * n * d * d * 4 + 2 * 2 * n * n * d, 2 * 2 * n * d * 4 * d]
        return cache.executed.joined().reduce(0) { sum, layer in
            sum + zip(layer, cost).reduce(0) { $0 + ($1.0 == .reuse ? $1.1 : 0) }
        }
    }

    /// DiT's guidance on the noise channels: `uncond + g · (cond − uncond)`, evaluated in that order.
    static func guide(cond: Tensor, uncond: Tensor, scale: Float, channels: Int) throws -> Tensor {
        let a = try noiseChannels(cond, channels: channels, learnedSigma: true)
        let b = try noiseChannels(uncond, channels: channels, learnedSigma: true)
        var out = b
        out.withUnsafeMutableBufferPointer { o in
            a.withUnsafeBufferPointer { x in for i in 0..<o.count { o[i] = o[i] + scale * (x[i] - o[i]) } }
        }
        return out
    }

    /// The first `channels` channels of a `[C', H, W]` output (all of it when there is no learned sigma).
    static func noiseChannels(_ output: Tensor, channels: Int, learnedSigma: Bool) throws -> Tensor {
        guard learnedSigma else { return output }
        let plane = output.count / output.shape[0]
        return try Tensor(shape: [channels] + Array(output.shape.dropFirst()), values: Array(output.values.prefix(channels * plane)))
    }

    /// `(x / 2 + 0.5).clamp(0, 1)`, then `round(· 255)` (half to even, as numpy) to bytes.
    static func image(_ decoded: Tensor) throws -> RGBImage {
        guard decoded.rank == 3, decoded.shape[0] == 3 else {
            throw ModelError("VAE output \(decoded.shape) is not an RGB image [3, H, W]")
        }
        let (h, w) = (decoded.shape[1], decoded.shape[2])
        var pixels = [UInt8](repeating: 0, count: h * w * 3)
        decoded.withUnsafeBufferPointer { x in
            for ch in 0..<3 {
                for i in 0..<(h * w) {
                    let v = min(max(x[ch * h * w + i] / 2 + 0.5, 0), 1)
                    pixels[i * 3 + ch] = UInt8((v * 255).rounded(.toNearestOrEven))
                }
            }
        }
        return try RGBImage(width: w, height: h, pixels: pixels)
    }

    /// Standard normal latents from SplitMix64 (reproducible across platforms; not torch's generator:
    /// use `--noise` to start from the same latents as a diffusers run).
    static func gaussian(shape: [Int], rng: inout SplitMix64) -> Tensor {
        var t = Tensor(zeros: shape)
        t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = rng.gaussian() } }
        return t
    }

    /// The `latents` tensor of a safetensors file.
    public static func loadNoise(path: String) throws -> Tensor {
        let file = try SafetensorsFile(path: path)
        guard file.contains("latents") else {
            throw ModelError("\(path): no tensor named 'latents' (found: \(file.names.sorted().joined(separator: ", ")))")
        }
        return try file.tensor("latents")
    }
}

/// What to generate.
public struct DiTGenerationOptions: Sendable {
    public var classLabel: Int
    public var steps: Int
    public var guidance: Double
    public var seed: UInt64
    /// Starting latents `[1, C, H, W]` (or `[C, H, W]`); nil: drawn from `seed`.
    public var noise: Tensor?
    /// Overrides the folder's scheduler class (its config fields kept, as diffusers' `from_config`).
    public var scheduler: String?
    /// Feature caching inside the blocks (nil: none).
    public var caching: DiTCaching?

    public init(classLabel: Int, steps: Int = 50, guidance: Double = 4, seed: UInt64 = 0, noise: Tensor? = nil, scheduler: String? = nil,
                caching: DiTCaching? = nil) {
        self.caching = caching
        self.classLabel = classLabel
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.noise = noise
        self.scheduler = scheduler
    }
}

/// One generated sample and how it was made.
public struct DiTGenerationResult: Sendable {
    /// The sampler's final latents `[C, H, W]` (before `1 / scaling_factor`).
    public let latents: Tensor
    /// `vae.decode(latents / scaling_factor).sample`, `[3, H', W']`.
    public let decoded: Tensor
    public let image: RGBImage
    public let scheduler: String
    public let timesteps: [Float]
    public let stepSeconds: [Double]
    public let vaeSeconds: Double
    /// FLOPs of one uncached transformer call (the guided batch included).
    public let transformerFLOPsPerStep: Double
    /// Over the run, less the modules the cache reused.
    public let transformerFLOPsTotal: Double
    /// `[call][layer][module]` actions the cache took (modules attn, mlp); nil without caching.
    public let cacheDecisions: [[[CacheAction]]]?
    public let cacheMethod: String?
}

/// A caching method's schedule to run inside the sampler (e.g. `FORA.schedule(...)`).
public struct DiTCaching: Sendable {
    public var method: String
    public var schedule: CacheSchedule
    public init(method: String, schedule: CacheSchedule) {
        self.method = method
        self.schedule = schedule
    }
}
