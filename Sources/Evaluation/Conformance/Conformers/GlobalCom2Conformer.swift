import Tensors
import TokenCompression

public enum GlobalCom2Conformer: MethodConformer {
    public static let method = "globalcom2"
    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let method = try GlobalCom2(GlobalCom2.Parameters(
            retentionRatio: try p.double("retention_ratio", default: 0.25),
            temperature: try p.double("temperature", default: 10)))
        let grid = GlobalCom2.Grid(
            numPatchWidth: try p.int("num_patch_width"), numPatchHeight: try p.int("num_patch_height"),
            patchesPerSide: try p.int("patches_per_side", default: 24),
            originalWidth: try p.int("original_image_width"), originalHeight: try p.int("original_image_height"))
        let r = try method.compress(clsLogits: try testCase.inputs.floats("cls_logits"),
                                    features: try testCase.inputs.floats("features"),
                                    imageNewline: try testCase.inputs.floats("image_newline").values, grid: grid)
        return [
            "crop_scales": try .doubles(r.cropScales),
            "crop_valid_counts": .ints(r.cropValidCounts),
            "crop_budgets": .ints(r.cropBudgets),
            "thumbnail_kept": .ints(r.thumbnailKept),
            "crop_kept_valid_idx": .ints(r.cropKeptValid.flatMap { $0 }),
            "kept": .ints(r.kept),
            "output": .floats(r.output),
            "output_source": .ints(r.outputSource),
            "count": .int(r.count),
        ]
    }
}
