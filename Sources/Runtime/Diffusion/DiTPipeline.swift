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
        (transformer, vae, schedulerConfig) = try DiffusionSampling.loadPipeline(
            folder: folder, className: "DiTPipeline", load: { try DiTTransformer(folder: $0) }, latentChannels: { $0.config.inChannels })
    }

    /// `[C, H, W]` of the latents the transformer samples.
    public var latentShape: [Int] { transformer.config.latentShape }

    /// Runs the sampler and the decoder.
    public func generate(_ options: DiTGenerationOptions) throws -> DiffusionGenerationResult {
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
        let start = try DiffusionSampling.startingLatents(noise: options.noise, shape: latentShape, rng: &rng)
        let guided = options.guidance > 1
        let cache = try options.caching.map {
            try $0.cache(layers: c.layers, modules: DiTFeatureCache.ditModules, timesteps: scheduler.timesteps)
        }
        let merging = try DiffusionSampling.tokenMerging(options.tokenMerging, caching: options.caching, shape: c, batch: guided ? 2 : 1)
        if merging != nil, options.stepCaching != nil {
            throw ModelError("tomesd cannot run together with step caching (TeaCache, Δ-DiT): a skipped block's cached residual would mix merged and unmerged rows")
        }
        let stepCache = try DiffusionStepCaching.make(options.stepCaching, featureCaching: cache != nil,
                                                      calls: scheduler.timesteps.count, layers: c.layers)
        // DiTPipeline guides only the noise channels (then drops the variance channels), against the null class.
        let (latents, stepSeconds) = try DiffusionSampling.run(&scheduler, latents: start, rng: &rng) { input, t in
            if guided {
                let out = try transformer([input, input], timesteps: [t, t], classes: [options.classLabel, c.nullClass], cache: cache,
                                          merging: merging, stepCache: stepCache)
                return try DiffusionSampling.guide(
                    cond: try DiffusionSampling.noiseChannels(out[0], channels: c.inChannels, learnedSigma: true),
                    uncond: try DiffusionSampling.noiseChannels(out[1], channels: c.inChannels, learnedSigma: true),
                    scale: Float(options.guidance))
            }
            let out = try transformer([input], timesteps: [t], classes: [options.classLabel], cache: cache, merging: merging,
                                      stepCache: stepCache)
            return try DiffusionSampling.noiseChannels(out[0], channels: c.inChannels, learnedSigma: c.learnedSigma)
        }
        let vaeStart = Date()
        let inverse = Float(1 / vae.config.scalingFactor)
        let decoded = try vae(latents.map { inverse * $0 })
        let vaeSeconds = Date().timeIntervalSince(vaeStart)
        let mergingReport = merging.map { DiTTokenMergingReport($0, width: c.width, batch: guided ? 2 : 1, captionTokens: nil) }
        return DiffusionGenerationResult(latents: latents, decoded: decoded, image: try DiffusionSampling.image(decoded),
                                   scheduler: scheduler.className, timesteps: scheduler.timesteps,
                                   stepSeconds: stepSeconds, vaeSeconds: vaeSeconds,
                                   transformerFLOPsPerStep: transformerFLOPs(batch: guided ? 2 : 1),
                                   transformerFLOPsTotal: c.flopsShape.runFLOPs(callBatches: cache?.callSamples
                                                                                   ?? Array(repeating: guided ? 2 : 1, count: stepSeconds.count),
                                                                               fractions: cache?.rowFractions)
                                       - Double(guided ? 2 : 1) * blockFLOPs(skippedBy: stepCache)
                                       - (mergingReport.map { $0.flopsSaved - $0.matchingFLOPs } ?? 0),
                                   cacheDecisions: cache?.executed, cacheMethod: cache?.method ?? stepCache?.policy.name,
                                   cacheCallBatches: cache?.callSamples,
                                   tokenMerging: mergingReport, stepCache: stepCache.map(DiffusionStepCacheReport.init))
    }

    /// FLOPs of one uncached transformer call on `batch` samples, in `DiffusionFlopsShape`'s convention
    /// (the one `tokc flops` uses: multiply-add = 2; linear layers, attention scores and weighted sums,
    /// adaLN modulation, patch embedding, final projection).
    public func transformerFLOPs(batch: Int) -> Double {
        transformer.config.flopsShape.callFLOPs(batch: batch)
    }
}

