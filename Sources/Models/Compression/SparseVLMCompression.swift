import Foundation
import Tensors
import TokenCompression

/// SparseVLM v1.5 inside the decoder, with recycling.
///
/// Raters (text tokens) come once from the layer-0 input embeddings; at each sparse layer l the
/// runtime records the attention of the text rows only, and before layer l+1 the visual rows are
/// scored by the raters' head-mean attention and the top `min(target, visual − 1)` stay; the best
/// 30 % (+1) of the deleted ones are clustered (DPC-kNN) on their layer-l output hidden states and
/// the cluster means are inserted right after the kept visual rows (`SparseVLM.sparsify`, the same
/// step the conformance cases check); positions are renumbered.
///
/// Deviation, said in every report: `cluster_and_merge` adds `torch.rand` noise (×1e-6) to the
/// densities to break ties; the runtime adds none (deterministic; only exact ties resolve
/// differently). Sparse layers default to the paper's
/// [2, 6, 15] of 32 scaled to the model's depth; the schedule is the official one of the closest
/// setting (192/128/64 on 576 tokens) scaled by k / setting, and the achieved count is the code's
/// layer-averaged visual count (after each layer's pruning).
final class SparseVLMHook: CompressionHook, PrefillHook {
    let budget: Budget
    private var sparseLayers: [Int] = []
    private var schedule: [Int] = []
    private var raters: [Int] = []
    private var textRowsAt: [Int: [Int]] = [:]

    init(budget: Budget) throws {
        self.budget = budget
        super.init(method: "sparsevlm", policy: .renumber)
    }

    static func defaultLayers(depth: Int) -> [Int] {
        var out: [Int] = []
        for l in [2, 6, 15] {
            let v = max(0, min(depth - 2, Int((Double(l) * Double(depth) / 32).rounded())))
            if !out.contains(v) { out.append(v) }
        }
        return out
    }

    static func scaledSchedule(target k: Int, imageTokens n: Int) -> (setting: Int, schedule: [Int]) {
        let normalized = Double(k) * 576 / Double(max(n, 1))
        let setting = [192, 128, 64].min { abs(Double($0) - normalized) < abs(Double($1) - normalized) }!
        return (setting, SparseVLM.officialSchedules[setting]!.map { Int((Double($0) * Double(k) / Double(setting)).rounded()) })
    }

    func attentionRecord(layer: Int) -> AttentionRecord {
        guard sparseLayers.contains(layer), let rows = textRowsAt[layer] else { return .none }
        return .probabilities(rows: rows)
    }

    func beforeLayer(_ l: Int, state: PrefillState) throws -> PruneDecision? {
        let layout = try state.tokenLayout()
        if l == 0 {
            let depth = state.model.config.layers
            let n0 = layout.imageCount
            let resolution = try budget.resolve(over: n0)
            beginReport(visualBefore: n0, requested: resolution.requested, achieved: n0, policy: .renumber)
            textRowsAt = [:]
            sparseLayers = []
            guard case .keep(let requested) = resolution else {
                if case .noOp(_, let why) = resolution { noOp(why) }
                return nil
            }
            guard depth >= 2 else {
                noOp("a \(depth)-layer decoder has no layer after a sparse layer")
                return nil
            }
            let start = scoringStart()
            raters = try SparseVLM.selectRaters(embeddings: state.hidden, layout: layout)
            addScoringTime(since: start)
            sparseLayers = Self.defaultLayers(depth: depth)
            let (setting, s) = Self.scaledSchedule(target: requested, imageTokens: n0)
            schedule = s
            note("sparse layers \(sparseLayers), schedule \(schedule) (official \(setting)-token shape scaled by \(requested)/\(setting)), \(raters.count) raters")
            note("recycling without the code's 1e-6 tie-breaking noise on cluster densities")
        }
        // Text rows this layer will see (after the pruning decided below, if any).
        if sparseLayers.contains(l) { textRowsAt[l] = Array(layout.textRange) }
        guard let i = sparseLayers.firstIndex(of: l - 1) else { return nil }
        guard let a = state.previousAttention else { throw ModelError("sparsevlm: layer \(l - 1) did not record the text rows' attention") }
        let start = scoringStart()
        let step = try SparseVLM.sparsify(hidden: state.hidden, attention: a.values, layout: layout, raters: raters, target: schedule[i])
        addScoringTime(since: start)
        if sparseLayers.contains(l) {
            let textStart = layout.imageStart + step.visualCount
            textRowsAt[l] = Array(textStart..<(textStart + layout.textRange.count))
        }
        guard step.result.noOpReason == nil else { return nil }
        return PruneDecision(keptRows: step.result.kept.sorted(), positions: .renumber, inserted: step.clustering?.merged,
                             insertedAt: step.mergedPositions.first ?? 0)
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        report.keptIndices = summary.keptOriginalIndices.filter { $0 != PrefillState.insertedRow }
        guard !sparseLayers.isEmpty else { return }
        // The code's layer average counts each layer's visual tokens after its own pruning.
        let text = summary.tokensPerLayer[0] - report.visualTokensBefore
        let entering = summary.tokensPerLayer.map { $0 - text }
        let after = entering.indices.map { l in l + 1 < entering.count ? entering[l + 1] : entering[l] }
        let avg = Double(after.reduce(0, +)) / Double(after.count)
        report.achievedVisualTokens = Int(avg.rounded())
        note("visual rows entering each layer \(entering); layer average after pruning \(String(format: "%.2f", avg)) (the achieved count reported)")
    }
}

public enum SparseVLMCompression {
    public static let adapter = InModelAdapter(method: "sparsevlm", parameters: [], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let hook = try SparseVLMHook(budget: budget)
        return ModelCompression(info: SparseVLM.info, budget: budget, hook: hook)
    }
}
