import Foundation
import ModelIO
import Tensors
import TokenCompression

/// Maps the `fitprune` cases onto `FitPrune`, by `params.stage`:
/// - `prune`: a chain of prefill layers (`layer_ids`), tensors suffixed `_k` for the k-th layer;
///   the scheme comes from the shipped table of `reduction_ratio` and must equal `delete_scheme`.
/// - `fit_layer`: one decision of the offline search.
/// - `fit`: the whole search on the tiny random LLaMA whose weights and embeddings are the inputs
///   (`TinyLlamaCalibration`, a float64 forward).
public enum FitPruneConformer: MethodConformer {
    public static let method = "fitprune"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        switch try testCase.params.string("stage") {
        case "prune": return try prune(testCase)
        case "fit_layer": return try fitLayer(testCase)
        case "fit": return try fit(testCase)
        case let other: throw ConformanceError("fitprune: unknown stage '\(other)' (prune, fit_layer, fit)")
        }
    }

    static func prune(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params, inputs = testCase.inputs
        let fitPrune = try FitPrune(try .init(reductionPercent: try p.int("reduction_ratio"), systemLength: try p.int("sys_len")))
        if p.has("delete_scheme"), try p.ints("delete_scheme") != fitPrune.parameters.deleteScheme {
            throw ConformanceError("fitprune: the case's delete_scheme differs from the shipped table for \(try p.int("reduction_ratio"))")
        }
        var positions = try inputs.ints("position_ids")
        var left = try p.int("image_len")
        var lefts: [Int] = []
        var out: [String: CaseValue] = [:]
        for (k, layer) in try p.ints("layer_ids").enumerated() {
            let r = try fitPrune.prune(layer: layer, attention: try inputs.floats("attn_\(k)"), positionIds: positions, imageCount: left)
            if !r.scores.isEmpty {
                out["score_\(k)"] = try .floats(r.scores)
                out["cross_\(k)"] = try .floats(r.cross)
                out["self_\(k)"] = try .floats(r.selfAttention)
            }
            out["deleted_\(k)"] = .ints(r.deleted)
            out["kept_\(k)"] = .ints(r.compression.kept)
            out["position_ids_\(k)"] = .ints(r.positionIds)
            positions = r.positionIds
            left = r.imageCountAfter
            lefts.append(left)
        }
        out["left_out"] = .ints(lefts)
        return out
    }

    static func fitLayer(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params, inputs = testCase.inputs
        let d = try FitPrune.fitLayer(
            attention: try inputs.floats("attn"), positionIds: try inputs.ints("position_ids"),
            imageCount: try p.int("image_len"), systemLength: try p.int("sys_len"), alpha: try p.double("mid_alpha"),
            weightSumCross: Double(try inputs.floats("weightsum_cross")[flat: 0]),
            weightSumSelf: Double(try inputs.floats("weightsum_self")[flat: 0]),
            previousCrossCount: try p.optionalInt("prev_del_num_cross"), previousSelfCount: try p.optionalInt("prev_del_num_self"))
        return [
            "cross": try .floats(d.cross), "self": try .floats(d.selfAttention),
            "del_num_cross": .int(d.crossCount), "del_num_self": .int(d.selfCount),
            "deleted": .ints(d.deleted), "kept": .ints(d.kept), "position_ids_out": .ints(d.positionIds),
            "left_out": .int(d.imageCountAfter), "scheme_increment": .int(d.deleted.count),
        ]
    }

    static func fit(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        func object(_ key: String) throws -> JSONValue {
            let v = try p.raw(key)
            guard v.objectValue != nil else { throw ConformanceError("parameter '\(key)' is not an object") }
            return v
        }
        func int(_ o: JSONValue, _ key: String) throws -> Int {
            guard let v = o[key]?.intValue else { throw ConformanceError("parameter '\(key)' missing or not an integer") }
            return v
        }
        func double(_ o: JSONValue, _ key: String) throws -> Double {
            guard let v = o[key]?.doubleValue else { throw ConformanceError("parameter '\(key)' missing or not a number") }
            return v
        }
        let modelParams = try object("model"), flopsParams = try object("flops_model"), search = try object("search")
        guard modelParams["hidden_act"]?.stringValue ?? "silu" == "silu" else {
            throw ConformanceError("fitprune fit: only a SiLU-gated MLP is implemented (hidden_act \(modelParams["hidden_act"]!))")
        }
        let config = TinyLlamaCalibration.Config(
            layers: try int(modelParams, "num_hidden_layers"), hidden: try int(modelParams, "hidden_size"),
            heads: try int(modelParams, "num_attention_heads"), headDim: try int(modelParams, "head_dim"),
            intermediate: try int(modelParams, "intermediate_size"), rmsNormEps: try double(modelParams, "rms_norm_eps"),
            ropeTheta: try double(modelParams, "rope_theta"))
        let samples = try p.int("num_samples")
        let textLengths = try p.ints("text_lens")
        let sys = try p.int("sys_len"), image = try p.int("image_len")
        guard textLengths.count == samples else { throw ConformanceError("fitprune fit: \(textLengths.count) text lengths for \(samples) samples") }
        var embeddings: [Tensor] = []
        for s in 0..<samples {
            let e = try testCase.inputs.floats("inputs_embeds_\(s)")
            guard e.rank == 2, e.rows == sys + image + textLengths[s] else {
                throw ConformanceError("fitprune fit: inputs_embeds_\(s) \(e.shape) for \(sys) + \(image) + \(textLengths[s]) tokens")
            }
            embeddings.append(e)
        }
        let model = try TinyLlamaCalibration(config: config, embeddings: embeddings, inputs: testCase.inputs)
        let parameters = FitPrune.SearchParameters(
            reductionRatio: try p.double("reduction_ratio"), systemLength: sys, imageTokens: image,
            flops: .init(hidden: try int(flopsParams, "hidden"), ffn: try int(flopsParams, "ffn"),
                         layers: try int(flopsParams, "layers"), imageTokens: try int(flopsParams, "image_tokens")),
            alphaLow: try double(search, "alpha_low"), alphaHigh: try double(search, "alpha_high"),
            stopWidth: try double(search, "stop_width"))
        let r = try FitPrune.fit(model: model, parameters: parameters)
        let layers = config.layers
        return [
            "weightsum_cross": try .doubles(r.weightSumCross.flatMap { $0 }, shape: [samples, layers]),
            "weightsum_self": try .doubles(r.weightSumSelf.flatMap { $0 }, shape: [samples, layers]),
            "alphas": try .doubles(r.steps.map(\.alpha)),
            "flops_reach": .bools(r.steps.map(\.reachedBudget)),
            "stop_layer": .ints(r.steps.map(\.stopLayer)),
            "schemes": .ints(r.steps.flatMap(\.scheme), shape: [r.steps.count, layers]),
            "scheme": .ints(r.scheme),
            "alpha_interval": try .doubles([r.alphaInterval.low, r.alphaInterval.high]),
        ]
    }
}

