import Tensors
import TokenCompression

/// Runs VisionZip on a case: `attn` [(P,) heads, 1+N, 1+N], `hidden` [(P,) 1+N, C], `metric` [(P,) 1+N, C'].
public enum VisionZipConformer: MethodConformer {
    public static let method = "visionzip"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let params = VisionZip.Parameters(dominant: try testCase.params.int("dominant"),
                                          contextual: try testCase.params.int("contextual"))
        let attn = try testCase.inputs.floats("attn")
        let hidden = try testCase.inputs.floats("hidden")
        let metric = try testCase.inputs.floats("metric")
        switch try testCase.params.string("variant") {
        case "llava_1_5":
            guard attn.rank == 3 else { throw ConformanceError("attn must be [heads, 1+N, 1+N], got \(attn.shape)") }
            let r = try VisionZip.compress(clsAttention: try fasterVLMClsRows(attn, partition: 0), hidden: hidden,
                                           metric: metric, parameters: params)
            return ["tokens": .floats(r.tokens), "dominant_kept": .ints(r.dominantKept),
                    "contextual_targets": .ints(r.contextualTargets), "contextual_counts": .ints(r.contextualCounts),
                    "assign": .ints(r.assign)]
        case "llava_next_spatial_unpad":
            guard attn.rank == 4, hidden.rank == 3, metric.rank == 3 else {
                throw ConformanceError("NeXT inputs must carry a leading partition axis, got \(attn.shape), \(hidden.shape), \(metric.shape)")
            }
            let p = attn.shape[0], length = hidden.shape[1]
            let grid = VisionZip.CropGrid(columns: try testCase.params.int("num_patch_width"),
                                          rows: try testCase.params.int("num_patch_height"))
            let r = try VisionZip.compressAnyRes(
                clsAttention: try (0..<p).map { try fasterVLMClsRows(attn, partition: $0) },
                hidden: try (0..<p).map { try hidden.rows($0 * length..<($0 + 1) * length) },
                metric: try (0..<p).map { try metric.rows($0 * length..<($0 + 1) * length) },
                grid: grid, parameters: params)
            let k = params.tokensPerImage, c = params.contextual
            return ["tokens": .floats(try Tensor.concatenateRows(r.images.map(\.tokens)).reshaped([p, k, hidden.shape[2]])),
                    "dominant_kept": .ints(r.images.flatMap(\.dominantKept), shape: [p, params.dominant]),
                    "contextual_targets": .ints(r.images.flatMap(\.contextualTargets), shape: [p, c]),
                    "contextual_counts": .ints(r.images.flatMap(\.contextualCounts), shape: [p, c]),
                    "assign": .ints(r.images.flatMap(\.assign), shape: [p, length]),
                    "packed": .floats(r.packed), "packed_rows": .ints(r.packedRows)]
        case let other:
            throw ConformanceError("unknown visionzip variant '\(other)'")
        }
    }
}
