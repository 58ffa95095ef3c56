import Tensors
import TokenCompression

/// VidCom² inside LLaVA-OneVision: on each video's pooled rows before the LLM (`VideoTokenHook`),
/// frame budgets from frame uniqueness, the most distinct tokens of each frame kept in raster
/// order, the newline after them; positions renumbered (the OneVision code splices fewer rows).
///
/// The budget is ρ (`R_RATIO`): a ratio is used as it is; a count k becomes ρ = k / (F·N). The
/// achieved count is Σ k[f], only close to ρ·F·N because of the per-frame rounding.
public enum VideoVidCom2Compression {
    public static let adapter = InModelAdapter(method: "vidcom2", parameters: ["temperature", "channel_ratio"], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let base = VidCom2.Parameters()
        let temperature = try p.double("temperature", default: base.temperature)
        let channels = try p.double("channel_ratio", default: base.channelRatio)
        try VidCom2.Parameters(retentionRatio: 0.25, temperature: temperature, channelRatio: channels).validate()
        let hook = VideoCompressionHook(method: "vidcom2", policy: .renumber, budget: budget) { video, target in
            let n = video.layout.tokensPerFrame
            let ratio: Double
            if case .ratio(let r) = budget { ratio = r } else { ratio = Double(target) / Double(video.layout.frameTokens) }
            let parameters = VidCom2.Parameters(retentionRatio: ratio, temperature: temperature, channelRatio: channels)
            // The selection depends on N only; `.llavaOneVision` fixes N = 196 (the 7B/0.5B pooled
            // grid), so other grids use the per-frame-count case and the OneVision position policy.
            let model: VidCom2.Model = n == VidCom2.Model.llavaOneVision.tokensPerFrame ? .llavaOneVision : .qwenVL(tokensPerFrame: n)
            let c = try VidCom2.compress(tokens: video.tokens, model: model, parameters: parameters)
            return VideoChoice(rows: c.x, sources: c.kept, policy: .renumber, requested: c.result.requestedCount,
                               notes: ["vidcom2: video \(video.index) frame budgets \(c.scores.frameBudgets.map(String.init).joined(separator: " ")) (ρ = \(ratio))"])
        }
        return ModelCompression(info: VidCom2.info, budget: budget, hook: hook)
    }
}
