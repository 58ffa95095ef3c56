import ArgumentParser
import Evaluation
import Models
import Foundation

struct FlopsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flops",
        abstract: "Analytic FLOPs of a VLM (per stage, KV cache) or of a diffusion transformer's sampling run, with or without a method.",
        discussion: """
        No weights needed: give a Hugging Face config.json or a preset
        (\(ShapePresets.names.joined(separator: ", "))). Prints the vision encoder, projector,
        LLM prefill (following the method's per-layer visual-token schedule), decode and LM-head
        cost next to the uncompressed run, and the KV cache.

        Conventions: --convention design (default) counts a multiply-add as 2 FLOPs, as DESIGN.md;
        --convention macs counts it as 1, as FastV's formula and SparseVLM's counter do. Their
        FFN counts differ too: FastV 2 matrices (--ffn-matrices 2), SparseVLM 3.
        Examples:
          tokc flops --preset llava-1.5-7b --method fastv                        (K=2, R=50%)
          tokc flops --preset llava-1.5-7b --convention macs --ffn-matrices 2    (3.33 T, FastV Eq.)
          tokc flops --preset llava-1.5-7b --method sparsevlm --keep 192 --convention macs --ffn-matrices 3
          tokc flops --preset llava-onevision-7b --frames 32 --method vidcom2   (32 × 196 + 1 video tokens)
        Methods: \(MethodSchedulesNames.list).

        Diffusion presets (\(DiffusionPresets.names.joined(separator: ", "))) count a whole
        sampling run: --steps S calls of the transformer (default: the caching papers'
        setting, DiT DDIM-50, PixArt-α 20), a guided batch of 2 when --guidance > 1, and with
        --method a caching method's schedule built with tokc schedule's options (--interval,
        --ratio, --scheduler, --model, --param; layers, tokens and the code family come from
        the preset). The `total` line is the run's TFLOPs. Convention: docs/flops.md.
          tokc flops --preset pixart-alpha-256 --steps 20 --method fora --interval 2
          tokc flops --preset pixart-alpha-256 --method toca --interval 3 --ratio 0.1   (R = 90%)
          tokc flops --preset pixart-alpha-256 --steps 10                              (50% steps)
        --convention toca-code counts as the ToCa authors' own counters (DiT-ToCa's; for PixArt-α
        DuCa-PixArt-alpha's, per call, quirks included); with PixArt-α give --caption-tokens L,
        the prompt's valid T5 tokens, which their counter uses (default 120, the padded length).
        """
    )

    @Option(name: .long, help: "Hugging Face config.json (text model or VLM).")
    var config: String?

    @Option(name: .long, help: "Built-in model shape (VLM or diffusion).")
    var preset: String?

    @Option(name: .long, help: "Uncompressed visual tokens N (default: the model's usual single image).")
    var visualTokens: Int?

    @Option(name: .long, help: "A video of N frames instead of an image (LLaVA-OneVision: N × pooled tokens per frame + 1).")
    var frames: Int?

    @Option(name: .long, help: "Prompt tokens after the image (question + template).")
    var textTokens: Int = 30

    @Option(name: .long, help: "Prompt tokens before the image (LLaVA-1.5 system prompt incl. BOS: 35).")
    var systemTokens: Int = 35

    @Option(name: .long, help: "Compression method whose per-layer schedule to follow.")
    var method: String?

    @Option(name: .long, help: "The method's budget knob (e.g. DART M, FastV k, SparseVLM 192/128/64, FasterVLM T).")
    var keep: Int?

    @Option(name: .long, help: "Custom visual tokens per LLM layer, e.g. 576x2,288x30 (instead of --method).")
    var schedule: String?

    @Option(name: .long, help: "Generated tokens after prefill.")
    var decodeTokens: Int = 0

    @Option(name: .long, help: "design (multiply-add = 2 FLOPs) or macs (= 1); diffusion presets: design or toca-code.")
    var convention: String = "design"

    @Option(name: .long, help: "FFN matrices counted per LLM layer: 2 (FastV paper) or 3 (SwiGLU; default).")
    var ffnMatrices: Int?

    @Option(name: .long, help: "KV-cache bytes per element (2 = fp16).")
    var bytesPerElement: Int = 2

    @Option(name: .long, help: "Diffusion: sampler steps (transformer calls).")
    var steps: Int?

    @Option(name: .long, help: "Diffusion: classifier-free guidance scale (> 1: batch of 2).")
    var guidance: Double?

    @Option(name: .long, help: "Diffusion: the caching method's interval (as in tokc schedule).")
    var interval: Int?

    @Option(name: .long, help: "Diffusion: the caching method's base fresh ratio r0 (toca, duca; R = 1 − r0).")
    var ratio: Double?

    @Option(name: .long, help: "Diffusion: the caching method's ratio schedule (as in tokc schedule).")
    var scheduler: String?

    @Option(name: .long, help: "Diffusion: the caching method's code family (default: the preset's).")
    var model: String?

    @Option(name: .long, help: "Diffusion: caching-method setting NAME=VALUE (repeatable, as in tokc schedule).")
    var param: [String] = []

    @Option(name: .long, help: ArgumentHelp(
        "Diffusion (PixArt-α): caption tokens L, 1…120 (default 120, the pipeline's padded T5 length).",
        discussion: "The ToCa authors' PixArt-α counter (--convention toca-code) uses the prompt's valid T5 tokens (its attention mask), so their published numbers depend on their prompts."))
    var captionTokens: Int?

    @Flag(name: .long, help: "Print JSON instead of text.")
    var json = false

    func validate() throws {
        guard (config == nil) != (preset == nil) else { throw ValidationError("give exactly one of --config and --preset") }
        let diffusion = preset.flatMap(DiffusionPresets.named) != nil
        guard diffusion || FlopsConvention.Unit(rawValue: convention) != nil else { throw ValidationError("--convention must be design or macs") }
        if let f = ffnMatrices, f != 2 && f != 3 { throw ValidationError("--ffn-matrices must be 2 or 3") }
        if keep != nil && method == nil { throw ValidationError("--keep needs --method") }
        if schedule != nil && method != nil { throw ValidationError("give --method or --schedule, not both") }
        if frames != nil && visualTokens != nil { throw ValidationError("give --frames or --visual-tokens, not both (a video's tokens follow from its frames)") }
    }

    func run() throws {
        if let preset, let diffusion = DiffusionPresets.named(preset) {
            do {
                let report = try DiffusionFlopsReport.count(try diffusionRequest(diffusion))
                print(json ? try report.jsonString() : report.text)
            } catch let e as ValidationError {
                printError("error: \(e.message)")
                throw ExitCode.validationFailure
            } catch {
                printError("error: \(error)")
                throw ExitCode.validationFailure
            }
            return
        }
        let diffusionOnly: [(String, Bool)] = [("--steps", steps != nil), ("--guidance", guidance != nil), ("--interval", interval != nil),
                                               ("--ratio", ratio != nil), ("--scheduler", scheduler != nil), ("--model", model != nil),
                                               ("--param", !param.isEmpty), ("--caption-tokens", captionTokens != nil)]
        if let (name, _) = diffusionOnly.first(where: { $0.1 }) {
            printError("error: \(name) applies to the diffusion presets (\(DiffusionPresets.names.joined(separator: ", ")))")
            throw ExitCode.validationFailure
        }
        do {
            let report = try FlopsCalculator.report(try request())
            print(json ? try report.jsonString() : report.text)
        } catch let e as FlopsError {
            printError("error: \(e)")
            throw ExitCode.validationFailure
        }
    }

    func request() throws -> FlopsRequest {
        let shape: ModelShape
        if let preset { shape = try ShapePresets.named(preset) } else {
            let parsed = try ShapeConfigParser.parse(fileAt: config!)
            for d in parsed.defaulted { printError("note: \(d)") }
            shape = parsed.shape
        }
        var visual = visualTokens ?? shape.defaultVisualTokens
        var video: (frames: Int, tokensPerFrame: Int)?
        if let frames {
            let v = try VideoFlops.visualTokens(shape: shape, frames: frames)
            visual = v.visual
            video = (frames, v.tokensPerFrame)
            if let method { try VideoFlops.checkMethod(method) }
        }
        let layers = shape.llm.layers
        let plan: VisualTokenPlan
        if let schedule {
            plan = VisualTokenPlan(method: "custom", settings: "--schedule \(schedule)",
                                   llmVisual: try VisualTokenPlan.parseSchedule(schedule, layers: layers), projectorTokens: visual)
        } else if let method {
            let v = shape.vision
            let context = MethodSchedules.Context(
                visual: visual, llmLayers: layers, visionLayers: v?.encoder.layers ?? 0, tokensPerPass: v?.tokensPerPass ?? 0,
                encoderTokensPerPass: (v?.patchesPerPass ?? 0) + (v?.hasCLS == true ? 1 : 0), video: video)
            plan = try MethodSchedules.plan(method: method, keep: keep, context: context)
        } else {
            plan = .uncompressed(visual: visual, layers: layers)
        }
        var request = FlopsRequest(shape: shape, visualTokens: visual, systemTokens: systemTokens, textTokens: textTokens,
                                   decodeTokens: decodeTokens, plan: plan,
                                   convention: FlopsConvention(unit: FlopsConvention.Unit(rawValue: convention)!, ffnMatrices: ffnMatrices),
                                   bytesPerElement: bytesPerElement)
        request.videoFrames = frames
        return request
    }
}

