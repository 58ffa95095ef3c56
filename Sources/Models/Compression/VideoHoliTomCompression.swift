import Tensors
import TokenCompression

/// HoliTom's outer stage inside LLaVA-OneVision (`VideoTokenHook`): `HoliTom.outer` on each
/// video's pooled rows with the attention the tower's feature layer gave each patch (mean over
/// heads and queries, pooled like the rows, as the authors' OneVision port computes it): temporal
/// windows by dynamic programming, static positions averaged and DPC-kNN merged, each frame's
/// dynamic rows kept by received attention. The rows go to the LLM in the code's order with the
/// newline after them; positions renumbered.
///
/// The budget is ρ (a ratio as it is; a count k becomes k / (F·N)). The inner merge at LLM layer
/// 18 is not wired: it rewrites the values of kept rows, which a `PruneDecision` cannot express.
public enum VideoHoliTomCompression {
    public static let adapter = InModelAdapter(method: "holitom", parameters: ["tau", "beta", "neighbours"], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let base = HoliTom.Parameters()
        let tau = try p.double("tau", default: base.staticThreshold)
        let beta = try p.double("beta", default: base.beta)
        let neighbours = try p.int("neighbours", default: base.neighbours)
        try HoliTom.Parameters(staticThreshold: tau, beta: beta, neighbours: neighbours).validate()
        let hook = HoliTomHook(budget: budget) { video, target in
            guard let attention = video.receivedAttention else {
                throw ModelError("holitom: the model passed no received attention for video \(video.index)")
            }
            let ratio: Double
            if case .ratio(let r) = budget { ratio = r } else { ratio = Double(target) / Double(video.layout.frameTokens) }
            let parameters = HoliTom.Parameters(retainRatio: ratio, staticThreshold: tau, beta: beta, neighbours: neighbours)
            let r = try HoliTom.outer(features: video.tokens, frames: video.layout.frames, attention: attention, parameters: parameters)
            return VideoChoice(rows: r.tokens, sources: try representatives(r, input: video.tokens), policy: .renumber,
                               requested: r.compression.requestedCount,
                               notes: ["holitom: video \(video.index) windows \(r.windows.map { "\($0.lowerBound)–\($0.upperBound)" }.joined(separator: " ")), ρ' = \(r.retainRatioScaled)"])
        }
        return ModelCompression(info: HoliTom.info, budget: budget, hook: hook)
    }

    /// The input row each output row stands at: the first source of a merged row; a kept dynamic
    /// row is a copy of its input row (the result names only merged rows' sources), found by value.
    static func representatives(_ r: HoliTom.OuterResult, input: Tensor) throws -> [Int] {
        var merged: [Int: Int] = [:]
        for m in r.compression.merged { merged[m.outputIndex] = m.sources.min() }
        var byValue: [[Float]: Int] = [:]
        for i in 0..<input.rows where byValue[input.row(i)] == nil { byValue[input.row(i)] = i }
        return try (0..<r.tokens.rows).map { o in
            if let s = merged[o] { return s }
            guard let s = byValue[r.tokens.row(o)] else { throw ModelError("holitom: output row \(o) is neither merged nor a copy of an input row") }
            return s
        }
    }
}

/// The shared video bookkeeping, asking the model for the tower's received attention.
final class HoliTomHook: VideoCompressionHook {
    init(budget: Budget, choose: @escaping Choose) {
        super.init(method: "holitom", policy: .renumber, budget: budget, choose: choose)
    }

    override var wantsReceivedAttention: Bool { true }
}
