import Tensors
import TokenCompression

/// Runs DuCa cases: `stage` schedule (DiT or Open-Sora) or cutfresh (attention / kv-norm score).
public enum DuCaConformer: MethodConformer {
    public static let method = "duca"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        guard let model = DuCa.Model(rawValue: try p.string("model")) else { throw ConformanceError("duca: unknown model \(try p.string("model"))") }
        switch (try p.string("stage"), model) {
        case ("schedule", .dit): return try schedule(testCase)
        case ("schedule", .openSora): return try openSora(testCase)
        case ("cutfresh", .dit): return try cutfresh(testCase)
        case let (stage, m): throw ConformanceError("duca: no stage '\(stage)' for \(m.rawValue)")
        }
    }

    static func parameters(_ p: CaseParameters) throws -> DuCa.Parameters {
        var q = DuCa.Parameters()
        q.numSteps = try p.int("num_steps")
        q.numLayers = try p.int("num_layers", default: q.numLayers)
        q.numTokens = try p.int("num_tokens", default: q.numTokens)
        q.freshThreshold = try p.int("fresh_threshold")
        q.freshRatio = try p.double("fresh_ratio")
        if p.has("ratio_scheduler") { q.ratioSchedule = try DuCa.Parameters.ratioSchedule(named: try p.string("ratio_scheduler")) }
        q.softFreshWeight = try p.double("soft_fresh_weight", default: q.softFreshWeight)
        q.bonusRatio = try p.double("bonus_ratio", default: q.bonusRatio)
        q.gridSize = try p.int("grid_size", default: q.gridSize)
        if p.has("cache_type") {
            guard let s = DuCa.ScoreType(rawValue: try p.string("cache_type")) else { throw ConformanceError("duca: unknown cache_type") }
            q.scoreType = s
        }
        return q
    }

    static func schedule(_ c: ConformanceCase) throws -> [String: CaseValue] {
        let q = try parameters(c.params)
        let s = try DuCa.schedule(q)
        if c.inputs.has("step_index"), try c.inputs.ints("step_index") != s.stepIndices {
            throw ConformanceError("duca: step_index differs from the DiT call order")
        }
        let shape = [q.numSteps, q.numLayers]
        return [
            "types": .ints(s.kinds.flatMap { $0.map(\.rawValue) }, shape: shape),
            "cal_threshold": .ints(s.intervals, shape: [q.numSteps]),
            "fresh_ratio_mlp": try .floats(s.freshRatios.flatMap { $0 }, shape: shape),
            "fresh_count_mlp": .ints(s.freshCounts.flatMap { $0 }, shape: shape),
        ]
    }

    static func openSora(_ c: ConformanceCase) throws -> [String: CaseValue] {
        var q = DuCa.Parameters.openSora
        q.numSteps = try c.params.int("num_steps")
        q.freshThreshold = try c.params.int("fresh_threshold", default: q.freshThreshold)
        q.freshRatio = try c.params.double("fresh_ratio", default: q.freshRatio)
        if let iv = c.params.values["module_intervals"], iv.objectValue != nil {
            q.openSoraIntervals = try ["spat-attn", "temp-attn", "cross-attn", "mlp"].map {
                guard let v = iv[$0]?.intValue else { throw ConformanceError("duca: module_intervals.\($0) missing") }
                return v
            }
        }
        let s = try DuCa.openSoraSchedule(q)
        return [
            "types": .ints(s.kinds.flatMap { $0.flatMap { $0.map(\.rawValue) } }, shape: [q.numSteps, 2, 3]),
            "all_aggressive": .bools(s.allAggressive.flatMap { $0 }, shape: [q.numSteps, 2]),
        ]
    }

    static func cutfresh(_ c: ConformanceCase) throws -> [String: CaseValue] {
        let q = try parameters(c.params)
        let layer = try c.params.int("layer"), module = try c.params.string("module")
        let tokens = try tocaSplitBatch(try c.inputs.floats("tokens"))
        var cache = TokenFeatureCache()
        if c.inputs.has("attn_map") {
            try cache.store(try tocaSplitBatch(try c.inputs.floats("attn_map")), at: .init(layer: layer, module: ToCa.attentionMapModule))
        }
        if c.inputs.has("v") {
            let norms = try tocaSplitBatch(try c.inputs.floats("v")).map { try DuCa.valueNorms(values: $0) }
            try cache.store(norms, at: .init(layer: layer, module: DuCa.valueNormModule))
        }
        let n = tokens[0].rows
        let ages = try c.inputs.ints("cache_index")
        try cache.restoreAges(stride(from: 0, to: ages.count, by: n).map { Array(ages[$0..<($0 + n)]) },
                              at: .init(layer: layer, module: module))
        let sel = try DuCa.cutFresh(tokens: tokens, cache: &cache, step: try c.params.int("step"), layer: layer,
                                    module: module, parameters: q)
        return try tocaSelectionOutputs(sel)
    }
}
