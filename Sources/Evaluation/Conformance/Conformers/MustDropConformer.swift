import Tensors
import TokenCompression

/// Maps the `mustdrop` cases (`params.stage`: `vision_window_merge` or `llm_dual_attention_filter`)
/// onto `MustDrop`'s typed API.
public enum MustDropConformer: MethodConformer {
    public static let method = "mustdrop"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let stage = try testCase.params.string("stage")
        switch stage {
        case "vision_window_merge": return try windowMerge(testCase)
        case "llm_dual_attention_filter": return try filter(testCase)
        default: throw ConformanceError("mustdrop: unknown stage '\(stage)'")
        }
    }

    static func windowMerge(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        var parameters = MustDrop.Parameters()
        parameters.similarityThreshold = Float(try testCase.params.double("threshold", default: 0.8))
        if testCase.params.has("window_size") {
            let ws = try testCase.params.ints("window_size")
            guard ws.count == 2 else { throw ConformanceError("window_size must have two entries") }
            parameters.windowHeight = ws[0]
            parameters.windowWidth = ws[1]
        }
        let hidden = try testCase.inputs.floats("hidden")
        let batched = hidden.rank == 3
        let crops: [Tensor]
        if batched {
            let (b, n, c) = (hidden.shape[0], hidden.shape[1], hidden.shape[2])
            crops = try (0..<b).map { try hidden.reshaped([b * n, c]).rows($0 * n..<($0 + 1) * n) }
        } else {
            crops = [hidden]
        }
        let (r, results) = try MustDrop.windowMerge(crops: crops, parameters: parameters)
        let b = results.count
        func lead(_ shape: [Int]) -> [Int] { batched ? [b] + shape : shape }
        let outRows = results[0].tokens.rows, width = results[0].tokens.columns
        return [
            "x_out": .floats(try Tensor(shape: lead([outRows, width]), values: results.flatMap { $0.tokens.values })),
            "size_out": try .floats(results.flatMap(\.sizes), shape: lead([outRows])),
            "window_sim": try .floats(results.flatMap(\.windowSimilarity), shape: lead([results[0].windowSimilarity.count])),
            "r": .int(r),
            "merged_windows": .ints(results.flatMap(\.mergedWindows), shape: lead([r])),
            "merged_dst": .ints(results.flatMap(\.mergedDestinations), shape: lead([r])),
            "unmerged": .ints(results.flatMap(\.unmerged), shape: lead([results[0].unmerged.count])),
            "assign": .ints(results.flatMap(\.assignment), shape: lead([results[0].assignment.count])),
        ]
    }

    static func filter(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        var parameters = MustDrop.Parameters()
        parameters.globalThreshold = Float(try p.double("global_thr"))
        parameters.individualThreshold = Float(try p.double("individual_thr"))
        let attention = try testCase.inputs.floats("attn")
        let hidden = try testCase.inputs.floats("hidden")
        let layout = try TokenLayout(imageStart: try p.int("v_token_start"), imageCount: try p.int("img_seq"),
                                     totalCount: hidden.rows)
        let keySet = try testCase.inputs.ints("key_set")
        let filtered = try MustDrop.dualAttentionFilter(attention: attention, layout: layout, keySet: keySet,
                                                        parameters: parameters)
        let (hiddenOut, _) = try MustDrop.apply(filtered, to: hidden)
        return [
            "vis_indices": .ints(filtered.visualKept),
            "key_set_out": .ints(filtered.keySetOut),
            "kept": .ints(filtered.result.kept),
            "hidden_out": .floats(hiddenOut),
            "img_seq_out": .int(filtered.visualCount),
            "candidate": .bools(filtered.candidate),
        ]
    }
}
