import Tensors
import TokenCompression

/// Runs HoliTom's `outer` stage (`features` [T, N, C], `attn` [T, N], `image_newline` [C] for 'grid')
/// or its `inner` stage (`hidden_states` [S, C], `attn_last_row` [H, S]).
public enum HoliTomConformer: MethodConformer {
    public static let method = "holitom"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let inputs = testCase.inputs
        switch try p.string("stage") {
        case "outer":
            let parameters = HoliTom.Parameters(
                retainRatio: try p.double("retain_ratio"), staticThreshold: try p.double("tau"),
                beta: try p.double("beta", default: 0.6), contextShare: try p.double("D", default: 0),
                neighbours: try p.int("K", default: 7), maxWindowSize: try p.int("max_window_size", default: 1024),
                plainMeanMerge: try p.bool("no_beta", default: false))
            let layout: HoliTom.NewlineLayout
            switch try p.string("mm_newline_position", default: "one_token") {
            case "one_token": layout = .oneToken
            case "grid": layout = .grid(newline: try inputs.floats("image_newline").values)
            case let other: throw ConformanceError("holitom: mm_newline_position '\(other)' is not implemented")
            }
            let shape = try inputs.shape("features")
            guard shape.count == 3 else { throw ConformanceError("holitom: features must be [T, N, C], got \(shape)") }
            let r = try HoliTom.outer(features: try inputs.floats("features"), frames: shape[0],
                                      attention: try inputs.floats("attn"), layout: layout, parameters: parameters)
            return [
                "video_tokens": .floats(r.tokens),
                "windows": .ints(r.windows.flatMap { [$0.lowerBound, $0.upperBound] }, shape: [r.windows.count, 2]),
                "total_reduced": try .doubles([r.totalReduced]),
                "retain_ratio_scaled": try .doubles([r.retainRatioScaled]),
                "feature_sim": .floats(r.featureSimilarity),
                "segment_token_counts": .ints(r.segmentTokenCounts),
            ]
        case "inner":
            let hidden = try inputs.floats("hidden_states")
            let layout = try TokenLayout(imageStart: try p.int("image_token_start_index"),
                                         imageCount: try p.int("image_token_length"), totalCount: hidden.rows)
            let r = try HoliTom.inner(hiddenStates: hidden, attentionLastRow: try inputs.floats("attn_last_row"), layout: layout,
                                      parameters: HoliTom.Parameters(innerRemoveRatio: try p.double("HOLITOM_r")))
            return [
                "kept": .ints(r.compression.kept),
                "hidden_states_out": .floats(r.hiddenStates),
                "position_ids": .ints(r.positionIds),
                "merge_target": .ints(r.mergeTarget),
                "merged_sources": .ints(r.mergedSources),
            ]
        case let stage:
            throw ConformanceError("holitom: unknown stage '\(stage)'")
        }
    }
}
