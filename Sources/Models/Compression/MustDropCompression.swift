import Foundation
import Tensors
import TokenCompression

/// MustDrop's three stages inside the model.
///
/// - Window merge (inside the tower, after encoder layer 0): the patch grid is cut into 3×3
///   windows and every window whose mean pairwise cosine similarity is ≥ 0.8 becomes one token
///   (`MustDrop.windowMerge`); the rest of the tower, the projector and the LLM see
///   `[CLS, merged windows, unmerged patches]`. It needs a grid divisible by the window (24×24 for
///   LLaVA-1.5; `window=N` picks another size, e.g. 2 or 4 for the built-in model's 16×16) and one
///   tile: on AnyRes the code takes the merge count's minimum over the crops of a batch, while this
///   runtime runs tiles one at a time, so NeXT images are not merged (said in the report).
/// - Key set (vision side, no change to the features): the top 8 % of the (merged) patch tokens by
///   head-mean [CLS] attention of the feature layer (ViT layer 23 of 24 = encoder layer −2).
/// - LLM stage: after each pruning layer (the paper's 2, 6, 10, 14 of 32, scaled to the model's
///   depth) the runtime records the text rows' attention; a visual row is dropped when both its
///   summed and its max text→visual attention fall below the thresholds, unless it is in the key
///   set. Positions are renumbered.
///
/// MustDrop is threshold-driven, so the budget only picks the README threshold pair of the closest
/// setting (192/128/64 on 576 tokens); `global=`/`individual=` set them directly. A budget that asks
/// for every token is a no-op, window merge included. On a multi-tile (NeXT) image the key set is empty.
final class MustDropHook: CompressionHook, PrefillHook, VisionFeatureHook {
    let budget: Budget
    let fixedThresholds: (global: Float, individual: Float)?
    let captureRequest = VisionCaptureRequest(attention: [-2: .probabilities(rows: [0])])
    private var keySet: [Int] = []
    private var keySetNote: String?
    private var layers: [Int] = []
    private var parameters: MustDrop.Parameters
    private var textRowsAt: [Int: [Int]] = [:]
    /// Per patch row after the window merge, every patch it holds (a merged window: all of them,
    /// its largest index being the bottom-right patch it was merged into); nil: no merge.
    private var mergedPatches: [[Int]]?
    private var mergeNote: String?
    /// Patches of the tile the tower saw (the visual-token count before any stage).
    private var patchCount = 0
    /// Visual rows that entered the LLM.
    private var llmVisualRows = 0
    /// Scoring time of the vision stages, added to the report when the prefill starts.
    private var pendingVisionSeconds = 0.0

    init(budget: Budget, thresholds: (Float, Float)?, parameters: MustDrop.Parameters) throws {
        try parameters.validate()
        self.budget = budget
        self.parameters = parameters
        fixedThresholds = thresholds
        super.init(method: "mustdrop", policy: .renumber)
    }

    // MARK: vision side: the window merge and the key set

