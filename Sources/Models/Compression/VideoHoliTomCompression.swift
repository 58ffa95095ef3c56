import Tensors
import TokenCompression

/// HoliTom's outer stage inside LLaVA-OneVision (`VideoTokenHook`): `HoliTom.outer` on each
/// video's pooled rows with the attention the tower's feature layer gave each patch (mean over
/// heads and queries, pooled like the rows, as the authors' OneVision port computes it): temporal
/// windows by dynamic programming, static positions averaged and DPC-kNN merged, each frame's
/// dynamic rows kept by received attention. The rows go to the LLM in the code's order with the
/// newline after them; positions renumbered.
///
/// The budget is ρ (a ratio as it is; a count k becomes k / (F·N)).
///
/// The inner merge runs only when asked (`inner_layer=k`, optional `inner_ratio=r`, default 0.5), as the
/// code runs it only when `HOLITOM_k` and `HOLITOM_r` are set: before decoder layer k, `HoliTom.inner`
/// on the current rows with layer k−1's last-query attention; the kept rows carry the folded values
/// (`PruneDecision.replacement`), original positions kept. Its visual tokens are the video's rows as
/// spliced (the newline included: it is part of the visual span the code passes to the LLM).
public enum VideoHoliTomCompression {
    public static let adapter = InModelAdapter(method: "holitom", parameters: ["tau", "beta", "neighbours", "inner_layer", "inner_ratio"],
                                               build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let base = HoliTom.Parameters()
        let tau = try p.double("tau", default: base.staticThreshold)
        let beta = try p.double("beta", default: base.beta)
        let neighbours = try p.int("neighbours", default: base.neighbours)
        let innerLayer = try p.int("inner_layer")
        let innerRatio = try p.double("inner_ratio", default: base.innerRemoveRatio)
        try HoliTom.Parameters(staticThreshold: tau, beta: beta, neighbours: neighbours, innerLayer: innerLayer ?? base.innerLayer,
                               innerRemoveRatio: innerRatio).validate()
        if innerLayer == nil, try p.double("inner_ratio") != nil {
            throw CompressionError.invalidParameter("holitom: inner_ratio needs inner_layer (the inner merge runs only when both are set, as HOLITOM_k and HOLITOM_r)")
        }
        let inner = innerLayer.map { HoliTom.Parameters(innerLayer: $0, innerRemoveRatio: innerRatio) }
        let hook = HoliTomHook(budget: budget, inner: inner) { video, target in
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
final class HoliTomHook: VideoCompressionHook, PrefillHook {
    /// The inner merge's k and r, nil when it is off.
    let inner: HoliTom.Parameters?
    /// Rows entering layer k−1 (its last row is the query whose attention the merge reads).
    private var rowsBeforeAttention = 0

    init(budget: Budget, inner: HoliTom.Parameters?, choose: @escaping Choose) {
        self.inner = inner
        super.init(method: "holitom", policy: .renumber, budget: budget, choose: choose)
    }

    override var wantsReceivedAttention: Bool { true }

    func attentionRecord(layer: Int) -> AttentionRecord {
        guard let k = inner?.innerLayer, layer == k - 1 else { return .none }
        return .probabilities(rows: [rowsBeforeAttention - 1])
    }

    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? {
        guard let parameters = inner else { return nil }
        let k = parameters.innerLayer
        if layer == k - 1 { rowsBeforeAttention = state.hidden.rows }
        guard layer == k else { return nil }
        guard state.imageSpans.count == 1, let recorded = state.previousAttention else {
            noOp("inner merge at layer \(k): needs one video span and layer \(k - 1)'s attention (\(state.imageSpans.count) spans)")
            return nil
        }
        let layout = try state.tokenLayout()
        let heads = recorded.values.shape[0], keys = recorded.values.shape[2]
        let start = scoringStart()
        let r = try HoliTom.inner(hiddenStates: state.hidden, attentionLastRow: try recorded.values.reshaped([heads, keys]),
                                  layout: layout, parameters: parameters)
        addScoringTime(since: start)
        guard r.compression.kept.count < state.hidden.rows else {
            note("inner merge at layer \(k): nothing to fold")
            return nil
        }
        note("inner merge at layer \(k): \(layout.imageCount) → \(r.compression.achievedCount) video rows (r = \(parameters.innerRemoveRatio)), \(r.mergedSources.count) folded")
        return PruneDecision(keptRows: r.compression.kept, positions: .keepOriginal, replacement: r.hiddenStates)
    }
}
