import Tensors
import TokenCompression

/// PruMerge+ shares the case mapping of `PruMergeConformer`.
public enum PruMergePlusConformer: MethodConformer {
    public static let method = "prumerge_plus"
    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let x = try PruMergeConformerSupport.inputs(testCase)
        let method = try PruMergePlus(PruMergePlus.Parameters(
            base: try PruMergeConformerSupport.baseParameters(testCase.params),
            sampleEnd: try testCase.params.optionalInt("sample_end")))
        return try PruMergeConformerSupport.outputs(method.compress(clsQuery: x.query, keys: x.keys, features: x.features))
    }
}