    func afterLayer(_ step: VisionLayerStep) throws -> Tensor? {
        guard step.layer == 0 else { return nil }
        if step.imageIndex == 0 && step.tile == 0 {
            keySet = []
            keySetNote = nil
            mergedPatches = nil
            mergeNote = nil
            pendingVisionSeconds = 0
            patchCount = step.patchCount
        }
        guard step.imageIndex == 0, step.tileCount == 1 else {
            if step.tile == 0 {
                mergeNote = "mustdrop: no window merge on a multi-tile or multi-image input (the code merges the same count in every crop of a batch; tiles run one at a time here)"
            }
            return nil
        }
        let n = step.patchCount
        if fixedThresholds == nil, case .noOp = try budget.resolve(over: n) { return nil }
        let side = Int(Double(n).squareRoot().rounded())
        let window = parameters.windowHeight
        guard side * side == n, side % window == 0, step.hidden.rows == n + 1 else {
            mergeNote = "mustdrop: no window merge: the \(side)×\(side) patch grid\(step.hidden.rows == n + 1 ? "" : " without a [CLS] row") does not split into \(window)×\(window) windows (the code's 3×3 fits LLaVA-1.5's 24×24; window=N picks another)"
            return nil
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let merged = try MustDrop.windowMerge(step.hidden, parameters: parameters)
        pendingVisionSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let windows = merged.windowSimilarity.count
        guard !merged.mergedWindows.isEmpty else {
            mergeNote = "mustdrop: window merge after tower layer 0: none of the \(windows) windows reached similarity \(parameters.similarityThreshold)"
            return nil
        }
        var patches = [[Int]](repeating: [], count: merged.tokens.rows - 1)
        for (token, row) in merged.assignment.enumerated() where token > 0 { patches[row - 1].append(token - 1) }
        mergedPatches = patches
        mergeNote = "mustdrop: window merge after tower layer 0: \(merged.mergedWindows.count) of \(windows) \(window)×\(window) windows merged (\(n) → \(merged.tokens.rows - 1) patch rows)"
        return merged.tokens
    }

    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        keySet = []
        guard image.tiles.count == 1, image.imageIndex == 0 else {
            keySetNote = "mustdrop: multi-tile or multi-image input: no key set (the code's key set is defined on one 24×24 grid)"
            return nil
        }
        let tile = image.tiles[0]
        guard tile.classTokenDropped else { throw ModelError("mustdrop needs the vision tower's [CLS] token (a CLIP tower with the 'default' strategy)") }
        let cls = try VisionSideHook.classRow(tile, method: "mustdrop")
        let start = DispatchTime.now().uptimeNanoseconds
        keySet = try MustDrop.keySet(clsAttention: cls, parameters: parameters)
        keySetNote = "mustdrop: key set of \(keySet.count) patches (top \(Int(parameters.keySetRate * 100)) % by [CLS] attention)"
        pendingVisionSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        guard let mergedPatches else { return nil }
        // Rows stay in the merged order; each is tagged with its patch for keep maps.
        let sources = mergedPatches.map { $0.max()! }
        guard sources.count == tile.features.rows else {
            throw ModelError("mustdrop: \(tile.features.rows) feature rows after the window merge but \(sources.count) tracked rows")
        }
        return [try KeptFeatures(rows: tile.features, sourceIndices: sources)]
    }

    // MARK: LLM side: the dual-attention filter

    static func defaultLayers(depth: Int) -> [Int] {
        var out: [Int] = []
        for l in [2, 6, 10, 14] {
            let v = max(0, min(depth - 2, Int((Double(l) * Double(depth) / 32).rounded())))
            if !out.contains(v) { out.append(v) }
        }
        return out
    }

    /// README threshold pairs: ≈192 tokens (0.001, 0.001), ≈128 (0.0012, 0.001), ≈64 (0.011, 0.01).
    static func thresholds(target k: Int, imageTokens n: Int) -> (setting: Int, global: Float, individual: Float) {
        let normalized = Double(k) * 576 / Double(max(n, 1))
        let table: [(Int, Float, Float)] = [(192, 0.001, 0.001), (128, 0.0012, 0.001), (64, 0.011, 0.01)]
        let best = table.min { abs(Double($0.0) - normalized) < abs(Double($1.0) - normalized) }!
        return (best.0, best.1, best.2)
    }

    func attentionRecord(layer: Int) -> AttentionRecord {
        guard layers.contains(layer), let rows = textRowsAt[layer] else { return .none }
        return .probabilities(rows: rows)
    }

