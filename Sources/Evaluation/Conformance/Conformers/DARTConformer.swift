import Tensors
import TokenCompression

/// Maps the `dart` cases (authors' `get_retained_image_token` + pruning block) onto `DART`.
public enum DARTConformer: MethodConformer {
    public static let method = "dart"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let hidden = try testCase.inputs.floats("normed_hidden")
        let keys = try testCase.inputs.floats("keys")
        let n = hidden.rows
        let imageStart = try p.int("image_start")
        let rule: DART.PickRule
        let imageCount: Int
        if let textLength = try p.optionalInt("text_length") {
            // NeXT path: every non-text token counts as an image token (N = n − text_length).
            imageCount = n - textLength
            rule = .nextRetain(try p.int("retain_token_num_for_llava_next"))
        } else {
            imageCount = try p.int("image_len")
            if let m = try p.optionalInt("max_num_truncation") {
                rule = .truncation(m)
            } else {
                rule = .reductionRatio(try p.double("reduction_ratio"))
            }
        }
        let dart = try DART(.init(layer: try p.int("K", default: 2),
                                  pivotImageTokens: try p.int("pivot_image_tokens"),
                                  pivotTextTokens: try p.int("pivot_text_tokens"), rule: rule))
        let layout = try TokenLayout(imageStart: imageStart, imageCount: imageCount, totalCount: n)
        // Emulated CPython set order; the case's `pivot_order` input is checked by the comparison.
        let result = try dart.select(normalizedHidden: hidden, keys: keys, layout: layout)
        return [
            "kept": .ints(result.compression.kept),
            "kept_visual_count": .int(result.compression.achievedCount),
            "token_topk": .int(result.tokenTopK),
            "pivot_image": .ints(result.imagePivots),
            "pivot_text": .ints(result.textPivots),
            "pivot_order": .ints(result.pivotOrder),
        ]
    }
}
