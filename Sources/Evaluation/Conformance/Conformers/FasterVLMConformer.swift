import Tensors
import TokenCompression

/// Runs FasterVLM on a case: `attn` [(P,) heads, 1+N, 1+N] and `features` [(P,) N, C].
public enum FasterVLMConformer: MethodConformer {
    public static let method = "fastervlm"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let params = FasterVLM.Parameters(visualTokenNum: try testCase.params.int("visual_token_num"))
        let attn = try testCase.inputs.floats("attn")
        let features = try testCase.inputs.floats("features")
        switch try testCase.params.string("variant") {
        case "llava_1_5":
            guard attn.rank == 3 else { throw ConformanceError("attn must be [heads, 1+N, 1+N], got \(attn.shape)") }
            let r = try FasterVLM.prune(clsAttention: try fasterVLMClsRows(attn, partition: 0), features: features, parameters: params)
            return ["kept": .ints(r.compression.kept), "kept_features": .floats(r.keptFeatures),
                    "scores": try .floats(r.scores)]
        case "llava_next_spatial":
            guard attn.rank == 4, features.rank == 3 else {
                throw ConformanceError("attn must be [P, heads, 1+N, 1+N] and features [P, N, C], got \(attn.shape), \(features.shape)")
            }
            let p = attn.shape[0], n = features.shape[1], c = features.shape[2]
            let grid = FasterVLM.CropGrid(columns: try testCase.params.int("num_patch_width"),
                                          rows: try testCase.params.int("num_patch_height"))
            let rows = try (0..<p).map { try fasterVLMClsRows(attn, partition: $0) }
            let feats = try (0..<p).map { try features.rows($0 * n..<($0 + 1) * n).reshaped([n, c]) }
            let r = try FasterVLM.pruneAnyRes(clsAttention: rows, features: feats, grid: grid, parameters: params)
            var mask = [Int](repeating: 0, count: p * n)
            for k in r.compression.kept { mask[k] = 1 }
            return ["kept": .ints(r.partitions.flatMap { $0.compression.kept }, shape: [p, params.visualTokenNum]),
                    "keep_mask": .ints(mask, shape: [p, n]),
                    "kept_order": .ints(r.order),
                    "kept_features": .floats(r.features),
                    "scores": try .floats(r.partitions.flatMap(\.scores), shape: [p, n])]
        case let other:
            throw ConformanceError("unknown fastervlm variant '\(other)'")
        }
    }
}

/// The [CLS] query row `[heads, 1+N]` of partition `partition` of `[(P,) heads, 1+N, 1+N]`.
func fasterVLMClsRows(_ attn: Tensor, partition: Int) throws -> Tensor {
    let s = attn.shape
    let heads = s[s.count - 3], width = s[s.count - 1]
    var out = [Float]()
    out.reserveCapacity(heads * width)
    attn.withUnsafeBufferPointer { a in
        for h in 0..<heads {
            let base = ((partition * heads + h) * s[s.count - 2]) * width
            out.append(contentsOf: a[base..<(base + width)])
        }
    }
    return try Tensor(shape: [heads, width], values: out)
}
