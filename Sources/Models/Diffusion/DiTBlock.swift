import Foundation
import Tensors

/// One `BasicTransformerBlock` with `norm_type="ada_norm_zero"` (diffusers' DiT block): adaLN-Zero
/// modulation from its own timestep + class embedder, self-attention, MLP, each gated.
struct DiTBlock: Sendable {
    let prefix: String
    let timestepLinear1: LinearWeight
    let timestepLinear2: LinearWeight
    let classTable: String
    let modulation: LinearWeight
    let q, k, v, out: LinearWeight
    let mlpUp: LinearWeight
    let mlpDown: LinearWeight
    let norm3Affine: Bool

    init(store: WeightStore, index: Int, config c: DiTConfig) throws {
        prefix = "transformer_blocks.\(index)."
        let d = c.width
        let emb = prefix + "norm1.emb."
        timestepLinear1 = try LinearWeight(store: store, prefix: emb + "timestep_embedder.linear_1", out: d, in: DiTTransformer.timestepChannels, bias: true)
        timestepLinear2 = try LinearWeight(store: store, prefix: emb + "timestep_embedder.linear_2", out: d, in: d, bias: true)
        classTable = emb + "class_embedder.embedding_table.weight"
        let table = try store.info(classTable)
        guard table.shape == [c.classCount + 1, d] else {
            throw ModelError("\(store.location): '\(classTable)' has shape \(table.shape), the config implies [\(c.classCount + 1), \(d)] (num_embeds_ada_norm + the null class)")
        }
        modulation = try LinearWeight(store: store, prefix: prefix + "norm1.linear", out: 6 * d, in: d, bias: true)
        q = try LinearWeight(store: store, prefix: prefix + "attn1.to_q", out: d, in: d, bias: c.attentionBias)
        k = try LinearWeight(store: store, prefix: prefix + "attn1.to_k", out: d, in: d, bias: c.attentionBias)
        v = try LinearWeight(store: store, prefix: prefix + "attn1.to_v", out: d, in: d, bias: c.attentionBias)
        out = try LinearWeight(store: store, prefix: prefix + "attn1.to_out.0", out: d, in: d, bias: true)
        mlpUp = try LinearWeight(store: store, prefix: prefix + "ff.net.0.proj", out: 4 * d, in: d, bias: true)
        mlpDown = try LinearWeight(store: store, prefix: prefix + "ff.net.2", out: d, in: 4 * d, bias: true)
        norm3Affine = c.normElementwiseAffine
        if norm3Affine {
            _ = try store.vector(prefix + "norm3.weight", count: d)
            _ = try store.vector(prefix + "norm3.bias", count: d)
        }
    }

    /// `CombinedTimestepLabelEmbeddings`: `[B, width]` from the sinusoidal timestep features `[B, 256]`
    /// and the class labels (the null class included).
    func conditioning(timestepFeatures: Tensor, classes: [Int], store: WeightStore) throws -> Tensor {
        let t = try timestepLinear2(try timestepLinear1(timestepFeatures, store: store).silu(), store: store)
        return try t + store.rows(classTable, classes)
    }
}

/// The six `[B, width]` modulation vectors of an adaLN-Zero block, in diffusers' chunk order.
struct AdaLNModulation {
    let shiftMSA, scaleMSA, gateMSA, shiftMLP, scaleMLP, gateMLP: Tensor

    init(_ m: Tensor, width d: Int) throws {
        let parts = try (0..<6).map { try m.columns($0 * d..<($0 + 1) * d) }
        (shiftMSA, scaleMSA, gateMSA, shiftMLP, scaleMLP, gateMLP) = (parts[0], parts[1], parts[2], parts[3], parts[4], parts[5])
    }
}

extension Tensor {
    /// `x · (1 + scale_b) + shift_b` for each sample `b` of `x` `[B·N, D]` (`scale`, `shift`: `[B, D]`).
    func modulated(scale: Tensor, shift: Tensor, samples: Int) -> Tensor {
        var out = self
        let d = columns, n = rows / samples
        out.withUnsafeMutableBufferPointer { o in
            scale.withUnsafeBufferPointer { s in
                shift.withUnsafeBufferPointer { h in
                    for b in 0..<samples {
                        for r in 0..<n {
                            let row = (b * n + r) * d
                            for j in 0..<d { o[row + j] = o[row + j] * (1 + s[b * d + j]) + h[b * d + j] }
                        }
                    }
                }
            }
        }
        return out
    }

    /// `self += gate_b · y` for each sample `b` (`self`, `y`: `[B·N, D]`; `gate`: `[B, D]`): a gated residual.
    mutating func addGated(_ y: Tensor, gate: Tensor, samples: Int) {
        let d = columns, n = rows / samples
        withUnsafeMutableBufferPointer { o in
            y.withUnsafeBufferPointer { yv in
                gate.withUnsafeBufferPointer { g in
                    for b in 0..<samples {
                        for r in 0..<n {
                            let row = (b * n + r) * d
                            for j in 0..<d { o[row + j] += g[b * d + j] * yv[row + j] }
                        }
                    }
                }
            }
        }
    }
}
