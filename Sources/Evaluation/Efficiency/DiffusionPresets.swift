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
        DiffusionPreset(name: "pixart-alpha-256", shape: pixArtXL2(sample: 32), defaultSteps: 20, defaultGuidance: 4.5, scheduleFamily: "PixArt"),
        DiffusionPreset(name: "pixart-alpha-512", shape: pixArtXL2(sample: 64), defaultSteps: 20, defaultGuidance: 4.5, scheduleFamily: "PixArt"),
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

    public init(model: String, shape: DiffusionFlopsShape, steps: Int, guidance: Double, method: String? = nil, settings: String = "",
                fractions: [[[Double]]]? = nil) {
        self.model = model
        self.shape = shape
        self.steps = steps
        self.guidance = guidance
        self.method = method
        self.settings = settings
        self.fractions = fractions
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
        let perCall = r.fractions.map { $0.map { s.callFLOPs(batch: r.batch, fractions: $0) } }
            ?? Array(repeating: s.callFLOPs(batch: r.batch), count: r.steps)
        return DiffusionFlopsReport(request: r, perCall: perCall, total: perCall.reduce(0, +),
                                    uncachedTotal: Double(r.steps) * s.callFLOPs(batch: r.batch))
    }

    /// The convention the count used, in words.
    public var conventionText: String {
        request.shape.convention == .design ? Self.convention
            : Self.convention.replacingOccurrences(of: "not counted: norms, activations, softmax, ", with: "")
                + "; toca-code: also the attention scale, softmax (5 per score), LayerNorms, GELU and adaLN as C + 6C² (DiT-ToCa's counter)"
    }

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
