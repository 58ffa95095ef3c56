import Tensors
import TokenCompression

/// FastV and A-Score inside the decoder: head-mean attention of the last prompt row of layer
/// K−1 over the image span, top-k kept at the input of layer K (original positions).
///
/// Only that one row is recorded (`AttentionRecord.probabilities(rows: [last])`); every other
/// layer keeps the fused attention path. The budget is FastV's keep count (`fast_v_attention_rank`).
enum AttentionRowCompression {
    static func makeFastV(budget: Budget, parameters: [String: String]) throws -> ModelCompression {
        let p = CompressionParameters("fastv", parameters)
        let layer = try p.int("layer", default: 2)
        let hook = try SingleCutHook(name: "fastv", layer: layer, budget: budget, needsLastRowAttention: true) { state, layout, target in
            let fastv = try FastV(.init(layer: layer, keep: .count(target)))
            let r = try fastv.select(lastRowAttention: try lastRow(state, layer: layer), layout: layout)
            return SingleCutChoice(result: r.compression)
        }
        return .llmSide(FastV.info, budget: budget, hook: hook)
    }

    static func makeAScore(budget: Budget, parameters: [String: String]) throws -> ModelCompression {
        let p = CompressionParameters("a-score", parameters)
        let layer = try p.int("layer", default: 2)
        let hook = try SingleCutHook(name: "a-score", layer: layer, budget: budget, needsLastRowAttention: true) { state, layout, target in
            let method = try AttentionScorePruning(.init(layer: layer, budget: .count(target)))
            return SingleCutChoice(result: try method.select(lastRowAttention: try lastRow(state, layer: layer), layout: layout))
        }
        return .llmSide(AttentionScorePruning.info, budget: budget, hook: hook)
    }

    static func lastRow(_ state: PrefillState, layer: Int) throws -> Tensor {
        guard let a = try state.recordedAttention(row: state.hidden.rows - 1) else {
            throw ModelError("layer \(layer - 1) did not record the last row's attention")
        }
        return a
    }
}

/// K-norm, V-norm and random inside the decoder (signals of layer K−1 that every layer produces
/// anyway; no attention is recorded).
enum SignalNormCompression {
    static func make(_ source: NormPruning.Source, budget: Budget, parameters: [String: String]) throws -> ModelCompression {
        let name = source.rawValue
        let p = CompressionParameters(name, parameters)
        let layer = try p.int("layer", default: 2)
        let l1 = !(try p.bool("l2", default: false)), largest = !(try p.bool("smallest", default: false))
        let hook = try SingleCutHook(name: name, layer: layer, budget: budget, needsLastRowAttention: false) { state, layout, target in
            let method = try NormPruning(source, .init(layer: layer, budget: .count(target), l1: l1, keepLargest: largest))
            let signal = source == .keys ? state.previousKeys : state.previousValues
            guard let signal else { throw ModelError("\(name): layer \(layer - 1) \(source == .keys ? "keys" : "values") are missing") }
            return SingleCutChoice(result: try method.select(signal, layout: layout))
        }
        return .llmSide(source == .keys ? NormPruning.keyNormInfo : NormPruning.valueNormInfo, budget: budget, hook: hook)
    }

    static func makeRandom(budget: Budget, parameters: [String: String]) throws -> ModelCompression {
        let p = CompressionParameters("random", parameters)
        let layer = try p.int("layer", default: 2)
        let seed = try p.int("seed", default: 42)
        guard seed >= 0 else { throw ModelCompressionError.invalidParameter("random: seed \(seed) is negative") }
        let hook = try SingleCutHook(name: "random", layer: layer, budget: budget, needsLastRowAttention: false, minimumLayer: 0) { _, layout, target in
            let method = try RandomPruning(.init(layer: layer, budget: .count(target), seed: UInt64(seed)))
            return SingleCutChoice(result: try method.select(layout: layout))
        }
        return .llmSide(RandomPruning.info, budget: budget, hook: hook)
    }
}
