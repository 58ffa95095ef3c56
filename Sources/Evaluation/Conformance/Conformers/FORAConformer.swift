import Tensors
import TokenCompression

/// Runs FORA cases: a whole sampling run of a block stack whose modules are stand-ins returning
/// the case's per-call outputs (they ignore their input), with the case's gates.
public enum FORAConformer: MethodConformer {
    public static let method = "fora"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let params = FORA.Parameters(numSteps: try testCase.params.int("num_steps"),
                                     interval: try testCase.params.int("cache_interval"),
                                     numLayers: try testCase.params.int("num_layers"))
        let s = params.numSteps, layers = params.numLayers
        let xIn = try tocaSplitBatch(try testCase.inputs.floats("x_in"))
        let attn = try tocaSplitBatch(try testCase.inputs.floats("attn_fresh")).map { try tocaSplitBatch($0) }
        let mlp = try tocaSplitBatch(try testCase.inputs.floats("mlp_fresh")).map { try tocaSplitBatch($0) }
        let gMSA = try tocaSplitBatch(try testCase.inputs.floats("gate_msa")).map { try tocaSplitBatch($0) }
        let gMLP = try tocaSplitBatch(try testCase.inputs.floats("gate_mlp")).map { try tocaSplitBatch($0) }
        guard xIn.count == s, attn.count == s, mlp.count == s, gMSA.count == s, gMLP.count == s,
              attn.allSatisfy({ $0.count == layers }) else {
            throw ConformanceError("fora: inputs do not cover \(s) calls × \(layers) blocks")
        }
        var cache = TokenFeatureCache()
        var compute: [Bool] = [], perLayer: [Bool] = [], out: [Float] = []
        for (k, i) in FORA.stepIndices(params).enumerated() {
            var x = xIn[k]
            var called = false
            for l in 0..<layers {
                var ran = false
                x = try FORA.block(x, layer: l, step: i, gateMSA: gMSA[k][l], gateMLP: gMLP[k][l],
                                   parameters: params, cache: &cache,
                                   attention: { _ in ran = true; return attn[k][l] },
                                   mlp: { _ in mlp[k][l] })
                perLayer.append(ran)
                called = called || ran
            }
            compute.append(called)
            out += x.values
        }
        return [
            "compute": .bools(compute, shape: [s]),
            "compute_per_layer": .bools(perLayer, shape: [s, layers]),
            "step_index": .ints(FORA.stepIndices(params), shape: [s]),
            "x_out": try .floats(out, shape: [s] + xIn[0].shape),
        ]
    }
}
