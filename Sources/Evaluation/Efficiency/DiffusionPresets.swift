import Foundation
import Models
import TokenCompression

/// Built-in diffusion transformer shapes, so `tokc flops` counts a sampling run without weights.
///
/// Values are those of the public checkpoints' configs: DiT-XL/2 (facebook/DiT-XL-2-256: 28 blocks,
/// 16 heads × 72 = 1152, patch 2 on a 32×32×4 latent, learned sigma) and PixArt-XL/2
/// (PixArt-alpha/PixArt-XL-2-256x256 and -512x512: the same block stack with cross-attention to
/// 120 T5-XXL tokens of width 4096). Sampling defaults are the caching papers' settings: DiT DDIM-50
/// with guidance 1.5 (ToCa, TaylorSeer), PixArt-α DPM-Solver++ 20 steps with guidance 4.5 (ToCa).
public struct DiffusionPreset: Sendable {
    public var name: String
    public var shape: DiffusionFlopsShape
    public var defaultSteps: Int
    public var defaultGuidance: Double
    /// The code family the caching methods' schedules use for this model (`--model` of `tokc schedule`).
    public var scheduleFamily: String
    /// PixArt-α: the most caption tokens a prompt can have (the T5 tokenizer's `max_length` 120 in
    /// PixArt-α's pipeline); nil for class-conditional models.
    public var maxCaptionTokens: Int? = nil

    /// The preset's shape for captions of `captionTokens` tokens (nil: the preset's own 120). Refused for
    /// a class-conditional preset and outside 1…`maxCaptionTokens`.
    public func shape(captionTokens: Int?) throws -> DiffusionFlopsShape {
        guard let l = captionTokens else { return shape }
        guard shape.family == .pixart, let most = maxCaptionTokens else {
            throw FlopsError.invalidRequest("--caption-tokens applies to the PixArt-α presets, not to \(name)")
        }
        guard (1...most).contains(l) else {
            throw FlopsError.invalidRequest("--caption-tokens must be 1…\(most) for \(name) (T5 caption tokens, at most \(most)), got \(l)")
        }
        var s = shape
        s.captionTokens = l
        return s
    }
}

public enum DiffusionPresets {
    static func ditXL2(sample: Int) -> DiffusionFlopsShape {
        DiffusionFlopsShape(family: .dit, layers: 28, width: 1152, heads: 16, tokens: (sample / 2) * (sample / 2), patchSize: 2,
                            inChannels: 4, outChannels: 8)
    }

    static func pixArtXL2(sample: Int) -> DiffusionFlopsShape {
        DiffusionFlopsShape(family: .pixart, layers: 28, width: 1152, heads: 16, tokens: (sample / 2) * (sample / 2), patchSize: 2,
                            inChannels: 4, outChannels: 8, captionChannels: 4096, captionTokens: 120)
    }

    public static let all: [DiffusionPreset] = [
        DiffusionPreset(name: "dit-xl-2-256", shape: ditXL2(sample: 32), defaultSteps: 50, defaultGuidance: 1.5, scheduleFamily: "DiT"),
        DiffusionPreset(name: "pixart-alpha-256", shape: pixArtXL2(sample: 32), defaultSteps: 20, defaultGuidance: 4.5, scheduleFamily: "PixArt",
                        maxCaptionTokens: 120),
        DiffusionPreset(name: "pixart-alpha-512", shape: pixArtXL2(sample: 64), defaultSteps: 20, defaultGuidance: 4.5, scheduleFamily: "PixArt",
                        maxCaptionTokens: 120),
    ]

    public static var names: [String] { all.map(\.name) }

    /// The preset called `name`, nil when it is not a diffusion preset.
    public static func named(_ name: String) -> DiffusionPreset? {
        all.first { $0.name == name.lowercased() }
    }
}

/// One sampling run to count: a model's shapes, its calls, and (with a caching method) the share of
/// each module's token rows computed per call and layer.
public struct DiffusionFlopsRequest: Sendable {
    public var model: String
    public var shape: DiffusionFlopsShape
    public var steps: Int
    /// Guidance > 1 runs the conditional and unconditional samples in one batch of 2.
    public var guidance: Double
    public var method: String?
    public var settings: String
    /// `[call][layer][module]` (nil: uncached).
    public var fractions: [[[Double]]]?
    /// `[call][layer]`: the block does not run at all (DuCa's aggressive steps; nil: none). Only the
    /// PixArt-α authors' counter (`toca-code`) tells it apart from a block whose modules are all reused.
    public var skippedBlocks: [[Bool]]?

