import Tensors
import TokenCompression

/// Maps the `fastv` cases (LLaVA fork in-place + mask paths, HF-port ratio rule) onto `FastV`.
public enum FastVConformer: MethodConformer {
    public static let method = "fastv"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let attention = try testCase.inputs.floats("attn_last_row")
        let keep: FastV.KeepRule
        if let k = try p.optionalInt("attention_rank") {
            keep = .count(k)
        } else {
            keep = .reductionRatio(try p.double("reduction_ratio"))
        }
        let fastv = try FastV(.init(layer: try p.int("K", default: 2), keep: keep))
        let layout = try TokenLayout(imageStart: try p.int("image_start"), imageCount: try p.int("image_len"),
                                     totalCount: attention.columns)
        let result = try fastv.select(lastRowAttention: attention, layout: layout)
        let n = layout.totalCount
        var out: [String: CaseValue] = [
            "kept": .ints(result.compression.kept),
            "kept_visual_count": .int(result.compression.achievedCount),
            "score": try .floats(result.scores),
        ]
        // The HF-port cases have no attention-mask path; the runner ignores extra outputs anyway.
        out["mask_kept"] = .bools(result.keyMask)
        out["mask_allowed"] = .bools(result.allowedMatrix(), shape: [n, n])
        return out
    }
}
