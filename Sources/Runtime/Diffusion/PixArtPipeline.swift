import Foundation
import ModelIO
import Models
import Tensors
import TokenCompression

/// diffusers' `PixArtAlphaPipeline` on a pipeline folder, from caption embeddings instead of a
/// prompt: the T5 encoder is not run here, its outputs come from a safetensors file.
///
/// As the diffusers pipeline: the starting latents are multiplied by the scheduler's
/// `init_noise_sigma`; with guidance > 1 the batch is [negative, positive] and the guided output is
/// `uncond + g·(text − uncond)`; the learned variance channels are dropped before the scheduler step;
/// the VAE decodes `latents / scaling_factor`. Resolution binning is not done: the image is the
/// model's own size (`sample_size × vae scale`), which the 256 and 512 bins map to themselves.
public final class PixArtPipeline: @unchecked Sendable {
    public let folder: String
    public let transformer: PixArtTransformer
    public let vae: VAEDecoder
    public let schedulerConfig: DiffusersConfigFile

    public init(folder: String) throws {
        self.folder = folder
        (transformer, vae, schedulerConfig) = try DiffusionSampling.loadPipeline(
            folder: folder, className: "PixArtAlphaPipeline", load: { try PixArtTransformer(folder: $0) }, latentChannels: { $0.config.inChannels })
    }

    /// `[C, H, W]` of the latents the transformer samples.
    public var latentShape: [Int] { transformer.config.latentShape }

    public func generate(_ options: PixArtGenerationOptions) throws -> DiffusionGenerationResult {
        let c = transformer.config
        guard options.guidance >= 0, options.guidance.isFinite else {
            throw ModelError("guidance scale must be ≥ 0, got \(options.guidance)")
        }
        let guided = options.guidance > 1
        guard !guided || options.captions.negative != nil else {
            throw ModelError("guidance \(options.guidance) > 1 needs negative_prompt_embeds (the T5 embeddings of the negative prompt, \"\" by default)")
        }
        var scheduler = try DiffusionSchedulers.make(config: schedulerConfig, className: options.scheduler)
        try scheduler.setTimesteps(options.steps)
        var rng = SplitMix64(seed: options.seed &+ 0x5EED)
        let sigma = scheduler.initNoiseSigma
        let start = try DiffusionSampling.startingLatents(noise: options.noise, shape: latentShape, rng: &rng).map { $0 * sigma }
        let positive = options.captions.positive
        let cache = try options.caching.map {
            try $0.cache(layers: c.layers, modules: DiTFeatureCache.pixArtModules, timesteps: scheduler.timesteps)
        }
        let tgate = options.caching?.tgate
        if tgate != nil, !guided {
            throw ModelError("tgate: T-GATE averages the two CFG halves at its gate step; it needs guidance > 1 (got \(options.guidance))")
        }
        let merging = try DiffusionSampling.tokenMerging(options.tokenMerging, caching: options.caching, shape: c, batch: guided ? 2 : 1)
        if merging != nil, options.stepCaching != nil {
            throw ModelError("tomesd cannot run together with step caching (TeaCache, Δ-DiT): a skipped block's cached residual would mix merged and unmerged rows")
        }
        let stepCache = try DiffusionStepCaching.make(options.stepCaching, featureCaching: cache != nil,
                                                      calls: scheduler.timesteps.count, layers: c.layers)
        var call = 0
        let (latents, stepSeconds) = try DiffusionSampling.run(&scheduler, latents: start, rng: &rng) { input, t in
            defer { call += 1 }
            // T-GATE: from its gate step on, one row and no guidance mix; as its pipeline, the row is the
            // NEGATIVE prompt's (cross-attention is reused from the gate step, so the text is not read).
            if let tgate, TGate.batchSize(step: call, parameters: tgate) == 1, let negative = options.captions.negative {
                let out = try transformer([input], timesteps: [t], captions: [negative.embeddings], masks: [negative.mask], cache: cache)
                return try DiffusionSampling.noiseChannels(out[0], channels: c.inChannels, learnedSigma: c.learnedSigma)
            }
            if guided, let negative = options.captions.negative {
                let out = try transformer([input, input], timesteps: [t, t], captions: [negative.embeddings, positive.embeddings],
                                          masks: [negative.mask, positive.mask], cache: cache, merging: merging, stepCache: stepCache)
                let uncond = try DiffusionSampling.noiseChannels(out[0], channels: c.inChannels, learnedSigma: c.learnedSigma)
                let text = try DiffusionSampling.noiseChannels(out[1], channels: c.inChannels, learnedSigma: c.learnedSigma)
                return try DiffusionSampling.guide(cond: text, uncond: uncond, scale: Float(options.guidance))
            }
            let out = try transformer([input], timesteps: [t], captions: [positive.embeddings], masks: [positive.mask], cache: cache,
                                      merging: merging, stepCache: stepCache)
            return try DiffusionSampling.noiseChannels(out[0], channels: c.inChannels, learnedSigma: c.learnedSigma)
        }
        let vaeStart = Date()
        let factor = Float(vae.config.scalingFactor)
        let decoded = try vae(latents.map { $0 / factor })
        let vaeSeconds = Date().timeIntervalSince(vaeStart)
        let batch = guided ? 2 : 1
        let shape = c.flopsShape(captionTokens: positive.embeddings.shape[0])
        let flops = shape.callFLOPs(batch: batch)
        let mergingReport = merging.map { DiTTokenMergingReport($0, width: c.width, batch: batch, captionTokens: positive.embeddings.shape[0]) }
        let total = shape.runFLOPs(callBatches: cache?.callSamples ?? Array(repeating: batch, count: stepSeconds.count),
                                   fractions: cache?.rowFractions)
            - Double(batch) * Double(stepCache?.skippedBlocks ?? 0) * shape.blockFLOPs
            - (mergingReport.map { $0.flopsSaved - $0.matchingFLOPs } ?? 0)
        return DiffusionGenerationResult(latents: latents, decoded: decoded, image: try DiffusionSampling.image(decoded),
                                         scheduler: scheduler.className, timesteps: scheduler.timesteps,
                                         stepSeconds: stepSeconds, vaeSeconds: vaeSeconds,
                                         transformerFLOPsPerStep: flops, transformerFLOPsTotal: total,
                                         cacheDecisions: cache?.executed, cacheMethod: cache?.method ?? stepCache?.policy.name,
                                         cacheCallBatches: cache?.callSamples,
                                         tokenMerging: mergingReport, stepCache: stepCache.map(DiffusionStepCacheReport.init))
    }

