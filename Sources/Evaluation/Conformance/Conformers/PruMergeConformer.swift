import Tensors
import TokenCompression

/// Shared mapping of the PruMerge(+) case parameters and outputs.
enum PruMergeConformerSupport {
    static func baseParameters(_ p: CaseParameters) throws -> PruMerge.Parameters {
        PruMerge.Parameters(
            adaptive: try p.bool("if_adaptive", default: true),
            reductionRatio: try p.double("reduction_ratio", default: 0.125),
            iqrFactor: try p.double("iqr_factor", default: 1.5),
            percentileLow: try p.double("percentile_low", default: 25),
            percentileHigh: try p.double("percentile_high", default: 75),
            knnK: try p.int("knn_k", default: 32),
            attentionScale: try p.optionalDouble("attn_scale").map { Float($0) })
    }

    static func inputs(_ c: ConformanceCase) throws -> (query: [Float], keys: Tensor, features: Tensor) {
        let features = try c.inputs.floats("features")
        if c.params.has("num_tokens") {
            let n = try c.params.int("num_tokens")
            guard features.rows == n else { throw ConformanceError("features has \(features.rows) rows, num_tokens is \(n)") }
        }
        return (try c.inputs.floats("cls_query").values, try c.inputs.floats("keys"), features)
    }

    static func outputs(_ r: PruMergeResult) throws -> [String: CaseValue] {
        [
            "cls_attn": try .floats(r.clsAttention),
            "upper_fence": try .doubles([r.upperFence]),
            "num_outliers": .int(r.outlierCount),
            "kept": .ints(r.kept),
            "merged_features": .floats(r.features),
            "count": .int(r.count),
        ]
    }
}

public enum PruMergeConformer: MethodConformer {
    public static let method = "prumerge"
    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let x = try PruMergeConformerSupport.inputs(testCase)
        let method = try PruMerge(try PruMergeConformerSupport.baseParameters(testCase.params))
        return try PruMergeConformerSupport.outputs(method.compress(clsQuery: x.query, keys: x.keys, features: x.features))
    }
}
