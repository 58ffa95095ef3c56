import Foundation

/// One question for the analytic calculator: a model, an input, a visual-token plan.
public struct FlopsRequest: Sendable {
    public var shape: ModelShape
    /// Uncompressed visual tokens N in the LLM input.
    public var visualTokens: Int
    /// Prompt tokens before the image (LLaVA-1.5's system prompt incl. BOS is 35).
    public var systemTokens: Int
    /// Prompt tokens after the image (question + template).
    public var textTokens: Int
    /// Tokens generated after prefill, each a one-token forward over the growing KV cache.
    public var decodeTokens: Int
    public var plan: VisualTokenPlan
    public var convention: FlopsConvention
    /// KV-cache element size (2 = fp16/bf16).
    public var bytesPerElement: Int
    /// A video of this many frames instead of an image (LLaVA-OneVision): one tower pass per
    /// frame, the projector over every frame's patches (video methods act after it, on the pooled
    /// rows), `visualTokens` = frames × pooled tokens per frame + 1 newline. nil: an image.
    public var videoFrames: Int?

    public init(shape: ModelShape, visualTokens: Int, systemTokens: Int = 35, textTokens: Int = 30, decodeTokens: Int = 0,
                plan: VisualTokenPlan? = nil, convention: FlopsConvention = .design, bytesPerElement: Int = 2) {
        self.shape = shape
        self.visualTokens = visualTokens
        self.systemTokens = systemTokens
        self.textTokens = textTokens
        self.decodeTokens = decodeTokens
        self.plan = plan ?? .uncompressed(visual: visualTokens, layers: shape.llm.layers)
        self.convention = convention
        self.bytesPerElement = bytesPerElement
    }

    /// The same request without compression, the reference every reduction is measured against.
    public var uncompressed: FlopsRequest {
        var r = self
        r.plan = .uncompressed(visual: visualTokens, layers: shape.llm.layers)
        return r
    }

    /// Whole-sequence tokens entering each LLM layer.
    public var llmTokensPerLayer: [Int] { plan.llmVisual.map { $0 + systemTokens + textTokens } }

    func validate() throws {
        for (name, v) in [("visual tokens", visualTokens), ("system tokens", systemTokens), ("text tokens", textTokens),
                          ("decode tokens", decodeTokens)] where v < 0 {
            throw FlopsError.invalidRequest("\(name) must be ≥ 0, got \(v)")
        }
        guard bytesPerElement > 0 else { throw FlopsError.invalidRequest("bytes per element must be positive") }
        if let f = videoFrames {
            guard f > 0, let perFrame = shape.videoTokensPerFrame, shape.vision?.patchesPerPass ?? 0 > 0 else {
                throw FlopsError.invalidRequest("a video needs frames > 0 (got \(f)) and a model with a video path (LLaVA-OneVision); \(shape.name) has none")
            }
            guard visualTokens == f * perFrame + 1 else {
                throw FlopsError.invalidRequest("a \(f)-frame video gives \(f) × \(perFrame) + 1 = \(f * perFrame + 1) visual tokens, not \(visualTokens)")
            }
        }
        guard plan.llmVisual.count == shape.llm.layers else {
            throw FlopsError.invalidRequest("schedule has \(plan.llmVisual.count) layers; \(shape.name) has \(shape.llm.layers)")
        }
        guard plan.llmVisual.allSatisfy({ $0 >= 0 && (plan.measured || $0 <= visualTokens) }) else {
            throw FlopsError.invalidRequest("schedule \(plan.compactSchedule) leaves the range 0…\(visualTokens)")
        }
        try shape.llm.validate(shape.name)
        try shape.vision?.encoder.validate("\(shape.name) vision")
    }
}

/// Operations per stage of one request, in the request's convention.
public struct StageFlops: Sendable, Equatable, Codable {
    public var vision: Double
    public var projector: Double
    public var prefill: Double
    public var decode: Double
    /// Output projection: the last prompt position plus each decoded token.
    public var lmHead: Double
    public var total: Double { vision + projector + prefill + decode + lmHead }
}

