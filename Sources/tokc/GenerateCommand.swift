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
        abstract: "Sample an image from a class-conditional DiT pipeline folder (diffusers' DiTPipeline).",
        discussion: """
        --model is a folder as diffusers' save_pretrained writes it: model_index.json,
        transformer/ (DiTTransformer2DModel), vae/ (AutoencoderKL), scheduler/
        (DDIMScheduler, DPMSolverMultistepScheduler, DDPMScheduler or EulerDiscreteScheduler;
        --scheduler swaps the class and keeps the config fields, as from_config does).
        Guidance (> 1) is DiT's: on the noise channels, against the null class.
        --noise FILE.safetensors (tensor `latents`, [1, C, H, W]) starts from given latents, so a
        run can be compared with diffusers; --seed draws them with the toolkit's own generator
        (SplitMix64, not torch's).

        --method runs a caching method inside the sampler from the same schedule
        `tokc schedule` prints for these settings (steps = --steps, layers = the
        model's blocks; --interval and --param as there). Methods whose schedule is
        compute/reuse only (fora) run; partial, forecast and skip actions are
        refused for now.
        """
    )

    @Option(name: .long, help: "Pipeline folder (model_index.json, transformer/, vae/, scheduler/).")
    var model: String

    @Option(name: .customLong("class"), help: "Class id (0 ..< num_embeds_ada_norm).")
    var classLabel: Int

    @Option(name: .long, help: "Sampling steps.")
    var steps: Int = 50

    @Option(name: .long, help: "Classifier-free guidance scale (≥ 0; guidance applies when > 1).")
    var guidance: Double = 4

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

    @Option(name: .long, help: "Caching method inside the sampler (fora).")
    var method: String?

    @Option(name: .long, help: "The caching method's interval N (as in tokc schedule).")
    var interval: Int?

    @Option(name: .long, help: "Caching-method setting NAME=VALUE (repeatable, as in tokc schedule).")
    var param: [String] = []

    @Option(name: .long, help: "Threads for BLAS and the toolkit's loops (default: all cores).")
    var threads: Int?

    func run() throws {
        do {
            try applyThreads(threads)
            guard steps >= 1 else { throw ModelError("--steps must be ≥ 1, got \(steps)") }
            guard guidance >= 0, guidance.isFinite else { throw ModelError("--guidance must be ≥ 0, got \(guidance)") }
            let noiseTensor = try noise.map { try DiffusionSampling.loadTensor(path: $0, name: "latents") }
            let loadStart = Date()
            let pipeline = try DiTPipeline(folder: model)
            let loadSeconds = Date().timeIntervalSince(loadStart)
            let caching = try method.map { try Self.caching(method: $0, steps: steps, layers: pipeline.transformer.config.layers,
                                                            interval: interval, params: param) }
            if method == nil, interval != nil || !param.isEmpty { throw ModelError("--interval and --param need --method") }
            let result = try pipeline.generate(DiTGenerationOptions(classLabel: classLabel, steps: steps, guidance: guidance,
                                                                    seed: seed, noise: noiseTensor, scheduler: scheduler,
                                                                    caching: caching))
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
                    "class": .number(Double(classLabel)),
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
    static func caching(method: String, steps: Int, layers: Int, interval: Int?, params: [String]) throws -> DiTCaching {
        let name = method.lowercased()
        guard let build = ScheduleCommand.builders[name] else {
            throw ModelError("unknown caching method '\(method)'; supported by tokc schedule: \(ScheduleCommand.supported.joined(separator: ", "))")
        }
        let options = try ScheduleOptions(steps: steps, interval: interval, layers: layers, ratio: nil, scheduler: nil, model: nil,
                                          tokens: nil, params: params)
        let built = try build(options)
        try options.rejectUnused(method: name)
        return DiTCaching(method: name, schedule: built.schedule)
    }
}