extension DiTPipeline {
    /// FLOPs per sample the step cache's skipped blocks did not spend (attention, MLP and the block's
    /// adaLN modulation linear), less the extra modulation linear of block 0 that TeaCache's indicator
    /// (and calibration) compute on every call.
    func blockFLOPs(skippedBy stepCache: DiTStepCache?) -> Double {
        guard let stepCache else { return 0 }
        let shape = transformer.config.flopsShape
        let indicatorCalls = stepCache.policy.readsIndicator ? stepCache.log.count : 0
        return Double(stepCache.skippedBlocks) * shape.blockFLOPs - Double(indicatorCalls) * shape.blockModulationFLOPs
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
    /// ToMe-SD inside the blocks (nil: none; not together with `caching` or `stepCaching`).
    public var tokenMerging: DiTTokenMergingSettings?
    /// Whole-block caching across calls (TeaCache, Δ-DiT, or calibration recording); not with `caching`.
    public var stepCaching: DiTStepCache.Policy?

    public init(classLabel: Int, steps: Int = 50, guidance: Double = 4, seed: UInt64 = 0, noise: Tensor? = nil, scheduler: String? = nil,
                caching: DiTCaching? = nil, tokenMerging: DiTTokenMergingSettings? = nil, stepCaching: DiTStepCache.Policy? = nil) {
        self.caching = caching
        self.tokenMerging = tokenMerging
        self.stepCaching = stepCaching
        self.classLabel = classLabel
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.noise = noise
        self.scheduler = scheduler
    }
}

/// One generated sample and how it was made.
public struct DiffusionGenerationResult: Sendable {
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
    /// Batch rows of each transformer call with caching (T-GATE drops to one row after its gate).
    public var cacheCallBatches: [Int]? = nil
    /// What ToMe-SD merged and saved; nil without it.
    public var tokenMerging: DiTTokenMergingReport? = nil
    /// TeaCache's / Δ-DiT's per-call record (nil without a step cache).
    public var stepCache: DiffusionStepCacheReport? = nil
}

/// A caching method's schedule to run inside the sampler (e.g. `FORA.schedule(...)`).
public struct DiTCaching: Sendable {
    public var method: String
    public var schedule: CacheSchedule
    /// TaylorSeer's parameters when the schedule forecasts (its plans carry the Taylor distances).
    public var taylorSeer: TaylorSeer.Parameters?
    /// ToCa's parameters when the schedule has partial steps (fresh-token ratios, scores).
    public var toca: ToCa.Parameters?
    /// DuCa's parameters when the schedule has its partial and aggressive steps.
    public var duca: DuCa.Parameters?
    /// PAB's parameters: its schedule also depends on the sampler's timesteps, checked when sampling starts.
    public var pab: PAB.Parameters?
    /// T-GATE's parameters (PixArt-α): also switch guidance off after the gate step.
    public var tgate: TGate.Parameters?

    public init(method: String, schedule: CacheSchedule, taylorSeer: TaylorSeer.Parameters? = nil, toca: ToCa.Parameters? = nil,
                duca: DuCa.Parameters? = nil, pab: PAB.Parameters? = nil, tgate: TGate.Parameters? = nil) {
        self.method = method
        self.schedule = schedule
        self.taylorSeer = taylorSeer
        self.toca = toca
        self.duca = duca
        self.pab = pab
        self.tgate = tgate
    }

    /// The model-side cache for a sampler with these timesteps (public so that the diffusion bench can
    /// check a method against a model before it samples).
    public func cache(layers: Int, modules: [String], timesteps: [Float]) throws -> DiTFeatureCache {
        guard schedule.steps == timesteps.count else {
            throw ModelError("\(method): its schedule covers \(schedule.steps) steps, the sampler runs \(timesteps.count)")
        }
        return try DiTFeatureCache(method: method, schedule: Self.wholeBlock(schedule, method: method, modules: modules), layers: layers, modules: modules,
                                   taylorSeer: taylorSeer, toca: toca, duca: duca,
                                   pab: pab.map { ($0, timesteps.map { Int($0) }) }, tgate: tgate)
    }

    /// FORA decides per step for whole blocks: its code caches every module of a block (on PixArt-α:
    /// attention, cross-attention and MLP, as the ToCa repository's PixArt FORA baseline does), while its
    /// schedule names DiT's two modules. Such a schedule (the same action for every module of a layer) is
    /// widened to the model's modules; any other schedule is passed on unchanged (and checked there).
    static func wholeBlock(_ schedule: CacheSchedule, method: String, modules: [String]) -> CacheSchedule {
        guard method == "fora", schedule.moduleNames != modules,
              schedule.actions.allSatisfy({ step in step.allSatisfy { Set($0).count == 1 } }) else { return schedule }
        return CacheSchedule(moduleNames: modules, actions: schedule.actions.map { step in
            step.map { Array(repeating: $0[0], count: modules.count) }
        })
    }
}