    func beforeLayer(_ l: Int, state: PrefillState) throws -> PruneDecision? {
        let layout = try state.tokenLayout()
        if l == 0 {
            let n0 = layout.imageCount
            llmVisualRows = n0
            // Before any stage: the tower's patches when the window merge ran, else what entered the LLM.
            let before = mergedPatches == nil ? n0 : patchCount
            let resolution = try budget.resolve(over: before)
            let requested = resolution.requested
            beginReport(visualBefore: before, requested: requested, achieved: n0, policy: .renumber, scoringSeconds: pendingVisionSeconds)
            report.visualRowPatches = mergedPatches
            pendingVisionSeconds = 0
            textRowsAt = [:]
            layers = []
            for note in [mergeNote, keySetNote].compactMap({ $0 }) { report.notes.append(note) }
            keySetNote = nil
            mergeNote = nil
            mergedPatches = nil
            if keySet.count > n0 || keySet.contains(where: { $0 >= n0 }) { keySet = [] }
            if fixedThresholds == nil, case .noOp(_, let why) = resolution {
                noOp(why)
                return nil
            }
            guard state.model.config.layers >= 2 else {
                noOp("a 1-layer decoder has no layer after a pruning layer")
                return nil
            }
            layers = Self.defaultLayers(depth: state.model.config.layers)
            if let t = fixedThresholds {
                parameters.globalThreshold = t.global
                parameters.individualThreshold = t.individual
                note("thresholds given (global \(t.global), individual \(t.individual)); the budget is not used")
            } else {
                let t = Self.thresholds(target: requested, imageTokens: before)
                parameters.globalThreshold = t.global
                parameters.individualThreshold = t.individual
                note("threshold-driven; budget \(requested) → README thresholds of the ≈\(t.setting)-token setting (global \(t.global), individual \(t.individual)); the count is not enforced")
            }
            note("pruning after layers \(layers)")
        }
        if layers.contains(l) { textRowsAt[l] = Array(layout.textRange) }
        guard layers.contains(l - 1) else { return nil }
        guard let a = state.previousAttention else { throw ModelError("mustdrop: layer \(l - 1) did not record the text rows' attention") }
        let start = scoringStart()
        let f = try MustDrop.dualAttentionFilter(attention: a.values, layout: layout, keySet: keySet, parameters: parameters)
        addScoringTime(since: start)
        keySet = f.keySetOut
        let kept = f.visualKept.map { $0 + layout.imageStart }
        if layers.contains(l) {
            let textStart = layout.imageStart + kept.count
            textRowsAt[l] = Array(textStart..<(textStart + layout.textRange.count))
        }
        guard f.result.noOpReason == nil else { return nil }
        return PruneDecision(keptRows: layout.keptSequence(visual: kept), positions: .renumber)
    }

    /// The code's decode-stage step: after the prefill, the KV caches of the pruning layers
    /// (first…last, 2…14 of 32) are cut to the final kept set; earlier layers keep every row, later
    /// ones already hold the final set.
    func cacheCompaction(_ summary: PrefillSummary) throws -> [Int: [Int]] {
        guard let first = layers.first, let last = layers.last, summary.originalIndicesPerLayer.count > last else { return [:] }
        let final = Set(summary.keptOriginalIndices)
        var out: [Int: [Int]] = [:]
        for l in first...last {
            let rows = summary.originalIndicesPerLayer[l]
            let keep = rows.indices.filter { final.contains(rows[$0]) }
            if keep.count < rows.count { out[l] = keep }
        }
        return out
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        report.keptIndices = summary.keptOriginalIndices
        let text = summary.tokensPerLayer[0] - llmVisualRows
        let visual = summary.tokensPerLayer.map { $0 - text }
        report.achievedVisualTokens = Int((Double(visual.reduce(0, +)) / Double(max(visual.count, 1))).rounded())
        note("visual rows entering each layer \(visual) (their layer average is the achieved count reported)")
        if let first = layers.first, let last = layers.last, summary.originalIndicesPerLayer.count > last {
            note("KV cache of layers \(first)…\(last) cut to the final \(summary.keptOriginalIndices.count) rows after the prefill (the code's decode stage)")
        }
    }
}

public enum MustDropCompression {
    public static let adapter = InModelAdapter(method: "mustdrop", parameters: ["global", "individual", "window", "merge_threshold"], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        var thresholds: (Float, Float)?
        if p.has("global") || p.has("individual") {
            thresholds = (Float(try p.double("global", default: 0.001)), Float(try p.double("individual", default: 0.001)))
        }
        let window = try p.int("window", default: 3)
        let method = MustDrop.Parameters(windowHeight: window, windowWidth: window,
                                         similarityThreshold: Float(try p.double("merge_threshold", default: 0.8)))
        do { try method.validate() } catch { throw ModelCompressionError.invalidParameter("mustdrop: \(error)") }
        let hook = try MustDropHook(budget: budget, thresholds: thresholds, parameters: method)
        return ModelCompression(info: MustDrop.info, budget: budget, hook: hook)
    }
}