    public init(model: String, shape: DiffusionFlopsShape, steps: Int, guidance: Double, method: String? = nil, settings: String = "",
                fractions: [[[Double]]]? = nil, skippedBlocks: [[Bool]]? = nil) {
        self.model = model
        self.shape = shape
        self.steps = steps
        self.guidance = guidance
        self.method = method
        self.settings = settings
        self.fractions = fractions
        self.skippedBlocks = skippedBlocks
    }

    /// The blocks `schedule` skips whole (every module `skip`), `[call][layer]`.
    public static func skippedBlocks(_ schedule: CacheSchedule) -> [[Bool]] {
        schedule.actions.map { $0.map { !$0.isEmpty && $0.allSatisfy { $0 == .skip } } }
    }

    public var batch: Int { guidance > 1 ? 2 : 1 }

    /// ToCa's fresh tokens per `[call][layer][module]` in its schedule's module order (0 where a module is not partial).
    public static func freshTokens(_ s: ToCa.Schedule) -> [[[Int]]] {
        let names = s.cacheSchedule.moduleNames
        return s.freshCounts.map { call in call.map { layer in
            names.map { name in s.partialModules.firstIndex(of: name).map { layer[$0] } ?? 0 }
        } }
    }

    /// DuCa's fresh tokens per `[call][layer][module]` in its schedule's module order (DiT: attn, mlp;
    /// PixArt: attn, cross-attn, mlp; 0 where a module is not partial).
    public static func freshTokens(_ s: DuCa.Schedule) -> [[[Int]]] {
        let names = s.cacheSchedule.moduleNames
        return s.moduleFreshCounts.map { call in call.map { layer in
            names.map { name in s.partialModules.firstIndex(of: name).map { layer[$0] } ?? 0 }
        } }
    }

    /// `schedule` over `modules`: unchanged when it names them; a whole-block schedule (every layer's
    /// modules take one action, as FORA's and TaylorSeer's) written for other modules is applied to
    /// each of `modules` (FORA on PixArt-α reuses attention, cross-attention and MLP alike, as ToCa's
    /// PixArt code does at r0 = 0); anything else is an error.
    public static func adapt(_ schedule: CacheSchedule, to modules: [String]) throws -> CacheSchedule {
        guard schedule.moduleNames != modules else { return schedule }
        var actions: [[[CacheAction]]] = []
        for (call, layers) in schedule.actions.enumerated() {
            actions.append(try layers.enumerated().map { layer, a in
                guard let first = a.first, a.allSatisfy({ $0 == first }) else {
                    throw FlopsError.invalidRequest("the schedule caches \(schedule.moduleNames) with different actions per module (call \(call), layer \(layer)); this model has modules \(modules)")
                }
                return Array(repeating: first, count: modules.count)
            })
        }
        return CacheSchedule(moduleNames: modules, actions: actions)
    }

    /// Row fractions of a caching schedule: compute 1; reuse, forecast and skip 0; partial the fresh
    /// tokens over all tokens (`freshTokens[call][layer][module]`, required when the schedule has
    /// partial actions).
    public static func fractions(schedule: CacheSchedule, freshTokens: [[[Int]]]?, tokens: Int) throws -> [[[Double]]] {
        try schedule.actions.enumerated().map { call, layers in
            try layers.enumerated().map { layer, modules in
                try modules.enumerated().map { module, action in
                    switch action {
                    case .compute: return 1
                    case .reuse, .forecast, .skip: return 0
                    case .partial:
                        guard let fresh = freshTokens, call < fresh.count, layer < fresh[call].count, module < fresh[call][layer].count else {
                            throw FlopsError.invalidRequest("the schedule has partial steps but no fresh-token counts (call \(call), layer \(layer))")
                        }
                        return Double(fresh[call][layer][module]) / Double(tokens)
                    }
                }
            }
        }
    }
}

/// The count of one request next to the same model's uncached run with the same steps.
public struct DiffusionFlopsReport: Sendable {
    public var request: DiffusionFlopsRequest
    /// FLOPs per sampler call (the guided batch included).
    public var perCall: [Double]
    public var total: Double
    public var uncachedTotal: Double

