import Foundation
import ModelIO
import Models
import Tensors

/// The parts of a diffusers pipeline's `__call__` that do not depend on the model: the starting
/// latents, the sampling loop, the latent-to-image conversion.
public enum DiffusionSampling {
    /// The given noise (`[1, C, H, W]` or `[C, H, W]`), else standard normal latents from `rng`.
    static func startingLatents(noise: Tensor?, shape: [Int], rng: inout SplitMix64) throws -> Tensor {
        guard let noise else { return gaussian(shape: shape, rng: &rng) }
        guard noise.shape == [1] + shape || noise.shape == shape else {
            throw ModelError("noise tensor has shape \(noise.shape), this model samples [1, \(shape.map(String.init).joined(separator: ", "))]")
        }
        return try noise.reshaped(shape)
    }

    /// `for t in timesteps: x = step(denoise(scale_model_input(x), t), t, x)`, timed per step.
    static func run(_ scheduler: inout any DiffusionScheduler, latents: Tensor, rng: inout SplitMix64,
                    denoise: (_ input: Tensor, _ timestep: Float) throws -> Tensor) throws -> (latents: Tensor, stepSeconds: [Double]) {
        var x = latents
        var seconds: [Double] = []
        let shape = x.shape
        for (i, t) in scheduler.timesteps.enumerated() {
            let start = Date()
            let eps = try denoise(scheduler.scaleModelInput(x, index: i), t)
            x = try scheduler.step(eps, index: i, sample: x, noise: { gaussian(shape: shape, rng: &rng) })
            seconds.append(Date().timeIntervalSince(start))
        }
        return (x, seconds)
    }

    /// Transformer FLOPs of a run of `calls` calls on `batch` rows (`perCall(batch)` each), less what
    /// the cache's modules did not spend: per call, its batch rows × Σ over layers and modules of
    /// `(1 − rows computed) · moduleCosts[module]` (per sample). Calls with a smaller batch (T-GATE after
    /// its gate) are counted at their own batch.
    static func runFLOPs(calls: Int, batch: Int, cache: DiTFeatureCache?, perCall: (Int) -> Double, moduleCosts: [Double]) -> Double {
        guard let cache else { return perCall(batch) * Double(calls) }
        var counts: [Int: Int] = [:]
        for s in cache.callSamples { counts[s, default: 0] += 1 }
        let full = counts.keys.sorted().reduce(0.0) { $0 + perCall($1) * Double(counts[$1]!) }
        let saved = zip(cache.rowFractions, cache.callSamples).reduce(0.0) { sum, call in
            sum + Double(call.1) * call.0.reduce(0.0) { s, layer in s + zip(layer, moduleCosts).reduce(0.0) { $0 + (1 - $1.0) * $1.1 } }
        }
        return full - saved
    }

    /// The first `channels` channels of a `[C', H, W]` output (all of it when there is no learned sigma).
    static func noiseChannels(_ output: Tensor, channels: Int, learnedSigma: Bool) throws -> Tensor {
        guard learnedSigma else { return output }
        let plane = output.count / output.shape[0]
        return try Tensor(shape: [channels] + Array(output.shape.dropFirst()), values: Array(output.values.prefix(channels * plane)))
    }

    /// `uncond + g · (cond − uncond)` element-wise, evaluated in that order (diffusers' guidance).
    static func guide(cond: Tensor, uncond: Tensor, scale: Float) throws -> Tensor {
        guard cond.shape == uncond.shape else { throw ModelError("guidance: \(cond.shape) vs \(uncond.shape)") }
        var out = uncond
        out.withUnsafeMutableBufferPointer { o in
            cond.withUnsafeBufferPointer { x in for i in 0..<o.count { o[i] = o[i] + scale * (x[i] - o[i]) } }
        }
        return out
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

    /// Standard normal values from SplitMix64 (reproducible across platforms; not torch's generator:
    /// use `--noise` to start from the same latents as a diffusers run).
    static func gaussian(shape: [Int], rng: inout SplitMix64) -> Tensor {
        var t = Tensor(zeros: shape)
        t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = rng.gaussian() } }
        return t
    }

    /// ToMe-SD's per-run state for a model of `shape` sampling batches of `batch` (nil without it),
    /// refused together with a caching method.
    static func tokenMerging(_ settings: DiTTokenMergingSettings?, caching: DiTCaching?, shape: some PatchTransformerShape,
                             batch: Int) throws -> DiTTokenMerging? {
        guard let settings else { return nil }
        if let caching {
            throw ModelError("tomesd cannot run together with a caching method (\(caching.method)): give one method")
        }
        let latent = shape.latentShape
        return try DiTTokenMerging(settings: settings, latentSize: (latent[1], latent[2]), tokenCount: shape.tokenCount, batch: batch)
    }

    /// The tensor `name` of a safetensors file, with a clear error when it is absent.
    public static func loadTensor(path: String, name: String) throws -> Tensor {
        let file = try SafetensorsFile(path: path)
        guard file.contains(name) else {
            throw ModelError("\(path): no tensor named '\(name)' (found: \(file.names.sorted().joined(separator: ", ")))")
        }
        return try file.tensor(name)
    }

    /// The pipeline folder's `model_index.json` with its class checked and its components present.
    static func pipelineIndex(folder: String, className: String, components: [String]) throws -> DiffusersConfigFile {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ModelError("\(folder): no such folder (expected a diffusers pipeline folder)")
        }
        let index = try DiffusersConfigFile(path: URL(fileURLWithPath: folder).appendingPathComponent("model_index.json").path)
        if let name = index.className, name != className {
            throw ModelError("\(index.path): _class_name '\(name)' is not supported here (expected \(className))")
        }
        for component in components where index.reader.value(component) == nil {
            throw ModelError("\(index.path): no '\(component)' component")
        }
        return index
    }

    /// A pipeline folder's parts, loaded in diffusers' order and checked against each other: the index
    /// (its class and components), the transformer (`load` on `transformer/`), the VAE decoder and the
    /// scheduler config, whose scheduler is built once so that an unknown class fails before any sampling.
    static func loadPipeline<Transformer>(folder: String, className: String, load: (String) throws -> Transformer,
                                          latentChannels: (Transformer) -> Int) throws
        -> (transformer: Transformer, vae: VAEDecoder, schedulerConfig: DiffusersConfigFile) {
        let root = URL(fileURLWithPath: folder)
        _ = try pipelineIndex(folder: folder, className: className, components: ["transformer", "vae", "scheduler"])
        let transformer = try load(root.appendingPathComponent("transformer").path)
        let vae = try VAEDecoder(folder: root.appendingPathComponent("vae").path)
        let schedulerConfig = try DiffusersConfigFile(path: root.appendingPathComponent("scheduler/scheduler_config.json").path)
        guard latentChannels(transformer) == vae.config.latentChannels else {
            throw ModelError("\(folder): the transformer takes \(latentChannels(transformer)) latent channels, the VAE decodes \(vae.config.latentChannels)")
        }
        _ = try DiffusionSchedulers.make(config: schedulerConfig)
        return (transformer, vae, schedulerConfig)
    }

    /// The pipeline class a folder's `model_index.json` names (nil when absent or unreadable).
    public static func pipelineClass(folder: String) -> String? {
        let path = URL(fileURLWithPath: folder).appendingPathComponent("model_index.json").path
        return (try? DiffusersConfigFile(path: path))?.className
    }
}
