import ArgumentParser
import Evaluation
import Foundation
import ModelIO
import Models
import Runtime
import Tensors
import TokenCompression

struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate",
        abstract: "Sample an image from a DiT (class) or PixArt-α (caption embeddings) diffusers pipeline folder.",
        discussion: """
        --model is a folder as diffusers' save_pretrained writes it: model_index.json,
        transformer/ (DiTTransformer2DModel with --class, or PixArtTransformer2DModel with
        --prompt-embeds FILE.safetensors: prompt_embeds [1, L, C], prompt_attention_mask,
        negative_prompt_embeds, negative_prompt_attention_mask — T5 outputs, the encoder
        is not run here), vae/ (AutoencoderKL), scheduler/
        (DDIMScheduler, DPMSolverMultistepScheduler, DDPMScheduler or EulerDiscreteScheduler;
        --scheduler swaps the class and keeps the config fields, as from_config does).
        Guidance (> 1) is DiT's: on the noise channels, against the null class.
        --noise FILE.safetensors (tensor `latents`, [1, C, H, W]) starts from given latents, so a
        run can be compared with diffusers; --seed draws them with the toolkit's own generator
        (SplitMix64, not torch's). Without --model, --class samples the built-in DiT
        (builtin/models/dit-shapes: 32x32 images of 24 shape x colour classes, the ids of
        builtin/models/vit-shapes/config.json's id2label).

        --method runs a caching method inside the sampler from the same schedule
        `tokc schedule` prints for these settings (steps = --steps, layers = the
        model's blocks; --interval, --ratio and --param as there): fora,
        taylorseer, toca (partial steps on DiT), duca (DiT and PixArt-α: conservative
        partial steps and aggressive whole-network skips), pab (DiT and PixArt-α; its
        timestep windows read the sampler's timesteps), tgate (PixArt-α; guidance
        is dropped after the gate step, as its pipeline does).

        --method tomesd runs ToMe for Stable Diffusion inside every block (merge
        before self-attention, unmerge after; --param merge_crossattn=1 / merge_mlp=1
        add the other sub-layers), with tomesd's apply_patch parameters as --param:
        ratio (0.5), max_downsample (1), sx, sy (2), use_rand (true), seed (0).
        tomesd's compute_merge derives the downsample factor from latent pixels per
        token, which is the patch size (2) in every DiT block: the default
        max_downsample=1 merges nothing (reported as a no-op); use max_downsample=2.

        --method teacache skips the whole block stack while the accumulated,
        polynomial-rescaled relative L1 change of block 0's modulated input stays
        below --param threshold=T (default 0.1), adding the stack's cached residual;
        first and last calls compute. DiT and PixArt-α have no published
        coefficients: the default is no rescaling (P(x) = x); give --param
        coefficients=c0,...,c4 or --param calibration=@FILE (tokc
        teacache-calibrate). --method delta_dit skips the rear blocks before
        --param boundary=b (default steps/2) and the front blocks after it,
        adding their cached deviation, with a full call every --interval N
        (default 3) after --param first=K (default 1) full calls; --param
        blocks=N_c (default half the blocks). --json logs each call's decision
        ("step_cache").
        """
    )

    @Option(name: .long, help: "Pipeline folder (model_index.json, transformer/, vae/, scheduler/; default with --class: builtin/models/dit-shapes).")
    var model: String?

    @Option(name: .customLong("class"), help: "Class id (0 ..< num_embeds_ada_norm) of a DiT pipeline.")
    var classLabel: Int?

    @Option(name: .long, help: "Caption embeddings of a PixArt-α pipeline (safetensors: prompt_embeds, masks, negative_prompt_embeds).")
    var promptEmbeds: String?

    @Option(name: .long, help: "Sampling steps (default: DiTPipeline 50, PixArtAlphaPipeline 20).")
    var steps: Int?

    @Option(name: .long, help: "Classifier-free guidance scale, ≥ 0, applied when > 1 (default: DiT 4, PixArt 4.5).")
    var guidance: Double?

    @Option(name: .long, help: "Seed of the starting latents (ignored with --noise).")
    var seed: UInt64 = 0

    @Option(name: .long, help: "Starting latents: safetensors file with tensor `latents` [1, C, H, W].")
    var noise: String?

    @Option(name: .long, help: "Scheduler class instead of the folder's (e.g. DPMSolverMultistepScheduler).")
    var scheduler: String?

    @Option(name: .long, help: "Write the final latents (before 1/scaling_factor) as safetensors (tensor `latents`).")
    var latentsOut: String?

    @Option(name: .long, help: "Write the image as PNG.")
    var out: String?

    @Flag(name: .long, help: "Print timings, FLOPs and the sampler's timesteps as JSON.")
    var json = false

    @Option(name: .long, help: "Method inside the sampler: caching (fora, toca, duca, taylorseer, pab, tgate, teacache, delta_dit) or token merging (tomesd).")
    var method: String?

    @Option(name: .long, help: "The caching method's interval N (as in tokc schedule).")
    var interval: Int?

    @Option(name: .long, help: "The caching method's base fresh ratio r0 (toca, duca; toca 0 = reuse only, FORA behaviour).")
    var ratio: Double?

    @Option(name: .long, help: "Method setting NAME=VALUE (repeatable; caching methods as in tokc schedule, tomesd as its apply_patch).")
    var param: [String] = []

    @Option(name: .long, help: "Threads for BLAS and the toolkit's loops (default: all cores).")
    var threads: Int?

    /// Checks of the options alone, before any folder is read: a bad value is reported as itself, not
    /// as whatever the model folder lookup hits first.
    func checkOptions() throws {
        guard (classLabel == nil) != (promptEmbeds == nil) else {
            throw ModelError("give exactly one of --class N (DiT) and --prompt-embeds FILE (PixArt-α)")
        }
        if let steps, steps < 1 { throw ModelError("--steps must be ≥ 1, got \(steps)") }
        if let guidance, !(guidance >= 0 && guidance.isFinite) { throw ModelError("--guidance must be ≥ 0, got \(guidance)") }
        if method == nil, interval != nil || ratio != nil || !param.isEmpty { throw ModelError("--interval, --ratio and --param need --method") }
    }

    func run() throws {
        do {
            try applyThreads(threads)
            try checkOptions()
            guard let model = try self.model ?? (promptEmbeds == nil ? DiTPipeline.defaultFolder() : nil) else {
                throw ModelError("--prompt-embeds needs --model DIR (a PixArtAlphaPipeline folder; the built-in model is a DiT)")
            }
            switch (DiffusionSampling.pipelineClass(folder: model), promptEmbeds) {
            case ("PixArtAlphaPipeline", nil): throw ModelError("\(model) is a PixArtAlphaPipeline folder: give --prompt-embeds FILE, not --class")
            case ("DiTPipeline", .some): throw ModelError("\(model) is a DiTPipeline folder: give --class N, not --prompt-embeds")
            default: break
            }
            let isPixArt = promptEmbeds != nil
            let steps = self.steps ?? (isPixArt ? 20 : 50)
            let guidance = self.guidance ?? (isPixArt ? 4.5 : 4)
            let noiseTensor = try noise.map { try DiffusionSampling.loadTensor(path: $0, name: "latents") }
            let spec = method.map { BenchDiffusion.MethodSpec(name: $0, interval: interval, ratio: ratio, params: param) }
            let loadStart = Date()
            let result: DiffusionGenerationResult
            var loadSeconds = 0.0
            if let promptEmbeds {
                let captions = try PromptEmbeddings(file: promptEmbeds)
                let pipeline = try PixArtPipeline(folder: model)
                loadSeconds = Date().timeIntervalSince(loadStart)
                let built = try spec.map { try Self.samplerMethod($0, try Self.context(layers: pipeline.transformer.config.layers, tokens: pipeline.transformer.config.tokenCount, pipeline.schedulerConfig,
                                                                                      scheduler: scheduler, steps: steps, family: "PixArt")) }
                result = try pipeline.generate(PixArtGenerationOptions(captions: captions, steps: steps, guidance: guidance, seed: seed,
                                                                       noise: noiseTensor, scheduler: scheduler, caching: built?.caching,
                                                                       tokenMerging: built?.tokenMerging, stepCaching: built?.stepCaching))
            } else {
                let pipeline = try DiTPipeline(folder: model)
                loadSeconds = Date().timeIntervalSince(loadStart)
                let built = try spec.map { try Self.samplerMethod($0, try Self.context(layers: pipeline.transformer.config.layers, tokens: pipeline.transformer.config.tokenCount, pipeline.schedulerConfig,
                                                                                      scheduler: scheduler, steps: steps, family: nil)) }
                result = try pipeline.generate(DiTGenerationOptions(classLabel: classLabel ?? 0, steps: steps, guidance: guidance,
                                                                    seed: seed, noise: noiseTensor, scheduler: scheduler, caching: built?.caching,
                                                                    tokenMerging: built?.tokenMerging, stepCaching: built?.stepCaching))
            }
            if let latentsOut {
                var writer = SafetensorsWriter()
                try writer.add("latents", try result.latents.reshaped([1] + result.latents.shape))
                try writer.write(to: latentsOut)
                printError("latents \([1] + result.latents.shape) written to \(latentsOut)")
            }
            if let out {
                try result.image.writePNG(path: out)
                printError("image \(result.image.width)x\(result.image.height) written to \(out)")
            }
            let total = result.stepSeconds.reduce(0, +)
            if let merging = result.tokenMerging {
                if let reason = merging.noOpReason {
                    printError("note: tomesd merged nothing (explicit no-op): \(reason)")
                } else if !json {
                    let p = merging.plan
                    print("tomesd: r = \(p.effectiveR) of \(p.tokenCount) tokens merged in every block (grid \(p.height)×\(p.width), downsample \(p.downsample), random destinations \(p.useRand ? "on" : "off")); \(String(format: "%.3g", merging.flopsSaved)) FLOPs saved, \(String(format: "%.3g", merging.matchingFLOPs)) spent matching")
                }
            }
            if json {
                let steps = result.stepSeconds.count
                let report: JSONValue = .object([
                    "model": .string(model),
                    "class": classLabel.map { .number(Double($0)) } ?? .null,
                    "prompt_embeds": promptEmbeds.map { .string($0) } ?? .null,
                    "scheduler": .string(result.scheduler),
                    "steps": .number(Double(steps)),
                    "guidance": .number(guidance),
                    "guided_batch": .bool(guidance > 1),
                    "noise": noise.map { .string($0) } ?? .string("seed \(seed)"),
                    "timesteps": .array(result.timesteps.map { .number(Double($0)) }),
                    "load_seconds": .number(loadSeconds),
                    "step_seconds": .array(result.stepSeconds.map { .number($0) }),
                    "sampling_seconds": .number(total),
                    "vae_seconds": .number(result.vaeSeconds),
                    "transformer_flops_per_step": .number(result.transformerFLOPsPerStep),
                    "transformer_tflops_uncached": .number(result.transformerFLOPsPerStep * Double(steps) / 1e12),
                    "transformer_tflops_run": .number(result.transformerFLOPsTotal / 1e12),
                    "cache_method": result.cacheMethod.map { .string($0) } ?? .null,
                    "cache_call_batches": result.cacheCallBatches.map { .array($0.map { .number(Double($0)) }) } ?? .null,
                    "cache_decisions": result.cacheDecisions.map { calls in
                        .array(calls.map { call in .string(call.map { String($0.map(\.code)) }.joined(separator: " ")) })
                    } ?? .null,
                    "token_merging": result.tokenMerging.map(Self.json) ?? .null,
                    "step_cache": result.stepCache.map(Self.stepCacheJSON) ?? .null,
                    "flops_convention": .string("multiply-add = 2 FLOPs; linear layers, attention scores and weighted sums, patch embedding and final projection; norms, activations and the VAE not counted"),
                    "image": .array([.number(Double(result.image.height)), .number(Double(result.image.width))]),
                ])
                print(report.formatted())
            } else {
                print("\(result.scheduler), \(result.stepSeconds.count) steps, guidance \(guidance): sampling \(String(format: "%.3f", total)) s, VAE \(String(format: "%.3f", result.vaeSeconds)) s, \(String(format: "%.3g", result.transformerFLOPsPerStep)) transformer FLOPs per step, \(String(format: "%.3g", result.transformerFLOPsTotal)) in this run (\(String(format: "%.0f", 100 * result.transformerFLOPsTotal / max(result.transformerFLOPsPerStep * Double(result.stepSeconds.count), 1)))% of uncached)")
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }

    /// The setting of a method the catalog wires into the diffusion blocks (tomesd); nil for the caching
    /// methods, which run from their schedules.
    static func catalogSetting(method: String, interval: Int?, ratio: Double?, params: [String]) throws -> DiffusionMethodSetting? {
        guard MethodCatalog.entry(named: method)?.diffusionAdapter != nil else { return nil }
        guard interval == nil, ratio == nil else {
            throw ModelError("\(method.lowercased()) takes its settings as --param NAME=VALUE (e.g. --param ratio=0.5), not --interval / --ratio")
        }
        return try MethodCatalog.diffusionMethod(method, parameters: try MethodParameters.parse(params, method: method.lowercased()).values)
    }

    /// ToMe-SD's settings, plan, tokens per block and FLOPs for `--json`.
    static func json(_ m: DiTTokenMergingReport) -> JSONValue {
        let p = m.settings.parameters, plan = m.plan
        let perLayer: JSONValue = m.mergedPerLayer.map { layers in
            .array(layers.map { .object(["attn": .number(Double($0.attention)), "cross_attn": .number(Double($0.crossAttention)),
                                         "mlp": .number(Double($0.mlp))]) })
        } ?? .null
        return .object([
            "method": .string("tomesd"),
            "ratio": .number(p.ratio), "max_downsample": .number(Double(p.maxDownsample)),
            "sx": .number(Double(p.sx)), "sy": .number(Double(p.sy)),
            "use_rand": .bool(p.useRand), "random_destinations": .bool(plan.useRand && m.noOpReason == nil),
            "merge_attn": .bool(p.mergeAttention), "merge_crossattn": .bool(p.mergeCrossAttention), "merge_mlp": .bool(p.mergeMLP),
            "seed": .number(Double(m.settings.seed)),
            "tokens": .number(Double(plan.tokenCount)), "downsample": .number(Double(plan.downsample)),
            "grid": .array([.number(Double(plan.height)), .number(Double(plan.width))]),
            "r": .number(Double(plan.effectiveR)),
            "no_op": m.noOpReason.map { .string($0) } ?? .null,
            "merged_tokens_per_block": perLayer,
            "calls": .number(Double(m.blocks.count)),
            "flops_saved": .number(m.flopsSaved),
            "matching_flops": .number(m.matchingFLOPs),
        ])
    }

    /// The step cache's per-call record: TeaCache's decisions and distances (`rel_l1` is the series
    /// `tokc schedule --method teacache --param distances=...` takes), Δ-DiT's plan, the blocks run.
    static func stepCacheJSON(_ report: DiffusionStepCacheReport) -> JSONValue {
        var fields: [String: JSONValue] = [
            "method": .string(report.policy.name),
            "blocks_run": .array(report.blocksRun.map { .string(String($0.map { $0 ? "C" : "R" })) }),
            "skipped_blocks": .number(Double(report.blocksRun.joined().filter { !$0 }.count)),
        ]
        switch report.policy {
        case .teaCache(let p):
            fields["threshold"] = .number(p.relL1Threshold)
            fields["coefficients"] = .array(p.coefficients.map { .number($0) })
            fields["rel_l1"] = .array(report.inputChanges.map { .number(Double($0)) })
            fields["calls"] = .array(report.calls.map { r in
                guard let d = r.teaCache else { return .null }
                return .object(["compute": .bool(d.compute), "forced": .bool(!d.evaluated), "rel_l1": .number(Double(d.relL1)),
                                "rescaled": .number(d.rescaled), "accumulated": .number(d.accumulatedCompared)])
            })
        case .deltaDiT:
            fields["calls"] = .array(report.calls.map { r in
                guard let d = r.deltaDiT else { return .null }
                return .object(["full": .bool(d.full), "stage_group": .string(d.group.rawValue),
                                "skipped": .array(d.skipped.map { .number(Double($0)) })])
            })
        case .calibrate:
            fields["pairs"] = .array(report.calibrationPairs.map { .array([.number(Double($0.input)), .number(Double($0.output))]) })
        }
        return .object(fields)
    }

    /// What a method is built for on this pipeline: steps, blocks, tokens, the sampler's timesteps, the code family.
    static func context(layers: Int, tokens: Int, _ schedulerConfig: DiffusersConfigFile, scheduler: String?, steps: Int,
                        family: String?) throws -> BenchDiffusion.SamplerContext {
        BenchDiffusion.SamplerContext(steps: steps, layers: layers, tokens: tokens,
                                      timesteps: try timesteps(schedulerConfig, scheduler, steps), family: family)
    }

    /// The sampler's timesteps for these settings (PAB's windows are in timesteps).
    static func timesteps(_ config: DiffusersConfigFile, _ className: String?, _ steps: Int) throws -> [Float] {
        var scheduler = try DiffusionSchedulers.make(config: config, className: className)
        try scheduler.setTimesteps(steps)
        return scheduler.timesteps
    }

    /// The method's schedule exactly as `tokc schedule --method NAME --steps S --layers L ...` builds it.
    /// `family` is the code family of the methods that have several (toca, duca, pab: "PixArt" for PixArt-α;
    /// nil: DiT). PAB reads the sampler's `timesteps` unless `--param timesteps` gives them.
    static func caching(method: String, steps: Int, layers: Int, interval: Int?, ratio: Double?, family: String?,
                        tokens: Int, params: [String], timesteps: () throws -> [Float] = { [] }) throws -> DiTCaching {
        let name = method.lowercased()
        guard let build = ScheduleCommand.builders[name] else {
            throw ModelError("unknown caching method '\(method)'; supported by tokc schedule: \(ScheduleCommand.supported.joined(separator: ", "))")
        }
        var params = params
        if name == "pab", try !MethodParameters.parse(params).values.keys.contains("timesteps") {
            params.append("timesteps=" + (try timesteps()).map { String(Int($0)) }.joined(separator: ","))
        }
        if name == "tgate", family != "PixArt" {
            throw ModelError("tgate freezes cross-attention, which DiT (class-conditional) does not have; run it on a PixArt-α pipeline")
        }
        let model: String? = ["toca", "duca"].contains(name) ? family : name == "pab" ? (family ?? "DiT") : nil
        let options = try ScheduleOptions(steps: steps, interval: interval, layers: layers, ratio: ratio, scheduler: nil,
                                          model: model, tokens: ["toca", "duca"].contains(name) ? tokens : nil, params: params)
        let built = try build(options)
        try options.rejectUnused(method: name)
        switch name {
        case "toca":
            // ToCa's partial steps need its parameters: the same ones tokc schedule builds (fresh counts over the model's tokens).
            let model: ToCa.Model = family == "PixArt" ? .pixart : .dit
            var p = model == .pixart ? ToCa.Parameters.pixart : (steps == 50 ? ToCa.Parameters.ditDDIM50 : ToCa.Parameters())
            p.numSteps = steps
            p.numLayers = layers
            p.numTokens = tokens
            if let interval { p.freshThreshold = interval }
            if let ratio { p.freshRatio = ratio }
            let hasPartial = built.schedule.actions.joined().joined().contains(.partial)
            return DiTCaching(method: name, schedule: built.schedule, toca: hasPartial ? p : nil)
        case "duca":
            return DiTCaching(method: name, schedule: built.schedule, duca: try ScheduleCommand.ducaParameters(options))
        case "pab":
            return DiTCaching(method: name, schedule: built.schedule, pab: try ScheduleCommand.pabParameters(options, temporal: false))
        case "tgate":
            return DiTCaching(method: name, schedule: built.schedule, tgate: try ScheduleCommand.tgateParameters(options))
        case "taylorseer":
            // The Taylor distances are in TaylorSeer's plans: the same parameters as tokc schedule's DiT setting.
            let order = try MethodParameters.parse(params).values["order"].map { v -> Int in
                guard let o = Int(v) else { throw ModelError("--param order must be an integer, got '\(v)'") }
                return o
            }
            let p = try TaylorSeer.Parameters.dit(interval: interval ?? 4, maxOrder: order ?? 4)
            return DiTCaching(method: name, schedule: built.schedule, taylorSeer: p)
        default:
            return DiTCaching(method: name, schedule: built.schedule)
        }
    }
}

extension GenerateCommand {
    /// One method as the sampler runs it (`tokc generate --method`, each row of `tokc bench --task diffusion`):
    /// a step cache (TeaCache, Δ-DiT), the catalog's in-block setting (ToMe-SD) or a module-caching schedule
    /// as `tokc schedule` builds it, with its settings in words.
    static func samplerMethod(_ spec: BenchDiffusion.MethodSpec, _ context: BenchDiffusion.SamplerContext) throws -> BenchDiffusion.SamplerMethod {
        let name = spec.name.lowercased().replacingOccurrences(of: "-", with: "_")
        let given = spec.description == spec.name ? "default" : spec.description
        if StepCachingOptions.methods.contains(name) {
            let policy = try StepCachingOptions.policy(method: name, interval: spec.interval, ratio: spec.ratio, params: spec.params)
            return .init(stepCaching: policy, settings: given)
        }
        if let setting = try Self.catalogSetting(method: name, interval: spec.interval, ratio: spec.ratio, params: spec.params) {
            switch setting {
            case .tokenMerging(let s): return .init(tokenMerging: s, settings: given)
            }
        }
        let caching = try Self.caching(method: name, steps: context.steps, layers: context.layers, interval: spec.interval,
                                                  ratio: spec.ratio, family: context.family, tokens: context.tokens, params: spec.params,
                                                  timesteps: { context.timesteps })
        // The settings line tokc schedule prints for the same options (as GenerateCommand.caching builds them).
        var params = spec.params
        if name == "pab", !params.contains(where: { $0.hasPrefix("timesteps=") }) {
            params.append("timesteps=" + context.timesteps.map { String(Int($0)) }.joined(separator: ","))
        }
        let settings = (try? ScheduleOptions(steps: context.steps, interval: spec.interval, layers: context.layers, ratio: spec.ratio,
                                             scheduler: nil, model: name == "pab" ? context.family ?? "DiT" : nil,
                                             tokens: ["toca", "duca"].contains(name) ? context.tokens : nil, params: params))
            .flatMap { o in try? ScheduleCommand.builders[name].map { try $0(o).settings } } ?? given
        return .init(caching: caching, settings: settings)
    }
}