/// The tiny random LLaMA of the `fit` case as a `FitPruneCalibrationModel`, in float64 (the case
/// was cross-checked against a float64 re-implementation; float64 keeps the search's bound
/// comparisons well away from rounding). Hugging Face LLaMA semantics: pre-RMSNorm, q/k/v/o
/// without bias, RoPE (rotate-half, float32 angles as transformers) at the tokens' position ids,
/// causal softmax, residual, post-attention RMSNorm, SiLU-gated MLP, residual.
final class TinyLlamaCalibration: FitPruneCalibrationModel {
    struct Config {
        var layers, hidden, heads, headDim, intermediate: Int
        var rmsNormEps, ropeTheta: Double
    }

    struct Layer {
        var q, k, v, o, gate, up, down, inputNorm, postNorm: [Double]
    }

    let config: Config
    let embeddings: [[Double]]
    let lengths: [Int]
    let layerWeights: [Layer]
    let inverseFrequencies: [Float]
    /// Current hidden rows of every sample (`[rows · hidden]`), and the attention output of the
    /// layer whose `attention` ran last (`[rows · heads·headDim]`), waiting for `finishLayer`.
    var hidden: [[Double]]
    var pendingOutput: [[Double]?]

    init(config: Config, embeddings: [Tensor], inputs: CaseInputs) throws {
        guard config.layers > 0, config.hidden > 0, config.heads > 0, config.headDim > 0, config.headDim % 2 == 0,
              config.intermediate > 0, config.heads * config.headDim == config.hidden else {
            throw ConformanceError("fitprune fit: unusable tiny LLaMA config \(config)")
        }
        self.config = config
        self.embeddings = embeddings.map { $0.values.map(Double.init) }
        lengths = embeddings.map(\.rows)
        guard embeddings.allSatisfy({ $0.columns == config.hidden }) else {
            throw ConformanceError("fitprune fit: embeddings are not \(config.hidden) wide")
        }
        let d = config.hidden, m = config.intermediate
        func weight(_ l: Int, _ name: String, _ shape: [Int]) throws -> [Double] {
            let key = "layers.\(l).\(name).weight"
            let t = try inputs.floats(key)
            guard t.shape == shape else { throw ConformanceError("fitprune fit: \(key) is \(t.shape), expected \(shape)") }
            return t.values.map(Double.init)
        }
        layerWeights = try (0..<config.layers).map { l in
            Layer(q: try weight(l, "self_attn.q_proj", [d, d]), k: try weight(l, "self_attn.k_proj", [d, d]),
                  v: try weight(l, "self_attn.v_proj", [d, d]), o: try weight(l, "self_attn.o_proj", [d, d]),
                  gate: try weight(l, "mlp.gate_proj", [m, d]), up: try weight(l, "mlp.up_proj", [m, d]),
                  down: try weight(l, "mlp.down_proj", [d, m]), inputNorm: try weight(l, "input_layernorm", [d]),
                  postNorm: try weight(l, "post_attention_layernorm", [d]))
        }
        // transformers: inv_freq = 1 / theta^(arange(0, dim, 2) / dim) in float32.
        inverseFrequencies = (0..<config.headDim / 2).map { i in
            1 / Float(pow(config.ropeTheta, Double(Float(2 * i) / Float(config.headDim))))
        }
        hidden = self.embeddings
        pendingOutput = Array(repeating: nil, count: embeddings.count)
    }

