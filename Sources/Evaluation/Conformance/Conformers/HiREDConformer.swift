import Tensors
import TokenCompression

/// Runs HiRED on a case: [CLS] rows `top_attn` / `bottom_attn` as [P, heads, 1+N].
public enum HiREDConformer: MethodConformer {
    public static let method = "hired"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let bottom = try testCase.inputs.floats("bottom_attn")
        guard bottom.rank == 3 else { throw ConformanceError("bottom_attn must be [P, heads, 1+N], got \(bottom.shape)") }
        let p = bottom.shape[0], heads = bottom.shape[1], n = bottom.shape[2] - 1
        let partition = { (t: Tensor, i: Int) throws -> Tensor in try t.rows(i * heads..<(i + 1) * heads) }
        let result: HiRED.Result
        switch try testCase.params.string("variant") {
        case "llava_1_5":
            let params = HiRED.Parameters(tokenBudgetRate: try testCase.params.double("token_budget_rate"))
            result = try HiRED.select(bottomAttention: try partition(bottom, 0), parameters: params)
        case "llava_next":
            guard try testCase.params.int("full_image_patch", default: 0) == 0 else {
                throw ConformanceError("only full_image_patch = 0 is supported (the code always uses 0)")
            }
            let params = HiRED.Parameters(tokenBudgetRate: try testCase.params.double("token_budget_rate"),
                                          alpha: try testCase.params.double("alpha"))
            let grid = HiRED.CropGrid(columns: try testCase.params.int("num_patch_width"),
                                      rows: try testCase.params.int("num_patch_height"))
            let top = try testCase.inputs.floats("top_attn")
            result = try HiRED.select(topAttention: try partition(top, 0),
                                      bottomAttention: try (0..<p).map { try partition(bottom, $0) },
                                      grid: grid, parameters: params)
        case let other:
            throw ConformanceError("unknown hired variant '\(other)'")
        }
        var mask = [Int](repeating: 0, count: p * n)
        for k in result.compression.kept { mask[k] = 1 }
        let b = result.budgets
        return ["budgets": .ints(b.perPartition),
                "keep_mask": .ints(mask, shape: [p, n]),
                "kept": .ints(result.compression.kept),
                "budget_totals": .ints([b.total, b.full, b.sub]),
                "partition_marks": .ints(b.partitionMarks)]
    }
}