    public static func count(_ r: DiffusionFlopsRequest) throws -> DiffusionFlopsReport {
        guard r.steps >= 1 else { throw FlopsError.invalidRequest("steps must be ≥ 1, got \(r.steps)") }
        guard r.guidance >= 0, r.guidance.isFinite else { throw FlopsError.invalidRequest("guidance must be ≥ 0, got \(r.guidance)") }
        let s = r.shape
        if let f = r.fractions {
            guard f.count == r.steps else { throw FlopsError.invalidRequest("the schedule covers \(f.count) calls, the run has \(r.steps) steps") }
            if let bad = f.firstIndex(where: { $0.count != s.layers || $0.contains { $0.count != s.moduleNames.count } }) {
                throw FlopsError.invalidRequest("call \(bad) of the schedule is not \(s.layers) layers × \(s.moduleNames.count) modules (\(s.moduleNames.joined(separator: ", ")))")
            }
        }
        if let k = r.skippedBlocks {
            guard r.fractions != nil else { throw FlopsError.invalidRequest("skipped blocks are given without a schedule's fractions") }
            guard k.count == r.steps, k.allSatisfy({ $0.count == s.layers }) else {
                throw FlopsError.invalidRequest("the skipped blocks are not \(r.steps) calls × \(s.layers) layers")
            }
        }
        let perCall = r.fractions.map { f in
            f.indices.map { s.callFLOPs(batch: r.batch, fractions: f[$0], skipped: r.skippedBlocks?[$0]) }
        } ?? Array(repeating: s.callFLOPs(batch: r.batch), count: r.steps)
        return DiffusionFlopsReport(request: r, perCall: perCall, total: perCall.reduce(0, +),
                                    uncachedTotal: Double(r.steps) * s.callFLOPs(batch: r.batch))
    }

    /// The convention the count used, in words.
    public var conventionText: String {
        let s = request.shape
        if s.usesPixArtAuthorsCounter { return Self.pixArtCounterConvention }
        return s.convention == .design ? Self.convention
            : Self.convention.replacingOccurrences(of: "not counted: norms, activations, softmax, ", with: "")
                + "; toca-code: also the attention scale, softmax (5 per score), LayerNorms, GELU and adaLN as C + 6C² (DiT-ToCa's counter)"
    }

    public static let pixArtCounterConvention = """
        toca-code (the ToCa/DuCa authors' PixArt-α counter, per call of batch B): per block LayerNorms 2BNC, adaLN \
        BC + 6BC² (in every block), self-attention QKV/scale/QKᵀ/softmax 5/AV/O, cross-attention over the batch \
        flattened (B·n queries × B·L caption rows, +1 per score, O charged on B·B·n rows), MLP with GELU 6 per \
        element; ToCa steps: self-attention reused, cross-attention and MLP on fresh rows; FORA steps: adaLN \
        only; skipped blocks: 0; nothing outside the blocks (embeddings, final layer, T5, VAE) — docs/flops.md
        """

    public static let convention = """
        multiply-add = 2 FLOPs; counted: linear layers (QKV/O, MLP, DiT's adaLN modulation, PixArt-α's caption \
        projection and cross-attention K/V over the caption), attention scores and weighted sums, patch embedding, \
        final projection; not counted: norms, activations, softmax, the text encoder and the VAE; a guided run \
        counts its batch of 2
        """

    public var text: String {
        let r = request, s = r.shape
        let tf = { (v: Double) in String(format: "%.2f", v / 1e12) }
        var lines = ["\(r.model): \(s.layers) blocks, width \(s.width), \(s.tokens) image tokens"
                     + (s.family == .pixart ? ", \(s.captionTokens) caption tokens" : "")
                     + "; \(r.steps) steps, guidance \(r.guidance) (batch \(r.batch))"]
        if let m = r.method { lines.append("method: \(m) (\(r.settings))") }
        lines.append("per call (uncached): \(tf(s.callFLOPs(batch: r.batch))) TFLOPs")
        if r.method != nil {
            let speed = total > 0 ? uncachedTotal / total : 0
            lines.append("uncached run: \(tf(uncachedTotal)) TFLOPs; this run saves \(String(format: "%.1f", 100 * (1 - total / uncachedTotal)))% (\(String(format: "%.2f", speed))× fewer FLOPs)")
        }
        lines.append("total: \(tf(total)) TFLOPs")
        lines.append("convention: \(conventionText)")
        return lines.joined(separator: "\n")
    }

    public func jsonString() throws -> String {
        let r = request
        let object: [String: Any] = [
            "model": r.model, "steps": r.steps, "guidance": r.guidance, "batch": r.batch,
            "method": r.method ?? NSNull(), "settings": r.settings,
            "per_call_flops": perCall, "total_tflops": total / 1e12, "uncached_tflops": uncachedTotal / 1e12,
            "convention": conventionText,
        ]
        let data = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
        return String(decoding: data, as: UTF8.self)
    }
}
