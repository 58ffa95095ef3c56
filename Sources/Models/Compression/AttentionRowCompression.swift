import Tensors
import TokenCompression

/// FastV and A-Score inside the decoder: head-mean attention of the last prompt row of layer
/// K−1 over the image span, top-k kept at the input of layer K (original positions).
///
/// Only that one row is recorded (`AttentionRecord.probabilities(rows: [last])`); every other
/// layer keeps the fused attention path. The budget is FastV's keep count (`fast_v_attention_rank`).
public enum AttentionRowCompression {
    public static let fastVAdapter = InModelAdapter(method: "fastv", parameters: ["layer"], build: makeFastV)
    public static let aScoreAdapter = InModelAdapter(method: "a-score", parameters: ["layer"], build: makeAScore)

    static func makeFastV(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let layer = try p.int("layer", default: 2)
        let hook = try SingleCutHook(name: "fastv", layer: layer, budget: budget, needsLastRowAttention: true) { state, layout, target in
            let fastv = try FastV(.init(layer: layer, keep: .count(target)))
            let r = try fastv.select(lastRowAttention: try lastRow(state, layer: layer), layout: layout)
            return SingleCutChoice(result: r.compression)
        }
        return ModelCompression(info: FastV.info, budget: budget, hook: hook)
    }

    static func makeAScore(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let layer = try p.int("layer", default: 2)
        let hook = try SingleCutHook(name: "a-score", layer: layer, budget: budget, needsLastRowAttention: true) { state, layout, target in
            let method = try AttentionScorePruning(.init(layer: layer, budget: .count(target)))
            return SingleCutChoice(result: try method.select(lastRowAttention: try lastRow(state, layer: layer), layout: layout))
        }
        return ModelCompression(info: AttentionScorePruning.info, budget: budget, hook: hook)
    }

    static func lastRow(_ state: PrefillState, layer: Int) throws -> Tensor {
        guard let a = try state.recordedAttention(row: state.hidden.rows - 1) else {
            throw ModelError("layer \(layer - 1) did not record the last row's attention")
        }
        return a
    }
}