    /// FLOPs of one uncached transformer call, in `DiffusionFlopsShape`'s convention (linear layers,
    /// self- and cross-attention with the caption's keys and values, the caption projection, patch
    /// embedding and final projection; T5 and the VAE not counted).
    public func transformerFLOPs(batch: Int, captionTokens: Int) -> Double {
        transformer.config.flopsShape(captionTokens: captionTokens).callFLOPs(batch: batch)
    }
}

/// Caption embeddings (T5 outputs) with their attention mask.
public struct CaptionEmbeddings: Sendable {
    /// `[tokens, caption_channels]`.
    public var embeddings: Tensor
    /// 1 = attend, 0 = padding; nil = all ones.
    public var mask: [Float]?

    public init(embeddings: Tensor, mask: [Float]?) {
        self.embeddings = embeddings
        self.mask = mask
    }
}

/// The prompt's and the negative prompt's embeddings, as PixArtAlphaPipeline takes them
/// (`prompt_embeds`, `prompt_attention_mask`, `negative_prompt_embeds`, `negative_prompt_attention_mask`).
public struct PromptEmbeddings: Sendable {
    public var positive: CaptionEmbeddings
    public var negative: CaptionEmbeddings?

    public init(positive: CaptionEmbeddings, negative: CaptionEmbeddings?) {
        self.positive = positive
        self.negative = negative
    }

    /// Reads a safetensors file with `prompt_embeds` ([1, L, C] or [L, C]) and optionally
    /// `prompt_attention_mask` ([1, L] or [L]) and the `negative_` pair.
    public init(file path: String) throws {
        let file = try SafetensorsFile(path: path)
        func read(_ name: String, maskName: String) throws -> CaptionEmbeddings? {
            guard file.contains(name) else { return nil }
            var t = try file.tensor(name)
            if t.rank == 3, t.shape[0] == 1 { t = try t.reshaped(Array(t.shape.dropFirst())) }
            guard t.rank == 2 else { throw ModelError("\(path): '\(name)' has shape \(t.shape), expected [1, tokens, channels]") }
            var mask: [Float]?
            if file.contains(maskName) {
                let m = try file.tensor(maskName)
                guard m.count == t.shape[0] else {
                    throw ModelError("\(path): '\(maskName)' has \(m.count) values for \(t.shape[0]) tokens of '\(name)'")
                }
                mask = m.values
            }
            return CaptionEmbeddings(embeddings: t, mask: mask)
        }
        guard let positive = try read("prompt_embeds", maskName: "prompt_attention_mask") else {
            throw ModelError("\(path): no tensor named 'prompt_embeds' (found: \(file.names.sorted().joined(separator: ", ")))")
        }
        self.positive = positive
        negative = try read("negative_prompt_embeds", maskName: "negative_prompt_attention_mask")
    }
}

/// What to generate with PixArt-α.
public struct PixArtGenerationOptions: Sendable {
    public var captions: PromptEmbeddings
    public var steps: Int
    public var guidance: Double
    public var seed: UInt64
    public var noise: Tensor?
    public var scheduler: String?
    /// Feature caching inside the blocks (modules attn, cross-attn, mlp); nil: none.
    public var caching: DiTCaching?
    /// ToMe-SD inside the blocks (nil: none; not together with `caching` or `stepCaching`).
    public var tokenMerging: DiTTokenMergingSettings?
    /// Whole-block caching across calls (TeaCache, Δ-DiT, or calibration recording); not with `caching`.
    public var stepCaching: DiTStepCache.Policy?

    public init(captions: PromptEmbeddings, steps: Int = 20, guidance: Double = 4.5, seed: UInt64 = 0, noise: Tensor? = nil,
                scheduler: String? = nil, caching: DiTCaching? = nil, tokenMerging: DiTTokenMergingSettings? = nil,
                stepCaching: DiTStepCache.Policy? = nil) {
        self.caching = caching
        self.tokenMerging = tokenMerging
        self.stepCaching = stepCaching
        self.captions = captions
        self.steps = steps
        self.guidance = guidance
        self.seed = seed
        self.noise = noise
        self.scheduler = scheduler
    }
}
