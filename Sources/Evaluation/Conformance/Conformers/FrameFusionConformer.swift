import Tensors
import TokenCompression

/// Drives FrameFusion through one merge call, one prune call, or a whole prefill sequence of calls.
public enum FrameFusionConformer: MethodConformer {
    public static let method = "framefusion"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let inputs = testCase.inputs
        let parameters = FrameFusion.Parameters(
            cost: try p.double("cost", default: 0.3),
            similarityLowerBound: try p.double("similarity_lower_bound", default: 0.6),
            ratioLowerBound: try p.double("ratio_lower_bound", default: 0.1),
            budgetLayers: try p.int("num_layers", default: 28))
        func flags(_ s: FrameFusion.State) -> [Bool] { [s.finishMerging, s.finishPruning] }
        switch try p.string("stage") {
        case "merge":
            let hidden = try inputs.floats("hidden_states")
            var state = try FrameFusion.State(patchType: try inputs.ints("patch_type"), patchCount: try p.int("patch_num"))
            state.sparsityList = try p.doubles("sparsity_list_in")
            state.finishMerging = try p.bool("finish_merging_in")
            state.finishPruning = try p.bool("finish_pruning_in")
            let r = try FrameFusion.call(hiddenStates: hidden, state: &state, parameters: parameters)
            guard let m = r.merge else { throw ConformanceError("framefusion: the call did not merge") }
            return [
                "hidden_states_out": .floats(r.hiddenStates),
                "kept": .ints(r.compression.kept),
                "patch_type_out": .ints(state.patchType),
                "similarity_by_patch": try .floats(m.similarityByPatch),
                "token_index_by_patch": .ints(m.tokenIndexByPatch),
                "needed_sparsity": try .doubles([m.neededSparsity]),
                "finish_merging": .bools([state.finishMerging]),
                "finish_pruning": .bools([state.finishPruning]),
                "sparsity_list_out": try .doubles(state.sparsityList),
            ]
        case "prune":
            let hidden = try inputs.floats("hidden_states")
            var state = try FrameFusion.State(
                patchType: [], patchCount: 0, imageStart: try p.int("image_token_start_index"),
                imageLength: try p.int("image_token_length"), originalLength: try p.int("original_length"),
                sparsityList: try p.doubles("sparsity_list_in"), finishMerging: try p.bool("finish_merging_in"),
                finishPruning: try p.bool("finish_pruning_in"), positions: Array(0..<hidden.rows))
            let r = try FrameFusion.call(hiddenStates: hidden, attentionLastRow: try inputs.floats("attn_last_row"),
                                         state: &state, parameters: parameters)
            guard let pr = r.prune else { throw ConformanceError("framefusion: the call did not prune") }
            return [
                "kept": .ints(r.compression.kept),
                "hidden_states_out": .floats(r.hiddenStates),
                "pruning_ratio": try .doubles([pr.pruningRatio]),
                "importance": try .floats(pr.importance),
                "finish_pruning": .bools([state.finishPruning]),
            ]
        case "prefill":
            var state = try FrameFusion.State(
                patchType: try inputs.ints("patch_type"), patchCount: try p.int("patch_num"),
                imageStart: try p.int("image_token_start_index"), imageLength: try p.int("image_token_length"),
                originalLength: try p.int("original_length"))
            var out: [String: CaseValue] = [:]
            for i in 0..<(try p.int("num_calls")) {
                let attention = inputs.has("attn_last_row_\(i)") ? try inputs.floats("attn_last_row_\(i)") : nil
                let r = try FrameFusion.call(hiddenStates: try inputs.floats("hidden_in_\(i)"), attentionLastRow: attention,
                                             state: &state, parameters: parameters)
                out["kept_\(i)"] = .ints(r.compression.kept)
                out["hidden_out_\(i)"] = .floats(r.hiddenStates)
                out["positions_out_\(i)"] = .ints(state.positions)
                out["sparsity_list_\(i)"] = try .doubles(state.sparsityList)
                out["flags_\(i)"] = .bools(flags(state))
            }
            return out
        case let stage:
            throw ConformanceError("framefusion: unknown stage '\(stage)'")
        }
    }
}
