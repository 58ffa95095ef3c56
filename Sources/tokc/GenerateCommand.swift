import ArgumentParser
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
        model's blocks; --interval and --param as there). Methods whose schedule is
        compute/reuse only (fora) run; partial, forecast and skip actions are
        refused for now.
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

    @Option(name: .long, help: "Caching method inside the sampler (fora, toca, taylorseer).")
    var method: String?

    @Option(name: .long, help: "The caching method's interval N (as in tokc schedule).")
    var interval: Int?

    @Option(name: .long, help: "The caching method's base fresh ratio r0 (toca; 0 = reuse only, FORA behaviour).")
    var ratio: Double?

    @Option(name: .long, help: "Caching-method setting NAME=VALUE (repeatable, as in tokc schedule).")
    var param: [String] = []

    @Option(name: .long, help: "Threads for BLAS and the toolkit's loops (default: all cores).")
    var threads: Int?

    func run() throws {
        do {
            try applyThreads(threads)
            guard (classLabel == nil) != (promptEmbeds == nil) else {
                throw ModelError("give exactly one of --class N (DiT) and --prompt-embeds FILE (PixArt-α)")
            }
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
            guard steps >= 1 else { throw ModelError("--steps must be ≥ 1, got \(steps)") }
            guard guidance >= 0, guidance.isFinite else { throw ModelError("--guidance must be ≥ 0, got \(guidance)") }
            if method == nil, interval != nil || ratio != nil || !param.isEmpty { throw ModelError("--interval, --ratio and --param need --method") }
            let noiseTensor = try noise.map { try DiffusionSampling.loadTensor(path: $0, name: "latents") }
            let loadStart = Date()
            let result: DiffusionGenerationResult
            var loadSeconds = 0.0
            if let promptEmbeds {
                let captions = try PromptEmbeddings(file: promptEmbeds)
                let pipeline = try PixArtPipeline(folder: model)
                loadSeconds = Date().timeIntervalSince(loadStart)
                let caching = try method.map { try Self.caching(method: $0, steps: steps, layers: pipeline.transformer.config.layers,
                                                                interval: interval, ratio: ratio, family: "PixArt",
                                                                tokens: pipeline.transformer.config.tokenCount, params: param) }
                result = try pipeline.generate(PixArtGenerationOptions(captions: captions, steps: steps, guidance: guidance, seed: seed,
                                                                       noise: noiseTensor, scheduler: scheduler, caching: caching))
            } else {
                let pipeline = try DiTPipeline(folder: model)
                loadSeconds = Date().timeIntervalSince(loadStart)
                let caching = try method.map { try Self.caching(method: $0, steps: steps, layers: pipeline.transformer.config.layers,
                                                                interval: interval, ratio: ratio, family: nil,
                                                                tokens: pipeline.transformer.config.tokenCount, params: param) }
                result = try pipeline.generate(DiTGenerationOptions(classLabel: classLabel ?? 0, steps: steps, guidance: guidance,
                                                                    seed: seed, noise: noiseTensor, scheduler: scheduler, caching: caching))
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
                    "cache_decisions": result.cacheDecisions.map { calls in
                        .array(calls.map { call in .string(call.map { String($0.map(\.code)) }.joined(separator: " ")) })
                    } ?? .null,
                    "flops_convention": .string("multiply-add = 2 FLOPs; linear layers, attention scores and weighted sums, patch embedding and final projection; norms, activations and the VAE not counted"),
                    "image": .array([.number(Double(result.image.height)), .number(Double(result.image.width))]),
                ])
                print(report.formatted())
            } else {
                print("\(result.scheduler), \(result.stepSeconds.count) steps, guidance \(guidance): sampling \(String(format: "%.3f", total)) s, VAE \(String(format: "%.3f", result.vaeSeconds)) s, \(String(format: "%.3g", result.transformerFLOPsPerStep)) transformer FLOPs per step")
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }

    /// The method's schedule exactly as `tokc schedule --method NAME --steps S --layers L ...` builds it.
    /// `family` is the code family of the methods that have several (toca, duca: "PixArt" for PixArt-α).
    static func caching(method: String, steps: Int, layers: Int, interval: Int?, ratio: Double?, family: String?,
                        tokens: Int, params: [String]) throws -> DiTCaching {
        let name = method.lowercased()
        guard let build = ScheduleCommand.builders[name] else {
            throw ModelError("unknown caching method '\(method)'; supported by tokc schedule: \(ScheduleCommand.supported.joined(separator: ", "))")
        }
        let options = try ScheduleOptions(steps: steps, interval: interval, layers: layers, ratio: ratio, scheduler: nil,
                                          model: name == "toca" ? family : nil, tokens: name == "toca" ? tokens : nil, params: params)
        let built = try build(options)
        try options.rejectUnused(method: name)
        if name == "toca" {
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
        }
        guard name == "taylorseer" else { return DiTCaching(method: name, schedule: built.schedule) }
        // The Taylor distances are in TaylorSeer's plans: the same parameters as tokc schedule's DiT setting.
        let order = try MethodParameters.parse(params).values["order"].map { v -> Int in
            guard let o = Int(v) else { throw ModelError("--param order must be an integer, got '\(v)'") }
            return o
        }
        let p = try TaylorSeer.Parameters.dit(interval: interval ?? 4, maxOrder: order ?? 4)
        return DiTCaching(method: name, schedule: built.schedule, taylorSeer: p)
    }
}
