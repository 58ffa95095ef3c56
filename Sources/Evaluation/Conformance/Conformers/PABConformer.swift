import Foundation
import ModelIO
import Tensors
import TokenCompression

/// PAB cases: whole runs of the Open-Sora 1.2 STDiT3 block stack (spatial d, temporal d, …) with
/// real raw outputs for block 0 and zeros for the other blocks.
public enum PABConformer: MethodConformer {
    public static let method = "pab"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let steps = try p.int("num_steps")
        let depth = try p.int("depth")
        func broadcast(_ name: String) throws -> PAB.Broadcast? {
            guard try p.bool("\(name)_broadcast") else { return nil }
            let window = try p.ints("\(name)_threshold")
            guard window.count == 2 else { throw ConformanceError("pab: \(name)_threshold needs 2 values") }
            return PAB.Broadcast(lower: window[0], upper: window[1], range: try p.int("\(name)_range"))
        }
        let mlpOn = try p.bool("mlp_broadcast")
        let parameters = try PAB.Parameters(
            spatial: try broadcast("spatial"), temporal: try broadcast("temporal"), cross: try broadcast("cross"),
            mlpBroadcast: mlpOn,
            mlpSpatial: mlpOn ? try pabRules(testCase, "mlp_spatial_broadcast_config") : [],
            mlpTemporal: mlpOn ? try pabRules(testCase, "mlp_temporal_broadcast_config") : [])

        let inputs = testCase.inputs
        let timesteps = try inputs.ints("timesteps")
        let xIn = try inputs.floats("x_in")
        let attnRaw = try inputs.floats("attn_raw"), crossRaw = try inputs.floats("cross_raw"), mlpRaw = try inputs.floats("mlp_raw")
        let gateMSA = try inputs.floats("gate_msa"), gateMLP = try inputs.floats("gate_mlp")
        guard timesteps.count == steps, xIn.shape.count == 3, xIn.shape[0] == steps else {
            throw ConformanceError("pab: timesteps \(timesteps.count) / x_in \(xIn.shape) for \(steps) steps")
        }
        let n = xIn.shape[1], c = xIn.shape[2], size = n * c
        func slice(_ t: Tensor, _ index: Int, _ shape: [Int]) throws -> Tensor {
            let count = shape.reduce(1, *)
            return try Tensor(shape: shape, values: Array(t.values[index * count..<(index + 1) * count]))
        }
        let zeros = Tensor(zeros: [n, c])

        var blocks = try (0..<depth).map { d in
            [try PAB.BlockCache(block: d, temporal: false, steps: steps), try PAB.BlockCache(block: d, temporal: true, steps: steps)]
        }
        var flags: [String: [Int]] = [:]
        let flagNames = ["attn_compute", "cross_compute", "mlp_compute", "mlp_store"]
        var attnUsed: [Float] = [], crossUsed: [Float] = [], mlpUsed: [Float] = [], xOut: [Float] = []
        var flagRows = Array(repeating: Array(repeating: [Int](), count: flagNames.count), count: 2)
        for k in 0..<steps {
            var x = try slice(xIn, k, [n, c])
            let gMSA = try slice(gateMSA, k, [c]), gMLP = try slice(gateMLP, k, [c])
            for d in 0..<depth {
                for j in 0..<2 {
                    let raw = { (t: Tensor) throws -> Tensor in d == 0 ? try slice(t, k * 2 + j, [n, c]) : zeros }
                    let s = try blocks[d][j].forward(x, timestep: timesteps[k], allTimesteps: timesteps, gateMSA: gMSA, gateMLP: gMLP,
                                                     parameters: parameters,
                                                     attention: { _ in try raw(attnRaw) },
                                                     crossAttention: { _ in try raw(crossRaw) },
                                                     mlp: { _ in try raw(mlpRaw) })
                    let row = [s.attentionComputed, s.crossComputed, s.mlpComputed, s.mlpStored]
                    for (f, v) in row.enumerated() { flagRows[j][f].append(v ? 1 : 0) }
                    if d == 0 {
                        attnUsed += s.attentionTerm.values
                        crossUsed += s.crossTerm.values
                        mlpUsed += s.mlpTerm.values
                        xOut += s.output.values
                    }
                    x = s.output
                }
            }
        }
        for (j, kind) in ["spatial", "temporal"].enumerated() {
            for (f, name) in flagNames.enumerated() { flags["\(kind)_\(name)"] = flagRows[j][f] }
        }
        var out: [String: CaseValue] = [:]
        for (name, values) in flags { out[name] = .ints(values, shape: [steps, depth]) }
        let shape = [steps, 2, n, c]
        guard attnUsed.count == steps * 2 * size else { throw ConformanceError("pab: internal size mismatch") }
        out["attn_used"] = .floats(try Tensor(shape: shape, values: attnUsed))
        out["cross_used"] = .floats(try Tensor(shape: shape, values: crossUsed))
        out["mlp_used"] = .floats(try Tensor(shape: shape, values: mlpUsed))
        out["x_out_block0"] = .floats(try Tensor(shape: shape, values: xOut))
        return out
    }
}

/// MLP rules of a `{timestep: {block: [...], skip_count: n}}` parameter, in the order the keys are
/// written in case.json (the parsed object is unordered; the first matching range wins in the code).
private func pabRules(_ testCase: ConformanceCase, _ name: String) throws -> [PAB.MLPRule] {
    guard let object = try testCase.params.raw(name).objectValue else { throw ConformanceError("pab: \(name) is not an object") }
    let order = pabKeyOrder(path: testCase.directory + "/case.json", parameter: name)
    let keys = order.filter { object[$0] != nil }.count == object.count ? order : object.keys.sorted()
    return try keys.map { key in
        guard let t = Int(key), let entry = object[key], let blocks = entry["block"]?.arrayValue?.compactMap(\.intValue),
              let skip = entry["skip_count"]?.intValue else { throw ConformanceError("pab: bad \(name) entry '\(key)'") }
        return PAB.MLPRule(timestep: t, blocks: blocks, skipCount: skip)
    }
}

/// The top-level keys of the object value of `"parameter"` in a JSON file, in written order.
private func pabKeyOrder(path: String, parameter: String) -> [String] {
    guard let text = try? String(contentsOfFile: path, encoding: .utf8),
          let at = text.range(of: "\"\(parameter)\"") else { return [] }
    let chars = Array(text[at.upperBound...])
    guard let open = chars.firstIndex(of: "{") else { return [] }
    var keys: [String] = [], depth = 0, i = open, inString = false, current = "", pendingKey: String?
    while i < chars.count {
        let ch = chars[i]
        if inString {
            if ch == "\\" { i += 2; continue }
            if ch == "\"" { inString = false; pendingKey = current } else { current.append(ch) }
        } else if ch == "\"" {
            inString = true; current = ""
        } else if ch == ":" {
            if depth == 1, let k = pendingKey { keys.append(k) }
            pendingKey = nil
        } else if ch == "{" || ch == "[" {
            depth += 1; pendingKey = nil
        } else if ch == "}" || ch == "]" {
            depth -= 1
            if depth == 0 { break }
        } else if ch == "," {
            pendingKey = nil
        }
        i += 1
    }
    return keys
}