    var sampleCount: Int { embeddings.count }
    var layerCount: Int { config.layers }
    func sequenceLength(sample: Int) -> Int { lengths[sample] }

    func resetPass() throws {
        hidden = embeddings
        pendingOutput = Array(repeating: nil, count: embeddings.count)
    }

    func unprunedAttention(sample: Int, visit: (Int, Tensor) throws -> Void) throws {
        hidden[sample] = embeddings[sample]
        let n = lengths[sample]
        for l in 0..<config.layers {
            try visit(l, try attention(sample: sample, layer: l, positionIds: Array(0..<n)))
            try finishLayer(sample: sample, layer: l, keeping: Array(0..<n))
        }
        hidden[sample] = embeddings[sample]
    }

    func attention(sample: Int, layer: Int, positionIds: [Int]) throws -> Tensor {
        let d = config.hidden, heads = config.heads, hd = config.headDim
        let x = hidden[sample]
        let n = x.count / d
        guard positionIds.count == n, layer >= 0, layer < config.layers else {
            throw ConformanceError("tiny LLaMA: \(positionIds.count) positions for \(n) rows at layer \(layer)")
        }
        let w = layerWeights[layer]
        let normed = rmsNorm(x, w.inputNorm)
        var q = linear(normed, w.q, out: d), k = linear(normed, w.k, out: d)
        let v = linear(normed, w.v, out: d)
        rotate(&q, positionIds)
        rotate(&k, positionIds)
        let scale = 1 / Double(hd).squareRoot()
        var probabilities = Tensor(zeros: [heads, n, n])
        var output = [Double](repeating: 0, count: n * d)
        // Raw pointers: this loop is most of the case's time, and `swift test` runs it unoptimised.
        let pp = probabilities.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let row = UnsafeMutablePointer<Double>.allocate(capacity: n)
        defer { row.deallocate() }
        q.withUnsafeBufferPointer { qb in
            k.withUnsafeBufferPointer { kb in
                v.withUnsafeBufferPointer { vb in
                    output.withUnsafeMutableBufferPointer { ob in
                        let qp = qb.baseAddress!, kp = kb.baseAddress!, vp = vb.baseAddress!, op = ob.baseAddress!
                        for h in 0..<heads {
                            for i in 0..<n {
                                let qi = qp + i * d + h * hd
                                var top = -Double.infinity
                                for j in 0...i {
                                    let kj = kp + j * d + h * hd
                                    var dot = 0.0
                                    for t in 0..<hd { dot += qi[t] * kj[t] }
                                    row[j] = dot * scale
                                    if row[j] > top { top = row[j] }
                                }
                                var total = 0.0
                                for j in 0...i { row[j] = exp(row[j] - top); total += row[j] }
                                let oi = op + i * d + h * hd, pi = pp + (h * n + i) * n
                                for j in 0...i {
                                    let pr = row[j] / total
                                    pi[j] = Float(pr)
                                    let vj = vp + j * d + h * hd
                                    for t in 0..<hd { oi[t] += pr * vj[t] }
                                }
                            }
                        }
                    }
                }
            }
        }
        pendingOutput[sample] = output
        return probabilities
    }

