import Tensors
import TokenCompression

/// K-norm, V-norm and random inside the decoder (signals of layer K−1 that every layer produces
/// anyway; no attention is recorded).
public enum SignalNormCompression {
    public static let keyNormAdapter = InModelAdapter(method: "k-norm", parameters: ["layer", "l2", "smallest"]) {
        try make(.keys, budget: $0, parameters: $1)
    }
    public static let valueNormAdapter = InModelAdapter(method: "v-norm", parameters: ["layer", "l2", "smallest"]) {
        try make(.values, budget: $0, parameters: $1)
    }
    public static let randomAdapter = InModelAdapter(method: "random", parameters: ["layer", "seed"], build: makeRandom)

    static func make(_ source: NormPruning.Source, budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let name = source.rawValue
        let layer = try p.int("layer", default: 2)
        let l1 = !(try p.bool("l2", default: false)), largest = !(try p.bool("smallest", default: false))
        let hook = try SingleCutHook(name: name, layer: layer, budget: budget, needsLastRowAttention: false) { state, layout, target in
            let method = try NormPruning(source, .init(layer: layer, budget: .count(target), l1: l1, keepLargest: largest))
            let signal = source == .keys ? state.previousKeys : state.previousValues
            guard let signal else { throw ModelError("\(name): layer \(layer - 1) \(source == .keys ? "keys" : "values") are missing") }
            return SingleCutChoice(result: try method.select(signal, layout: layout))
        }
        return ModelCompression(info: source == .keys ? NormPruning.keyNormInfo : NormPruning.valueNormInfo, budget: budget, hook: hook)
    }

    static func makeRandom(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let layer = try p.int("layer", default: 2)
        let seed = try p.int("seed", default: 42)
        guard seed >= 0 else { throw ModelCompressionError.invalidParameter("random: seed \(seed) is negative") }
        let hook = try SingleCutHook(name: "random", layer: layer, budget: budget, needsLastRowAttention: false, minimumLayer: 0) { _, layout, target in
            let method = try RandomPruning(.init(layer: layer, budget: .count(target), seed: UInt64(seed)))
            return SingleCutChoice(result: try method.select(layout: layout))
        }
        return ModelCompression(info: RandomPruning.info, budget: budget, hook: hook)
    }
}
