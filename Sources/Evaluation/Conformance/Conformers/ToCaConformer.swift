import Tensors
import TokenCompression

/// Runs ToCa cases: `stage` schedule, cutfresh or cycle.
public enum ToCaConformer: MethodConformer {
    public static let method = "toca"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let model = try model(p)
        switch try p.string("stage") {
        case "schedule": return try schedule(testCase, model: model)
        case "cutfresh": return try cutfresh(testCase, model: model)
        case "cycle": return try cycle(testCase, model: model)
        case let other: throw ConformanceError("toca: unknown stage '\(other)'")
        }
    }

    static func model(_ p: CaseParameters) throws -> ToCa.Model {
        guard let m = ToCa.Model(rawValue: try p.string("model")) else { throw ConformanceError("toca: unknown model \(try p.string("model"))") }
        return m
    }

    /// Parameters shared by every stage; absent ones keep the model's defaults.
    static func parameters(_ p: CaseParameters, model: ToCa.Model) throws -> ToCa.Parameters {
        var q = model == .dit ? ToCa.Parameters() : ToCa.Parameters.pixart
        q.numSteps = try p.int("num_steps")
        q.numLayers = try p.int("num_layers", default: q.numLayers)
        q.numTokens = try p.int("num_tokens", default: q.numTokens)
        q.freshThreshold = try p.int("fresh_threshold")
        q.freshRatio = try p.double("fresh_ratio")
        q.ratioSchedule = try ToCa.RatioSchedule.named(try p.string("ratio_scheduler"), model: model)
        q.softFreshWeight = try p.double("soft_fresh_weight", default: q.softFreshWeight)
        q.bonusRatio = try p.double("bonus_ratio", default: q.bonusRatio)
        q.gridSize = try p.int("grid_size", default: q.gridSize)
        if p.has("cache_type") {
            guard let s = ToCa.ScoreType(rawValue: try p.string("cache_type")) else { throw ConformanceError("toca: unknown cache_type") }
            q.scoreType = s
        }
        return q
    }

    static func schedule(_ c: ConformanceCase, model: ToCa.Model) throws -> [String: CaseValue] {
        let q = try parameters(c.params, model: model)
        let s = try ToCa.schedule(q)
        if c.inputs.has("step_index") {
            let given = try c.inputs.ints("step_index")
            guard given == s.stepIndices else { throw ConformanceError("toca: step_index differs from the \(model.rawValue) call order") }
        }
        let steps = q.numSteps, layers = q.numLayers
        var out: [String: CaseValue] = [
            "types": .ints(s.kinds.flatMap { $0.map(\.rawValue) }, shape: [steps, layers]),
            "cal_threshold": .ints(s.intervals, shape: [steps]),
        ]
        let ratios = s.freshRatios.flatMap { $0.flatMap { $0 } }
        let counts = s.freshCounts.flatMap { $0.flatMap { $0 } }
        if model == .dit {
            out["fresh_ratio_mlp"] = try .floats(ratios, shape: [steps, layers])
            out["fresh_count_mlp"] = .ints(counts, shape: [steps, layers])
        } else {
            out["fresh_ratio"] = try .floats(ratios, shape: [steps, layers, s.partialModules.count])
            out["fresh_count"] = .ints(counts, shape: [steps, layers, s.partialModules.count])
        }
        return out
    }

    static func cutfresh(_ c: ConformanceCase, model: ToCa.Model) throws -> [String: CaseValue] {
        let q = try parameters(c.params, model: model)
        let layer = try c.params.int("layer"), module = try c.params.string("module")
        let tokens = try tocaSplitBatch(try c.inputs.floats("tokens"))
        var cache = TokenFeatureCache()
        if c.inputs.has("attn_map") {
            try cache.store(try tocaSplitBatch(try c.inputs.floats("attn_map")), at: .init(layer: layer, module: ToCa.attentionMapModule))
        }
        if c.inputs.has("cross_attn_map") {
            try cache.store(try tocaSplitBatch(try c.inputs.floats("cross_attn_map")), at: .init(layer: layer, module: ToCa.crossAttentionMapModule))
        }
        if c.inputs.has("cache_mlp") {
            try cache.store(try tocaSplitBatch(try c.inputs.floats("cache_mlp")), at: .init(layer: layer, module: module))
        }
        let n = tokens[0].rows
        let ages = try c.inputs.ints("cache_index")
        try cache.restoreAges(stride(from: 0, to: ages.count, by: n).map { Array(ages[$0..<($0 + n)]) },
                              at: .init(layer: layer, module: module))
        let sel = try ToCa.cutFresh(tokens: tokens, cache: &cache, step: try c.params.int("step"), layer: layer,
                                    module: module, parameters: q)
        return try tocaSelectionOutputs(sel)
    }

    static func cycle(_ c: ConformanceCase, model: ToCa.Model) throws -> [String: CaseValue] {
        let q = try parameters(c.params, model: model)
        let layer = try c.params.int("layer"), module = try c.params.string("module")
        let partialSteps = try c.params.ints("partial_steps")
        var cache = TokenFeatureCache()
        let mlpFull = try tocaSplitBatch(try c.inputs.floats("mlp_full"))
        try ToCa.storeFullStep(layer: layer, moduleOutputs: [module: mlpFull],
                               attentionMap: try tocaSplitBatch(try c.inputs.floats("attn_map")), cache: &cache)
        let steps = try tocaSplitBatch(try c.inputs.floats("mlp_steps"))
        guard steps.count == partialSteps.count else { throw ConformanceError("toca: mlp_steps has \(steps.count) steps for \(partialSteps.count) partial steps") }
        let b = mlpFull.count, n = mlpFull[0].rows
        var mask: [Int] = [], counts: [Int] = [], ages: [Int] = [], caches: [Float] = []
        for (p, step) in partialSteps.enumerated() {
            // The block would gather the fresh MLP inputs and run the per-token MLP; the case gives
            // each token's would-be output, so the "inputs" are those outputs and the module is the identity.
            let (sel, output) = try ToCa.partialStep(tokens: try tocaSplitBatch(steps[p]), cache: &cache, step: step,
                                                     layer: layer, module: module, parameters: q, compute: { $0 })
            for row in 0..<b {
                var m = [Int](repeating: 0, count: n)
                for i in sel.freshIndices[row] { m[i] = 1 }
                mask += m
                ages += sel.agesAfter[row]
                caches += output[row].values
            }
            counts.append(sel.count)
        }
        let width = mlpFull[0].columns
        return [
            "fresh_mask": .ints(mask, shape: [partialSteps.count, b, n]),
            "fresh_count": .ints(counts, shape: [partialSteps.count]),
            "cache_index_steps": .ints(ages, shape: [partialSteps.count, b, n]),
            "cache_steps": try .floats(caches, shape: [partialSteps.count, b, n, width]),
        ]
    }
}

