import Foundation
import Tensors
import TokenCompression

/// What a single-cut LLM-side method returns when asked to choose at the input of layer K.
struct SingleCutChoice {
    var result: CompressionResult
    /// Visual tokens the method's own rule aimed at (e.g. DART's 4 + 8·⌊M/8⌋), when it differs
    /// from the budget.
    var requested: Int?
    var notes: [String] = []
}

/// A `PrefillHook` for the methods that prune once, at the input of LLM layer K, from signals
/// of layer K−1 (DART, FastV, K/V-norm, A-Score, random).
///
/// It keeps the bookkeeping in one place: the budget over the visual tokens, the explicit no-op
/// when the budget covers every visual token or the model is too shallow, the last-row attention
/// request (only for methods that declare it), the timing around the method's own call, and the
/// `CompressionRunReport`. The prompt layout comes from the decoder state, so system and text
/// rows are never offered to the method.
final class SingleCutHook: CompressionHook, PrefillHook {
    typealias Select = (_ state: PrefillState, _ layout: TokenLayout, _ target: Int) throws -> SingleCutChoice

    let layer: Int
    let budget: Budget
    let needsLastRowAttention: Bool
    let select: Select
    private var rowsAtRecordLayer: Int?
    private var acted = false

    init(name: String, layer: Int, budget: Budget, needsLastRowAttention: Bool, minimumLayer: Int = 1,
         select: @escaping Select) throws {
        guard layer >= minimumLayer else { throw ModelCompressionError.invalidParameter("\(name): layer K = \(layer) must be ≥ \(minimumLayer) (signals come from layer K−1)") }
        self.layer = layer
        self.budget = budget
        self.needsLastRowAttention = needsLastRowAttention
        self.select = select
        super.init(method: name, policy: .keepOriginal)
    }

    func attentionRecord(layer l: Int) -> AttentionRecord {
        guard needsLastRowAttention, l == layer - 1, let rows = rowsAtRecordLayer else { return .none }
        return .probabilities(rows: [rows - 1])
    }

    func beforeLayer(_ l: Int, state: PrefillState) throws -> PruneDecision? {
        if l == 0 {
            acted = false
            rowsAtRecordLayer = nil
            let visual = state.imageRows.count
            beginReport(visualBefore: visual, requested: try budget.requested(outOf: visual), achieved: visual,
                        policy: .keepOriginal, keptIndices: Array(state.originalIndices))
        }
        if l == layer - 1 { rowsAtRecordLayer = state.hidden.rows }
        guard l == layer else { return nil }
        acted = true
        let layout = try state.tokenLayout()
        let visual = layout.imageCount
        let resolution = try budget.resolve(over: visual)
        report.visualTokensBefore = visual
        report.requestedVisualTokens = resolution.requested
        guard visual > 0 else {
            noOp("no visual tokens in the prompt; nothing to prune")
            return nil
        }
        guard case .keep(let requested) = resolution else {
            if case .noOp(_, let why) = resolution { noOp(why) }
            return nil
        }
        let start = scoringStart()
        let choice = try select(state, layout, requested)
        addScoringTime(since: start)
        if let r = choice.requested { report.requestedVisualTokens = r }
        report.notes += choice.notes
        if let why = choice.result.noOpReason {
            noOp(why)
            return nil
        }
        report.achievedVisualTokens = choice.result.achievedCount
        report.positionPolicy = choice.result.positionPolicy
        return PruneDecision(choice.result)
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        report.keptIndices = summary.keptOriginalIndices
        if !acted {
            noOp("the model has \(summary.tokensPerLayer.count) layers, so layer K = \(layer) is never reached")
        }
    }
}
