import Tensors
import TokenCompression

/// Runs `n_layers` consecutive FiCoCo-V layers from a fresh score buffer; layer i reads
/// `query_l{i}` / `key_l{i}` and the previous layer's output.
public enum FiCoCoVConformer: MethodConformer {
    public static let method = "ficoco_v"
    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let window = p.has("window") ? try p.ints("window") : [2, 2]
        guard window.count == 2 else { throw ConformanceError("window must be [sy, sx]") }
        let parameters = FiCoCoV.Parameters(
            r: try p.int("r", default: 42), beta: try p.double("beta", default: 0.35),
            windowHeight: window[0], windowWidth: window[1],
            penaltyCount: try p.int("penalty_count", default: 144), stateSize: try p.int("state_size", default: 576),
            quantile: Float(try p.double("quantile", default: 0.998)))
        let method = try FiCoCoV(parameters)
        var state = FiCoCoV.State(size: parameters.stateSize)
        var hidden = try testCase.inputs.floats("hidden")
        var out: [String: CaseValue] = [:]
        for i in 0..<(try p.int("n_layers", default: 1)) {
            let logits = try FiCoCoV.headMeanLogits(queries: try testCase.inputs.floats("query_l\(i)"),
                                                    keys: try testCase.inputs.floats("key_l\(i)"))
            let r = try method.layer(hidden: hidden, logits: logits, state: &state)
            let k = r.targets.first?.count ?? 0
            out["x_out_l\(i)"] = .floats(r.output)
            out["size_l\(i)"] = try .floats(r.sizes)
            out["score_l\(i)"] = try .floats(r.scores)
            out["penalized_l\(i)"] = .ints(r.penalized)
            out["merge_indices_l\(i)"] = .ints(r.mergeIndices)
            out["remain_indices_l\(i)"] = .ints(r.remainIndices)
            out["targets_l\(i)"] = .ints(r.targets.flatMap { $0 }, shape: [r.targets.count, k])
            out["weights_l\(i)"] = try .floats(r.weights.flatMap { $0 }, shape: [r.weights.count, k])
            out["scatter_pos_l\(i)"] = .ints(r.scatterPositions)
            out["state_inf_l\(i)"] = .bools(state.infinite)
            hidden = r.output
        }
        return out
    }
}
