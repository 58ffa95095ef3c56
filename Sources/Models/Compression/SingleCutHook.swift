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
final class SingleCutHook: PrefillHook {
    typealias Select = (_ state: PrefillState, _ layout: TokenLayout, _ target: Int) throws -> SingleCutChoice

    let name: String
    let layer: Int
    let budget: Budget
    let needsLastRowAttention: Bool
    let select: Select
    private var rowsAtRecordLayer: Int?
    private var report: CompressionRunReport
    private var acted = false

    init(name: String, layer: Int, budget: Budget, needsLastRowAttention: Bool, minimumLayer: Int = 1,
         select: @escaping Select) throws {
        guard layer >= minimumLayer else { throw ModelCompressionError.invalidParameter("\(name): layer K = \(layer) must be ≥ \(minimumLayer) (signals come from layer K−1)") }
        self.name = name
        self.layer = layer
        self.budget = budget
        self.needsLastRowAttention = needsLastRowAttention
        self.select = select
        report = CompressionRunReport.empty(.keepOriginal, note: "\(name): no prefill ran yet")
    }

    func lastReport() -> CompressionRunReport { report }

    func attentionRecord(layer l: Int) -> AttentionRecord {
        guard needsLastRowAttention, l == layer - 1, let rows = rowsAtRecordLayer else { return .none }
        return .probabilities(rows: [rows - 1])
    }

    func beforeLayer(_ l: Int, state: PrefillState) throws -> PruneDecision? {
        if l == 0 {
            acted = false
            rowsAtRecordLayer = nil
            let visual = state.imageRows.count
            report = CompressionRunReport(visualTokensBefore: visual, requestedVisualTokens: try requestedCount(visual),
                                          achievedVisualTokens: visual, keptIndices: Array(state.originalIndices),
                                          positionPolicy: .keepOriginal, scoringSeconds: 0, notes: [])
        }
        if l == layer - 1 { rowsAtRecordLayer = state.hidden.rows }
        guard l == layer else { return nil }
        acted = true
        let layout = try state.tokenLayout()
        let visual = layout.imageCount
        let requested = try requestedCount(visual)
        report.visualTokensBefore = visual
        report.requestedVisualTokens = requested
        guard visual > 0 else {
            report.notes.append("\(name): no visual tokens in the prompt; nothing to prune (no-op)")
            return nil
        }
        if requested >= visual {
            report.notes.append("\(name): budget \(budget) asks for \(requested) ≥ \(visual) visual tokens; no-op")
            return nil
        }
        let start = DispatchTime.now().uptimeNanoseconds
        let choice = try select(state, layout, requested)
        report.scoringSeconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        if let r = choice.requested { report.requestedVisualTokens = r }
        report.notes += choice.notes
        if let why = choice.result.noOpReason {
            report.notes.append("\(name): no-op: \(why)")
            return nil
        }
        report.achievedVisualTokens = choice.result.achievedCount
        report.positionPolicy = choice.result.positionPolicy
        return PruneDecision(choice.result)
    }

    func afterPrefill(_ summary: PrefillSummary) throws {
        report.keptIndices = summary.keptOriginalIndices
        if !acted {
            report.notes.append("\(name): the model has \(summary.tokensPerLayer.count) layers, so layer K = \(layer) is never reached; no-op")
        }
    }

    /// Visual tokens the budget asks for (a count larger than the visual tokens stays as given,
    /// so the report shows what the user asked).
    func requestedCount(_ visual: Int) throws -> Int {
        if case .count(let k) = budget {
            guard k >= 0 else { throw ModelCompressionError.invalidParameter("\(name): token count \(k) is negative") }
            return k
        }
        return try budget.tokens(outOf: visual)
    }
}

extension ModelCompression {
    /// Wraps a single-cut hook as a `ModelCompression`.
    static func llmSide(_ info: MethodInfo, budget: Budget, hook: SingleCutHook) -> ModelCompression {
        ModelCompression(info: info, budget: budget, prefillHook: hook, visionHook: nil, report: { hook.lastReport() })
    }
}