    func finishLayer(sample: Int, layer: Int, keeping kept: [Int]) throws {
        let d = config.hidden, m = config.intermediate
        guard let output = pendingOutput[sample] else { throw ConformanceError("tiny LLaMA: finishLayer before attention") }
        let w = layerWeights[layer]
        let rows = output.count / d
        guard kept.allSatisfy({ (0..<rows).contains($0) }) else { throw ConformanceError("tiny LLaMA: kept rows outside 0..<\(rows)") }
        func gather(_ a: [Double]) -> [Double] { kept.flatMap { a[($0 * d)..<(($0 + 1) * d)] } }
        var h = gather(hidden[sample])
        let projected = linear(gather(output), w.o, out: d)
        for i in h.indices { h[i] += projected[i] }
        let y = rmsNorm(h, w.postNorm)
        let gate = linear(y, w.gate, out: m), up = linear(y, w.up, out: m)
        let act = zip(gate, up).map { g, u in g / (1 + exp(-g)) * u }
        let down = linear(act, w.down, out: d)
        for i in h.indices { h[i] += down[i] }
        hidden[sample] = h
        pendingOutput[sample] = nil
    }

    /// `x · Wᵀ` for `x` `[rows, in]` and `W` `[out, in]`.
    func linear(_ x: [Double], _ weight: [Double], out: Int) -> [Double] {
        let inner = weight.count / out, rows = x.count / inner
        var y = [Double](repeating: 0, count: rows * out)
        for r in 0..<rows {
            for o in 0..<out {
                var s = 0.0
                for i in 0..<inner { s += x[r * inner + i] * weight[o * inner + i] }
                y[r * out + o] = s
            }
        }
        return y
    }

    func rmsNorm(_ x: [Double], _ weight: [Double]) -> [Double] {
        let d = weight.count
        var y = x
        for r in 0..<(x.count / d) {
            var sumSquares = 0.0
            for j in 0..<d { sumSquares += x[r * d + j] * x[r * d + j] }
            let inv = 1 / (sumSquares / Double(d) + config.rmsNormEps).squareRoot()
            for j in 0..<d { y[r * d + j] = x[r * d + j] * inv * weight[j] }
        }
        return y
    }

    /// Rotate-half RoPE on `[rows, heads·headDim]`, the angle `p · inv_freq` rounded in float32.
    func rotate(_ x: inout [Double], _ positions: [Int]) {
        let d = config.hidden, hd = config.headDim, half = hd / 2
        for (r, p) in positions.enumerated() {
            for i in 0..<half {
                let angle = Double(Float(p) * inverseFrequencies[i])
                let c = cos(angle), s = sin(angle)
                for h in 0..<config.heads {
                    let base = r * d + h * hd
                    let a = x[base + i], b = x[base + i + half]
                    x[base + i] = a * c - b * s
                    x[base + i + half] = b * c + a * s
                }
            }
        }
    }
}