/// What `tokc flops` reports: the stage costs and KV cache of a plan and of the uncompressed run.
public struct FlopsReport: Sendable {
    public var request: FlopsRequest
    public var stages: StageFlops
    public var baseline: StageFlops
    /// KV-cache bytes after prefill and after the decoded tokens.
    public var kvBytesPrefill: Double
    public var kvBytesFinal: Double
    public var baselineKVBytesPrefill: Double
    /// KV bytes per token held in every layer (0.5 MiB for LLaVA-1.5-7B in fp16).
    public var kvBytesPerToken: Double

    /// 1 − compressed/uncompressed; 0 when the reference is 0.
    public static func reduction(_ value: Double, of reference: Double) -> Double {
        reference > 0 ? 1 - value / reference : 0
    }
}

public enum FlopsCalculator {
    public static func report(_ r: FlopsRequest) throws -> FlopsReport {
        try r.validate()
        let base = r.uncompressed
        let kvPerToken = Double(2 * r.shape.llm.kvWidth * r.bytesPerElement)
        let prefillKV = kvPerToken * Double(r.llmTokensPerLayer.reduce(0, +))
        return FlopsReport(
            request: r, stages: try stages(r), baseline: try stages(base),
            kvBytesPrefill: prefillKV,
            kvBytesFinal: prefillKV + kvPerToken * Double(r.decodeTokens * r.shape.llm.layers),
            baselineKVBytesPrefill: kvPerToken * Double(base.llmTokensPerLayer.reduce(0, +)),
            kvBytesPerToken: kvPerToken * Double(r.shape.llm.layers))
    }

    public static func stages(_ r: FlopsRequest) throws -> StageFlops {
        let llm = r.shape.llm, c = r.convention
        let perLayer = r.llmTokensPerLayer
        let prefill = perLayer.reduce(0.0) { $0 + LayerFlops.prefill(llm, tokens: $1, c) }
        var decode = 0.0
        for t in 0..<r.decodeTokens {
            // Layer l's cache holds the tokens that entered it, plus earlier generated ones and itself.
            for n in perLayer { decode += LayerFlops.layer(llm, queries: 1, keys: n + t + 1, c) }
        }
        let head = LayerFlops.dense(rows: 1 + r.decodeTokens, widths: [llm.hidden, llm.vocab], c)
        let (vision, projector) = visionCost(r)
        return StageFlops(vision: vision, projector: projector, prefill: prefill, decode: decode, lmHead: head)
    }

    /// Vision encoder (patch embedding + layers, per pass) and projector. LLaVA towers run one
    /// pass per 576-token image/crop; Qwen2-VL runs one pass over N·4 patches.
    static func visionCost(_ r: FlopsRequest) -> (Double, Double) {
        guard let v = r.shape.vision, r.visualTokens > 0 else { return (0, 0) }
        let c = r.convention
        let passes: Int, patches: Int
        if let frames = r.videoFrames {
            passes = frames
            patches = v.patchesPerPass
        } else if v.tokensPerPass > 0 {
            passes = (r.visualTokens + v.tokensPerPass - 1) / v.tokensPerPass
            patches = v.patchesPerPass
        } else {
            passes = 1
            patches = r.visualTokens * v.mergeFactor
        }
        let encoderTokens = patches + (v.hasCLS ? 1 : 0)
        let schedule = r.plan.visionTokensPerLayer ?? Array(repeating: encoderTokens, count: v.encoder.layers)
        let embedWidth = v.channels * v.patchSize * v.patchSize * v.temporalPatch
        var perPass = LayerFlops.dense(rows: patches, widths: [embedWidth, v.encoder.hidden], c)
        for n in schedule.prefix(v.encoder.layers) { perPass += LayerFlops.prefill(v.encoder, tokens: n, c) }
        // The projector maps merged LLM tokens; widths start at the merged feature width.
        let projectorRows = r.videoFrames.map { $0 * v.patchesPerPass } ?? r.plan.projectorTokens
        let projector = LayerFlops.dense(rows: projectorRows, widths: v.projector, c)
        return (Double(passes) * perPass, projector)
    }
}
