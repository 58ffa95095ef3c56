import Tensors
import TokenCompression

/// Runs one ToMe-SD block (`compute_merge` + the `merge`/`unmerge` closures of
/// `bipartite_soft_matching_random2d`) with the recorded destination draw (`rand_idx`); merged rows
/// in canonical order (ascending base token), as the cases give them.
public enum ToMeSDConformer: MethodConformer {
    public static let method = "tomesd"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let parameters = ToMeSD.Parameters(ratio: try p.double("ratio"), maxDownsample: try p.int("max_downsample"),
                                           sx: try p.int("sx"), sy: try p.int("sy"), useRand: try p.bool("use_rand"))
        let x = try testCase.inputs.floats("x")
        let y = try testCase.inputs.floats("y")
        // Without a recorded draw (r = 0 draws nothing) the fixed choice stands in; it is never used then.
        let destinations: ToMeSD.DestinationChoice = testCase.inputs.has("rand_idx")
            ? .cells(try testCase.inputs.ints("rand_idx")) : .topLeft
        let block = try ToMeSD.computeMerge(metric: x, originalSize: (try p.int("original_h"), try p.int("original_w")),
                                            parameters: parameters, destinations: destinations)
        let matching = block.sublayerMatching(.selfAttention)
        let merged = try ToMeSD.merge(y, matching: matching)
        let unmerged = try ToMeSD.unmerge(merged, matching: matching)
        var outputs: [String: CaseValue] = [
            "merged": .floats(merged),
            "unmerged": .floats(unmerged),
            "r_effective": .int(matching.effectiveR),
        ]
        guard !matching.isIdentity else { return outputs }
        let batch = matching.batchSize
        outputs["merged_base"] = .ints((0..<batch).flatMap { matching.order(batch: $0) }, shape: [batch, matching.outputCount])
        outputs["assign"] = .ints((0..<batch).flatMap { matching.assignment(batch: $0) }, shape: [batch, matching.tokenCount])
        outputs["merged_src"] = .ints((0..<batch).flatMap { matching.mergedSources[$0].sorted() }, shape: [batch, matching.effectiveR])
        outputs["dst_tokens"] = .ints(matching.destinations)
        outputs["grid_hw"] = .ints([block.plan.height, block.plan.width])
        return outputs
    }
}
