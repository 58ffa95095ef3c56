import Foundation
import Tensors
import TokenCompression

/// MustDrop's key set and LLM stage inside the model.
///
/// - Key set (vision side, no change to the features): the top 8 % of the patches by head-mean
///   [CLS] attention of the feature layer (ViT layer 23 of 24 = encoder layer −2).
/// - LLM stage: after each pruning layer (the paper's 2, 6, 10, 14 of 32, scaled to the model's
///   depth) the runtime records the text rows' attention; a visual row is dropped when both its
///   summed and its max text→visual attention fall below the thresholds, unless it is in the key
///   set. Positions are renumbered.
///
/// Not reproduced (said in the report): the ViT layer-0 3×3 window merge, which changes the
/// tower's own sequence (the runtime's vision hook acts after the tower). MustDrop is
/// threshold-driven, so the budget only picks the README threshold pair of the closest setting
/// (192/128/64 on 576 tokens); `global=`/`individual=` set them directly. On a multi-tile (NeXT)
/// image the key set is empty.
final class MustDropHook: PrefillHook, VisionFeatureHook {
    let budget: Budget
    let fixedThresholds: (global: Float, individual: Float)?
    let captureRequest = VisionCaptureRequest(attention: [-2: .probabilities(rows: [0])])
    private var keySet: [Int] = []
    private var keySetNote: String?
    private var layers: [Int] = []
    private var parameters = MustDrop.Parameters()
    private var textRowsAt: [Int: [Int]] = [:]
    /// Key-set scoring time of the vision stage, added to the report when the prefill starts.
    private var pendingVisionSeconds = 0.0
    private var report: CompressionRunReport

    init(budget: Budget, thresholds: (Float, Float)?) throws {
        _ = try budget.tokens(outOf: 1)
        self.budget = budget
        fixedThresholds = thresholds
        report = CompressionRunReport.empty(.renumber, note: "mustdrop: no prefill ran yet")
    }

    func lastReport() -> CompressionRunReport { report }

    // MARK: vision side: the key set

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
        pendingVisionSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        return nil
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
            let requested: Int
            if case .count(let k) = budget { requested = k } else { requested = try budget.tokens(outOf: n0) }
            report = CompressionRunReport(visualTokensBefore: n0, requestedVisualTokens: requested, achievedVisualTokens: n0,
                                          keptIndices: [], positionPolicy: .renumber, scoringSeconds: pendingVisionSeconds, notes: [])
            pendingVisionSeconds = 0
            textRowsAt = [:]
            layers = []
            if let note = keySetNote { report.notes.append(note) }
            keySetNote = nil
            if keySet.count > n0 || keySet.contains(where: { $0 >= n0 }) { keySet = [] }
            guard requested < n0 || fixedThresholds != nil else {
                report.notes.append("mustdrop: budget \(budget) asks for \(requested) ≥ \(n0) visual tokens; no-op")
                return nil
            }
            guard state.model.config.layers >= 2 else {
                report.notes.append("mustdrop: a 1-layer decoder has no layer after a pruning layer; no-op")
                return nil
            }
            layers = Self.defaultLayers(depth: state.model.config.layers)
            if let t = fixedThresholds {
                parameters.globalThreshold = t.global
                parameters.individualThreshold = t.individual
                report.notes.append("mustdrop: thresholds given (global \(t.global), individual \(t.individual)); the budget is not used")
            } else {
                let t = Self.thresholds(target: requested, imageTokens: n0)
                parameters.globalThreshold = t.global
                parameters.individualThreshold = t.individual
                report.notes.append("mustdrop: threshold-driven; budget \(requested) → README thresholds of the ≈\(t.setting)-token setting (global \(t.global), individual \(t.individual)); the count is not enforced")
            }
            report.notes.append("mustdrop: pruning after layers \(layers); the ViT layer-0 window merge is not reproduced (the vision hook acts after the tower)")
        }
        if layers.contains(l) { textRowsAt[l] = Array(layout.textRange) }
        guard layers.contains(l - 1) else { return nil }
        guard let a = state.previousAttention else { throw ModelError("mustdrop: layer \(l - 1) did not record the text rows' attention") }
        let start = DispatchTime.now().uptimeNanoseconds
        let f = try MustDrop.dualAttentionFilter(attention: a.values, layout: layout, keySet: keySet, parameters: parameters)
        report.scoringSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        keySet = f.keySetOut
        let kept = f.visualKept.map { $0 + layout.imageStart }
        if layers.contains(l) {
            let textStart = layout.imageStart + kept.count
            textRowsAt[l] = Array(textStart..<(textStart + layout.textRange.count))
        }
        guard f.result.noOpReason == nil else { return nil }
        return PruneDecision(keptRows: layout.keptSequence(visual: kept), positions: .renumber)
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        report.keptIndices = summary.keptOriginalIndices
        let text = summary.tokensPerLayer[0] - report.visualTokensBefore
        let visual = summary.tokensPerLayer.map { $0 - text }
        report.achievedVisualTokens = Int((Double(visual.reduce(0, +)) / Double(max(visual.count, 1))).rounded())
        report.notes.append("mustdrop: visual rows entering each layer \(visual) (their layer average is the achieved count reported)")
    }
}

enum MustDropCompression {
    static func make(budget: Budget, parameters: [String: String]) throws -> ModelCompression {
        let p = try CompressionParameters("mustdrop", parameters, allowed: ["global", "individual"])
        var thresholds: (Float, Float)?
        if p.values["global"] != nil || p.values["individual"] != nil {
            thresholds = (Float(try p.double("global", default: 0.001)), Float(try p.double("individual", default: 0.001)))
        }
        let hook = try MustDropHook(budget: budget, thresholds: thresholds)
        return ModelCompression(info: MustDrop.info, budget: budget, prefillHook: hook, visionHook: hook, report: { hook.lastReport() })
    }
}