/// The outputs of one fresh-token selection, named as in the ToCa and DuCa cases.
func tocaSelectionOutputs(_ sel: ToCa.FreshSelection) throws -> [String: CaseValue] {
    let b = sel.scoreMain.count, n = sel.scoreMain.first?.count ?? 0
    let c = sel.freshTokens.first?.columns ?? 0
    return [
        "score_main": try .floats(sel.scoreMain.flatMap { $0 }, shape: [b, n]),
        "score": try .floats(sel.score.flatMap { $0 }, shape: [b, n]),
        "score_bonus": try .floats(sel.scoreBonus.flatMap { $0 }, shape: [b, n]),
        "fresh_indices": .ints(sel.freshIndices.flatMap { $0 }, shape: [b, sel.count]),
        "fresh_tokens": try .floats(sel.freshTokens.flatMap { $0.values }, shape: [b, sel.count, c]),
        "cache_index_out": .ints(sel.agesAfter.flatMap { $0 }, shape: [b, n]),
    ]
}

/// Splits a tensor along its first axis (the batch, or steps) into tensors of the remaining shape.
func tocaSplitBatch(_ t: Tensor) throws -> [Tensor] {
    guard t.rank >= 2, let first = t.shape.first, first > 0 else {
        throw ConformanceError("cannot split a tensor of shape \(t.shape) along its first axis")
    }
    let rest = Array(t.shape.dropFirst()), size = rest.reduce(1, *)
    let v = t.values
    return try (0..<first).map { try Tensor(shape: rest, values: Array(v[($0 * size)..<(($0 + 1) * size)])) }
}
