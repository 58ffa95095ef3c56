import Tensors
import TokenCompression

/// Maps the `sparsevlm` cases (one sparse layer each) onto `SparseVLM`'s typed API: raters from
/// the original embeddings, then one `sparsify` step on the current sequence.
public enum SparseVLMConformer: MethodConformer {
    public static let method = "sparsevlm"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let vStart = try p.int("v_token_start")
        let embeds = try testCase.inputs.floats("embeds")
        let hidden = try testCase.inputs.floats("hidden")
        let original = try TokenLayout(imageStart: vStart, imageCount: try p.int("image_shape"), totalCount: embeds.rows)
        let current = try TokenLayout(imageStart: vStart, imageCount: try p.int("v_token_num"), totalCount: hidden.rows)
        let parameters = SparseVLM.Parameters(retainedTokens: try p.int("retained_tokens"),
                                              schedule: p.has("schedule") ? try p.ints("schedule") : nil,
                                              recycleRatio: try p.double("recycle_ratio", default: 0.3))
        let noise = testCase.inputs.has("merge_noise") ? try testCase.inputs.floats("merge_noise").values : nil
        let raters = try SparseVLM.selectRaters(embeddings: embeds, layout: original)
        let step = try SparseVLM.sparsify(layer: try p.int("layer_idx"), hidden: hidden,
                                          attention: try testCase.inputs.floats("attn_text_rows"),
                                          layout: current, raters: raters, parameters: parameters, noise: noise)
        guard let clustering = step.clustering else { throw ConformanceError("sparsevlm: nothing was recycled") }
        return [
            "rater_idx": .ints(raters),
            "scores": try .floats(step.scores),
            "kept": .ints(step.result.kept),
            "recycle_idx": .ints(step.recycled),
            "cluster_assign": .ints(clustering.assignment),
            "cluster_centers": .ints(clustering.centers.map { step.recycled[$0] }),
            "merged": .floats(clustering.merged),
            "merged_pos": .ints(step.mergedPositions),
            "out_hidden": .floats(step.hidden),
            "out_position_ids": .ints(step.positionIds),
            "out_len": .int(step.hidden.rows),
            "out_v_token_num": .int(step.visualCount),
        ]
    }
}