extension FlopsCommand {
    /// A sampling run of a diffusion preset, following the caching method's schedule as `tokc schedule`
    /// builds it with the same options (layers, tokens and family from the preset).
    func diffusionRequest(_ preset: DiffusionPreset) throws -> DiffusionFlopsRequest {
        for (name, given) in [("--visual-tokens", visualTokens != nil), ("--frames", frames != nil), ("--keep", keep != nil),
                              ("--schedule", schedule != nil), ("--decode-tokens", decodeTokens != 0), ("--ffn-matrices", ffnMatrices != nil)]
            where given {
            throw ValidationError("\(name) applies to the VLM presets, not to \(preset.name)")
        }
        var shape = try preset.shape(captionTokens: captionTokens)
        guard let c = DiffusionFlopsShape.Convention(rawValue: convention) else {
            throw ValidationError("--convention for a diffusion preset is design or toca-code, got '\(convention)'")
        }
        shape.convention = c
        let steps = self.steps ?? preset.defaultSteps
        guard steps >= 1 else { throw ValidationError("--steps must be ≥ 1, got \(steps)") }
        let guidance = self.guidance ?? preset.defaultGuidance
        guard let method else {
            if interval != nil || ratio != nil || scheduler != nil || model != nil || !param.isEmpty {
                throw ValidationError("--interval, --ratio, --scheduler, --model and --param need --method")
            }
            return DiffusionFlopsRequest(model: preset.name, shape: shape, steps: steps, guidance: guidance)
        }
        let name = method.lowercased()
        guard let build = ScheduleCommand.builders[name] else {
            throw ValidationError("unknown caching method '\(method)'; supported: \(ScheduleCommand.supported.joined(separator: ", "))")
        }
        // The family and token count only for the methods whose schedules read them.
        let family = model ?? (["toca", "duca"].contains(name) ? preset.scheduleFamily : nil)
        let tokens = ScheduleCommand.freshTokenBuilders[name] != nil ? shape.tokens : nil
        func options() throws -> ScheduleOptions {
            try ScheduleOptions(steps: steps, interval: interval, layers: shape.layers, ratio: ratio, scheduler: scheduler,
                                model: family, tokens: tokens, params: param)
        }
        let o = try options()
        let built = try build(o)
        try o.rejectUnused(method: name)
        let hasPartial = built.schedule.actions.joined().joined().contains(.partial)
        let fresh = hasPartial ? try ScheduleCommand.freshTokenBuilders[name].map { try $0(try options()) } : nil
        let schedule = try DiffusionFlopsRequest.adapt(built.schedule, to: shape.moduleNames)
        return DiffusionFlopsRequest(model: preset.name, shape: shape, steps: steps, guidance: guidance, method: name,
                                     settings: built.settings,
                                     fractions: try DiffusionFlopsRequest.fractions(schedule: schedule, freshTokens: fresh, tokens: shape.tokens),
                                     skippedBlocks: DiffusionFlopsRequest.skippedBlocks(schedule))
    }
}

enum MethodSchedulesNames {
    static var list: String { MethodSchedules.supported.joined(separator: ", ") }
}
