import Tensors
import TokenCompression

/// Runs FastVID (LLaVA-OneVision parallel variant) on a case: `video_tokens` [F, N, C],
/// `frame_attn_weights` [F, N], `frame_global_features` [F, Dg].
public enum FastVIDConformer: MethodConformer {
    public static let method = "fastvid"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let variant = try p.string("variant", default: "onevision")
        guard variant == "onevision" else { throw ConformanceError("fastvid: variant '\(variant)' is not implemented (only 'onevision')") }
        let parameters = FastVID.Parameters(
            retentionRatio: try p.double("retention_ratio"), segmentCount: try p.int("DySeg_c"),
            segmentThreshold: try p.double("DySeg_tau"), contextShare: try p.double("STPrune_d"),
            anchorStride: try p.int("DTM_p"), anchorWeight: try p.double("DTM_beta"))
        let shape = try testCase.inputs.shape("video_tokens")
        guard shape.count == 3 else { throw ConformanceError("fastvid: video_tokens must be [F, N, C], got \(shape)") }
        let r = try FastVID.compress(
            videoTokens: try testCase.inputs.floats("video_tokens"), frames: shape[0],
            salience: try testCase.inputs.floats("frame_attn_weights"),
            globalFeatures: try testCase.inputs.floats("frame_global_features"), parameters: parameters)
        return [
            "frame_similarity": try .floats(r.frameSimilarity),
            "cut_indices": .ints(r.cuts),
            "segment_sizes": .ints(r.segmentSizes),
            "frame_context_counts": .ints(r.frameContextCounts),
            "density_score": .floats(r.densityScore),
            "salient": .ints(r.salient),
            "context": .ints(r.context),
            "kept": .ints(r.compression.kept),
            "x_out": .floats(r.tokens),
        ]
    }
}
