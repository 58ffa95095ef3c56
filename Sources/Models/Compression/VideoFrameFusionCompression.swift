import Tensors
import TokenCompression

/// FrameFusion inside LLaVA-OneVision's decoder, where the patched Qwen2 layers of
/// `thu-nics/FrameFusion` call it: layer 0 before its attention, then every layer after its
/// attention and residual add, before the MLP (`PrefillHook.afterAttention`). Each call is
/// `FrameFusion.call` on the current rows: merged runs become one row holding their mean
/// (`PruneDecision.replacement`), the others are dropped; the pruning call reads the last query's
/// attention of the same layer (head mean). Later layers and their KV caches are built from the
/// merged rows; the caches of the layers already run keep every row, as the code's cache does.
/// Survivors keep their original positions.
///
/// Layout (from the video hook point, where the hook only reads the `VideoLayout` and changes
/// nothing): frame `f`'s cell `j` has patch type `j`, so a cell merges into the same cell of the
/// previous frame; OneVision's single newline after the last frame has no frame slot, so it gets
/// type −1 and, like text, is never merged or pruned. One video per prompt (batch 1, as the code).
///
/// Budget: FrameFusion is driven by `cost` (the FLOPs fraction of the unreduced LLM); a ratio
/// budget r gives cost r, a count k gives k / (frame tokens); `cost=` overrides either.
public enum VideoFrameFusionCompression {
    public static let adapter = InModelAdapter(method: "framefusion",
                                               parameters: ["cost", "similarity", "ratio_lower_bound", "budget_layers"],
                                               build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let base = FrameFusion.Parameters()
        let cost = try p.double("cost")
        if case .ratio(let r) = budget, cost == nil, !(r.isFinite && r > 0 && r <= 1) {
            throw CompressionError.invalidBudget("framefusion: ratio \(r) must be in (0, 1]")
        }
        let parameters = FrameFusion.Parameters(cost: cost ?? base.cost,
                                                similarityLowerBound: try p.double("similarity", default: base.similarityLowerBound),
                                                ratioLowerBound: try p.double("ratio_lower_bound", default: base.ratioLowerBound),
                                                budgetLayers: try p.int("budget_layers", default: base.budgetLayers))
        try parameters.validate()
        return ModelCompression(info: FrameFusion.info, budget: budget,
                                hook: FrameFusionHook(budget: budget, parameters: parameters, costGiven: cost != nil))
    }
}

final class FrameFusionHook: CompressionHook, VideoTokenHook, PrefillHook {
    let budget: Budget
    let baseParameters: FrameFusion.Parameters
    let costGiven: Bool
    private var layouts: [VideoLayout] = []
    /// The prefill in progress: FrameFusion's state and the parameters this video's budget gives.
    private var state: FrameFusion.State?
    private var parameters = FrameFusion.Parameters()
    /// Frame tokens (newline excluded) the last acting call aimed at.
    private var requestedFrameTokens = 0

    init(budget: Budget, parameters: FrameFusion.Parameters, costGiven: Bool) {
        self.budget = budget
        self.baseParameters = parameters
        self.costGiven = costGiven
        super.init(method: "framefusion", policy: .keepOriginal)
    }

    /// Only reads the layout: FrameFusion acts in the decoder.
    func compressVideo(_ video: PooledVideo) throws -> CompressedVideo? {
        if video.index == 0 { layouts = [] }
        layouts.append(video.layout)
        return nil
    }

    func beforeLayer(_ layer: Int, state current: PrefillState) throws -> PruneDecision? {
        guard layer == 0 else { return nil }
        let videos = layouts
        layouts = []
        state = nil
        guard videos.count == 1, let layout = videos.first else {
            beginReport(visualBefore: 0, requested: 0, achieved: 0, policy: .keepOriginal)
            noOp("FrameFusion runs on exactly one video per prompt (batch 1, as the code; got \(videos.count))")
            return nil
        }
        guard current.imageSpans.count == 1, let span = current.imageSpans.first, span.count == layout.rowCount else {
            beginReport(visualBefore: layout.frameTokens, requested: layout.frameTokens, achieved: layout.frameTokens, policy: .keepOriginal)
            noOp("the video's \(layout.rowCount) rows are not the prompt's one visual span (\(current.imageSpans.map(\.count)))")
            return nil
        }
        let frameTokens = layout.frameTokens
        parameters = baseParameters
        if !costGiven {
            switch budget {
            case .ratio(let r): parameters.cost = r
            case .count: parameters.cost = Double(max(1, try budget.tokens(outOf: frameTokens))) / Double(frameTokens)
            }
        }
        try parameters.validate()
        beginReport(visualBefore: frameTokens, requested: frameTokens, achieved: frameTokens, policy: .keepOriginal)
        requestedFrameTokens = frameTokens
        let types = current.originalIndices.map { o -> Int in
            guard span.contains(o) else { return -1 }
            let local = o - span.lowerBound
            return local < frameTokens ? local % layout.tokensPerFrame : -1
        }
        var s = try FrameFusion.State(patchType: types, patchCount: layout.tokensPerFrame)
        s.positions = current.positions
        state = s
        note("cost \(parameters.cost) over \(parameters.budgetLayers) budget layers, S_th \(parameters.similarityLowerBound); \(layout.frames) frames × \(layout.tokensPerFrame) cells, newline never merged")
        return try step(layer: 0, where: "before attention", hidden: current.hidden, attention: nil)
    }

    func attentionRecord(layer: Int) -> AttentionRecord {
        // The pruning call needs this layer's last-query attention, as the patched SDPA computes it.
        guard let s = state, s.finishMerging, !s.finishPruning else { return .none }
        return .probabilities(rows: [s.positions.count - 1])
    }

    func actsAfterAttention(layer: Int) -> Bool {
        guard let s = state else { return false }
        return !(s.finishMerging && s.finishPruning)
    }

    func afterAttention(_ layer: Int, state current: PrefillState) throws -> PruneDecision? {
        var row: Tensor? = nil
        if let recorded = current.previousAttention {
            let heads = recorded.values.shape[0], keys = recorded.values.shape[2]
            row = try recorded.values.reshaped([heads, keys])
        }
        return try step(layer: layer, where: "after attention", hidden: current.hidden, attention: row)
    }

    private func step(layer: Int, where place: String, hidden: Tensor, attention: Tensor?) throws -> PruneDecision? {
        guard var s = state, !(s.finishMerging && s.finishPruning) else { return nil }
        let start = scoringStart()
        let r = try FrameFusion.call(hiddenStates: hidden, attentionLastRow: attention, state: &s, parameters: parameters)
        addScoringTime(since: start)
        state = s
        let text = s.originalLength - s.imageLength
        if let m = r.merge {
            requestedFrameTokens = r.compression.requestedCount - text
            note("layer \(layer) \(place): merged \(hidden.rows - r.compression.kept.count) rows (needed sparsity \(m.neededSparsity))")
        } else if r.prune != nil {
            requestedFrameTokens = r.compression.requestedCount
            note("layer \(layer) \(place): pruned to \(r.compression.achievedCount) video rows by last-query attention")
        }
        report.achievedVisualTokens = r.compression.kept.count - text
        report.requestedVisualTokens = requestedFrameTokens
        guard r.compression.kept.count < hidden.rows else { return nil }
        return PruneDecision(keptRows: r.compression.kept, positions: .keepOriginal, replacement: r.hiddenStates)
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        report.keptIndices = summary.keptOriginalIndices
        state = nil
    }
}
