import Tensors
import TokenCompression

/// PruneVid inside LLaVA-OneVision, both stages of the PLLaVA code (the only one released).
///
/// 1. Merge (`VideoTokenHook`): `PruneVid.merge` on each video's pooled rows (frame clusters,
///    static/dynamic split, DPC-kNN cluster means); the merged rows go to the LLM in the code's
///    order with the newline after them, positions renumbered.
/// 2. Select (`PrefillHook`): at the selected layer (10) the text rows after the video score the
///    merged video rows with softmax(q·kᵀ/√d) computed from that layer's queries and keys WITHOUT
///    RoPE and without a causal mask (`PruneVid.select`); the layer runs on every row, then the
///    KV cache of layers ≤ 10 and the rows entering the next layers keep the chosen video rows and
///    all text (original positions). Deviations the model forces, reported: the OneVision newline
///    counts among the rows after the video (the PLLaVA prompt has none), and Qwen2's key heads
///    are repeated to the query heads (the PLLaVA code runs on a model without grouped heads).
///
/// PruneVid's counts come from τ, cluster_ratio and α, not from a budget.
public enum VideoPruneVidCompression {
    public static let adapter = InModelAdapter(method: "prunevid", parameters: ["tau", "segment_ratio", "cluster_ratio", "alpha", "layer"],
                                               build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let base = PruneVid.Parameters()
        let parameters = PruneVid.Parameters(staticThreshold: try p.double("tau", default: base.staticThreshold),
                                             temporalSegmentRatio: try p.double("segment_ratio", default: base.temporalSegmentRatio),
                                             clusterRatio: try p.double("cluster_ratio", default: base.clusterRatio),
                                             keepRatio: try p.double("alpha", default: base.keepRatio),
                                             selectedLayer: try p.int("layer", default: base.selectedLayer))
        try parameters.validate()
        return ModelCompression(info: PruneVid.info, budget: budget, hook: PruneVidHook(budget: budget, parameters: parameters))
    }
}

final class PruneVidHook: VideoCompressionHook, PrefillHook {
    let parameters: PruneVid.Parameters
    private var merges: [PruneVid.MergeResult] = []
    private var pending: [Int]?
    private var acted = false

    init(budget: Budget, parameters: PruneVid.Parameters) {
        self.parameters = parameters
        var results: [PruneVid.MergeResult] = []
        super.init(method: "prunevid", policy: .renumber, budget: budget, budgetDriven: false) { video, _ in
            let m = try PruneVid.merge(frames: video.tokens, frameCount: video.layout.frames, parameters: parameters)
            if video.index == 0 { results = [] }  // a new prompt: forget videos of one that never reached the decoder
            results.append(m)
            let sources = m.compression.merged.map { $0.sources.min() ?? 0 }
            return VideoChoice(rows: m.tokens, sources: sources, policy: .renumber, requested: m.tokens.rows,
                               notes: ["prunevid: video \(video.index) segments \(m.windowSizes.map(String.init).joined(separator: " ")) frames, \(m.staticSizes.reduce(0, +)) static + \(m.dynamicSizes.reduce(0, +)) dynamic rows"])
        }
        mergesOut = { let r = results; results = []; return r }
    }

    /// Hands over (and forgets) the merge results of the videos compressed since the last call.
    private var mergesOut: () -> [PruneVid.MergeResult] = { [] }

    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? {
        if layer == 0 {
            merges = mergesOut()
            pending = nil
            acted = false
        }
        let l = parameters.selectedLayer
        if layer == l {
            guard merges.count == 1, let merge = merges.first else {
                noOp("the question-guided selection needs exactly one video in the prompt (got \(merges.count))")
                return nil
            }
            let rows = merge.tokens.rows
            guard let span = state.imageSpans.first(where: { $0.count == rows + 1 }), state.imageSpans.count == 1 else {
                noOp("the selection could not find the video's \(rows + 1) rows among \(state.imageSpans.count) visual spans")
                return nil
            }
            // Rows are still the prompt's here (nothing cut before layer l).
            let layout = try TokenLayout(imageStart: span.lowerBound, imageCount: rows, totalCount: state.hidden.rows)
            let (q, k) = try state.unrotatedHeads()
            let start = scoringStart()
            let r = try PruneVid.select(queries: q, keys: k, layout: layout, staticSizes: merge.staticSizes,
                                        dynamicSizes: merge.dynamicSizes, windowSizes: merge.windowSizes, parameters: parameters)
            addScoringTime(since: start)
            pending = r.compression.kept
            report.achievedVisualTokens = r.compression.achievedCount
            report.positionPolicy = .keepOriginal
            note("layer \(l): kept \(r.compression.achievedCount) of \(rows) merged video rows (α = \(parameters.keepRatio)), newline kept")
        }
        if layer == l + 1, let kept = pending {
            acted = true
            return PruneDecision(keptRows: kept, positions: .keepOriginal)
        }
        return nil
    }

    /// Layers ≤ l ran on every row; their caches keep the chosen rows only, as the code slices them.
    func cacheCompaction(_ summary: PrefillSummary) throws -> [Int: [Int]] {
        guard acted, let kept = pending else { return [:] }
        var out: [Int: [Int]] = [:]
        for l in 0...parameters.selectedLayer { out[l] = kept }
        return out
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        if !acted && parameters.selectedLayer + 1 >= summary.tokensPerLayer.count {
            noOp("the model has \(summary.tokensPerLayer.count) layers, so the selection at layer \(parameters.selectedLayer) cuts nothing after it (merge stage only)")
        }
        report.keptIndices = summary.keptOriginalIndices
    }
}

extension PrefillState {
    /// This layer's queries and keys of every current row WITHOUT RoPE, as `[heads, rows, headDim]`
    /// each, the key heads repeated to the query heads (grouped-query models).
    func unrotatedHeads() throws -> (queries: Tensor, keys: Tensor) {
        let block = model.layers[layer]
        let x = try model.rms(hidden, block.inputNorm)
        let q = try block.q(x, store: model.store), k = try block.k(x, store: model.store)
        let h = headCount, kv = kvHeadCount, d = headDim, s = hidden.rows
        var queries = Tensor(zeros: [h, s, d]), keys = Tensor(zeros: [h, s, d])
        for head in 0..<h {
            let g = head / (h / kv)
            for r in 0..<s {
                for c in 0..<d {
                    queries[flat: (head * s + r) * d + c] = q[flat: r * h * d + head * d + c]
                    keys[flat: (head * s + r) * d + c] = k[flat: r * kv * d + g * d + c]
                }
            }
        }
        return (queries, keys)
    }
}
