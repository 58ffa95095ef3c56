import Tensors
import TokenCompression

/// Runs PruneVid's `merge` stage (`frames` [T, L, C]) or `select` stage (`q`, `k` [H, S, d] + merge sizes).
public enum PruneVidConformer: MethodConformer {
    public static let method = "prunevid"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let inputs = testCase.inputs
        switch try p.string("stage") {
        case "merge":
            let parameters = PruneVid.Parameters(
                staticThreshold: try p.double("tau", default: 0.8),
                temporalSegmentRatio: try p.double("temporal_segment_ratio", default: 0.25),
                clusterRatio: try p.double("cluster_ratio", default: 0.5), neighbours: try p.int("k", default: 7),
                minTokensToCluster: try p.int("min_tokens_to_cluster", default: 14))
            let T = try p.int("num_frames")
            let r = try PruneVid.merge(frames: try inputs.floats("frames"), frameCount: T, parameters: parameters)
            return [
                "features": .floats(r.tokens),
                "static_sizes": .ints(r.staticSizes),
                "dynamic_sizes": .ints(r.dynamicSizes),
                "window_sizes": .ints(r.windowSizes),
                "static_mask": .bools(r.staticMask, shape: [T, r.staticMask.count / T]),
            ]
        case "select":
            let q = try inputs.floats("q")
            let layout = try TokenLayout(imageStart: try p.int("image_start"), imageCount: try p.int("num_video_tokens"),
                                         totalCount: q.shape[1])
            let r = try PruneVid.select(
                queries: q, keys: try inputs.floats("k"), layout: layout,
                staticSizes: try inputs.ints("static_sizes"), dynamicSizes: try inputs.ints("dynamic_sizes"),
                windowSizes: try inputs.ints("window_sizes"),
                parameters: PruneVid.Parameters(keepRatio: try p.double("alpha")))
            return [
                "text_video_attn": .floats(r.textVideoAttention),
                "importance": try .floats(r.importance),
                "kept": .ints(r.compression.kept),
            ]
        case let stage:
            throw ConformanceError("prunevid: unknown stage '\(stage)'")
        }
    }
}
