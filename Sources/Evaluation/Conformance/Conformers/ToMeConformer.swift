import Tensors
import TokenCompression

/// Runs one ToMe merge step (`bipartite_soft_matching` + `merge_wavg` + `merge_source`).
public enum ToMeConformer: MethodConformer {
    public static let method = "tome"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let parameters = ToMe.Parameters(r: try p.int("r"), classToken: try p.bool("class_token", default: false),
                                         distillToken: try p.bool("distill_token", default: false))
        let metric = try testCase.inputs.floats("metric")
        let x = try testCase.inputs.floats("x")
        let sizes = testCase.inputs.has("size") ? try testCase.inputs.floats("size").values : nil
        var sources: [[Int]]? = nil
        var originalCount = x.rows
        if testCase.inputs.has("source") {
            let map = try testCase.inputs.floats("source")
            originalCount = map.columns
            sources = (0..<map.rows).map { r in (0..<map.columns).filter { map[r, $0] > 0 } }
        }
        let step = try ToMe.step(x: x, metric: metric, sizes: sizes, sources: sources, parameters: parameters)
        let rows = step.sources.count
        var sourceMap = [Int](repeating: 0, count: rows * originalCount)
        var assign = [Int](repeating: -1, count: originalCount)
        for (row, patches) in step.sources.enumerated() {
            for j in patches {
                sourceMap[row * originalCount + j] = 1
                if assign[j] < 0 { assign[j] = row }
            }
        }
        return [
            "x_out": .floats(step.x),
            "size_out": try .floats(step.sizes),
            "source_out": .ints(sourceMap, shape: [rows, originalCount]),
            "assign": .ints(assign),
            "order": .ints(step.matching.order),
            "merged_src": .ints(step.matching.mergedSources),
            "merged_dst": .ints(step.matching.mergedDestinations),
        ]
    }
}
