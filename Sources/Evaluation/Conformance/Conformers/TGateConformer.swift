import Tensors
import TokenCompression

/// T-GATE cases: whole PixArt-α sampling runs of `tgate_scheduler` + `tgate_processor`.
public enum TGateConformer: MethodConformer {
    public static let method = "tgate"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let parameters = try TGate.Parameters(
            gateStep: try p.int("gate_step"), semanticsInterval: try p.int("sp_interval"),
            fidelityInterval: try p.int("fi_interval"), warmUp: try p.int("warm_up"),
            lcm: try p.bool("lcm"), classifierFreeGuidance: try p.bool("do_classifier_free_guidance"))
        let steps = try p.int("num_inference_steps")
        let layers = try p.int("num_layers")
        let saFresh = try testCase.inputs.floats("sa_fresh")
        let caFresh = try testCase.inputs.floats("ca_fresh")
        guard saFresh.shape.count == 5, saFresh.shape == caFresh.shape, saFresh.shape[0] == steps,
              saFresh.shape[1] == layers, saFresh.shape[2] == 2 else {
            throw ConformanceError("tgate: sa_fresh/ca_fresh shapes \(saFresh.shape) / \(caFresh.shape)")
        }
        let rowSize = saFresh.shape[3] * saFresh.shape[4]
        let sa = saFresh.values, ca = caFresh.values

        /// Rows `0..<batch` of `[step, layer]` as a `[batch, N, C]` tensor.
        func fresh(_ v: [Float], _ step: Int, _ layer: Int, _ batch: Int) throws -> Tensor {
            let start = (step * layers + layer) * 2 * rowSize
            return try Tensor(shape: [batch, saFresh.shape[3], saFresh.shape[4]], values: Array(v[start..<start + batch * rowSize]))
        }

        var selfCaches = Array(repeating: TGate.AttentionCache(), count: layers)
        var crossCaches = Array(repeating: TGate.AttentionCache(), count: layers)
        var batchSizes: [Int] = [], flagRows: [TGate.Flags] = []
        var saCompute: [Int] = [], caCompute: [Int] = []
        var saUsed = [Float](repeating: 0, count: sa.count), caUsed = [Float](repeating: 0, count: ca.count)
        for step in 0..<steps {
            let batch = TGate.batchSize(step: step, parameters: parameters)
            let f = TGate.flags(step: step, parameters: parameters)
            batchSizes.append(batch)
            flagRows.append(f)
            for layer in 0..<layers {
                let (so, sc) = try selfCaches[layer].call(cache: f.selfCache, reuse: f.selfReuse, keepShape: f.keepShape) {
                    try fresh(sa, step, layer, batch)
                }
                let (co, cc) = try crossCaches[layer].call(cache: f.crossCache, reuse: f.crossReuse, keepShape: f.keepShape) {
                    try fresh(ca, step, layer, batch)
                }
                saCompute.append(sc ? 1 : 0)
                caCompute.append(cc ? 1 : 0)
                let start = (step * layers + layer) * 2 * rowSize
                for (i, x) in so.values.enumerated() where i < 2 * rowSize { saUsed[start + i] = x }
                for (i, x) in co.values.enumerated() where i < 2 * rowSize { caUsed[start + i] = x }
            }
        }
        return [
            "batch_size": .ints(batchSizes),
            "sa_compute": .ints(saCompute, shape: [steps, layers]),
            "ca_compute": .ints(caCompute, shape: [steps, layers]),
            "sa_used": .floats(try Tensor(shape: saFresh.shape, values: saUsed)),
            "ca_used": .floats(try Tensor(shape: caFresh.shape, values: caUsed)),
            "ca_cache_flag": .bools(flagRows.map(\.crossCache)),
            "ca_reuse_flag": .bools(flagRows.map(\.crossReuse)),
            "sa_cache_flag": .bools(flagRows.map(\.selfCache)),
            "sa_reuse_flag": .bools(flagRows.map(\.selfReuse)),
            "keep_shape": .bools(flagRows.map(\.keepShape)),
        ]
    }
}
