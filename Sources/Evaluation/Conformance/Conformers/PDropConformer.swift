import Tensors
import TokenCompression

/// Maps the `pdrop` cases (`pdrop_rank_drop`, single stages and chains) onto `PDrop`.
/// Single-stage cases name tensors plainly; chains suffix per-stage tensors with `_s<b>` and
/// feed each stage the previous stage's output (identity layers in between).
public enum PDropConformer: MethodConformer {
    public static let method = "pdrop"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let inputs = testCase.inputs
        let pdrop = try PDrop(.init(layerList: try p.ints("layer_list"), ratios: try p.doubles("image_token_ratio_list")))
        let layout = try PDrop.Layout(imageStart: try p.int("image_start"), promptLength: try p.int("prompt_len"),
                                      originalImageCount: try p.int("N0"))
        let stages = try p.ints("stages")
        let chained = !inputs.has("hidden")
        func suffix(_ b: Int) -> String { chained ? "_s\(b)" : "" }

        var hidden = try inputs.floats("hidden" + suffix(stages[0]))
        var positions = try inputs.ints("position_ids" + suffix(stages[0]))
        var original = Array(0..<hidden.rows)
        var out: [String: CaseValue] = [:]
        for b in stages {
            let s = suffix(b)
            let weights = PDrop.LayerWeights(
                inputNormWeight: try inputs.floats("ln_weight" + s), rmsNormEps: Float(try p.double("rms_norm_eps")),
                qProj: try inputs.floats("q_proj_weight" + s), kProj: try inputs.floats("k_proj_weight" + s),
                heads: try p.int("num_heads"),
                rope: try RotaryEmbedding(headDim: try p.int("head_dim"), theta: try p.double("rope_theta")))
            let r = try pdrop.stage(b, hidden: hidden, positionIds: positions, layout: layout, weights: weights)
            out["scores" + s] = try .floats(r.scores)
            out["kept" + s] = .ints(r.compression.kept)
            out["kept_image" + s] = .ints(r.keptImage)
            out["new_image_len" + s] = .int(r.newImageCount)
            out["query_index" + s] = .int(r.queryIndex)
            out["out_position_ids" + s] = .ints(r.positionIds)
            out["out_hidden" + s] = .floats(r.hidden)
            original = r.compression.kept.map { original[$0] }
            hidden = r.hidden
            positions = r.positionIds
        }
        out["kept_in_original"] = .ints(original)
        return out
    }
}
