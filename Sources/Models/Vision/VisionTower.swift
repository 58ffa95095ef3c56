import Foundation
import ModelIO
import Tensors

/// A CLIP or SigLIP ViT encoder (pre-LN transformer) over one image of `[3, H, W]` pixels.
///
/// CLIP: conv patches (no bias) + [CLS] + learned positions, `pre_layrnorm`, encoder;
/// `last_hidden_state` is the encoder output (the post-layernorm applies to the pooled [CLS] only).
/// SigLIP: conv patches (with bias) + positions, no [CLS], encoder, `post_layernorm` on every row.
/// The attention-pooling head of SigLIP is not needed by LLaVA-style models and is not run.
public final class VisionTower: @unchecked Sendable {
    public let config: VisionTowerConfig
    public let store: WeightStore
    let act: Activation
    let attention: Attention
    let patchWeight: String
    let patchBias: String?
    let classEmbedding: String?
    let positionEmbedding: String
    let preNorm: (String, String)?
    let postNorm: (String, String)?
    struct Layer {
        let norm1: (String, String), norm2: (String, String)
        let q, k, v, o, fc1, fc2: LinearWeight
    }
    let layers: [Layer]

    /// Loads a `CLIPVisionModel` / `SiglipVisionModel` folder.
    public static func load(folder: String, keepConverted: Bool = false) throws -> VisionTower {
        let config = try VisionTowerConfig.load(folder: folder)
        return try VisionTower(config: config, store: try WeightStore(folder: folder, keepConverted: keepConverted))
    }

    /// Key prefixes a vision tower may live under, standalone or inside LLaVA (both layouts).
    static let prefixes = ["vision_model.", "", "model.vision_tower.vision_model.", "model.vision_tower.",
                           "vision_tower.vision_model.", "vision_tower."]

    /// Binds the tower to `store`, finding its key prefix and checking every shape.
    public init(config: VisionTowerConfig, store: WeightStore, prefixes: [String]? = nil) throws {
        self.config = config
        self.store = store
        guard let act = Activation(name: config.hiddenAct) else { throw ModelError("vision hidden_act '\(config.hiddenAct)' is not supported") }
        self.act = act
        let anchor = "embeddings.patch_embedding.weight"
        guard let p = store.prefix(anchor: anchor, among: prefixes ?? Self.prefixes) else {
            throw ModelError("\(store.location): no vision tower weights (looked for '\(anchor)' under \((prefixes ?? Self.prefixes).map { "'\($0)'" }.joined(separator: ", "))")
        }
        let d = config.hiddenSize, ps = config.patchSize, c = config.channels
        func need(_ name: String, _ shape: [Int]) throws -> String {
            let info = try store.info(p + name)
            guard info.shape == shape else {
                throw ModelError("\(store.location): '\(p + name)' has shape \(info.shape), the vision config implies \(shape)")
            }
            return p + name
        }
        patchWeight = try need("embeddings.patch_embedding.weight", [d, c, ps, ps])
        patchBias = config.kind == .siglip ? try need("embeddings.patch_embedding.bias", [d]) : nil
        classEmbedding = config.hasClassToken ? try need("embeddings.class_embedding", [d]) : nil
        positionEmbedding = try need("embeddings.position_embedding.weight", [config.tokenCount, d])
        preNorm = config.kind == .clip ? (try need("pre_layrnorm.weight", [d]), try need("pre_layrnorm.bias", [d])) : nil
        postNorm = config.kind == .siglip && store.contains(p + "post_layernorm.weight")
            ? (try need("post_layernorm.weight", [d]), try need("post_layernorm.bias", [d])) : nil
        var layers: [Layer] = []
        for i in 0..<config.layers {
            let l = "\(p)encoder.layers.\(i)."
            layers.append(Layer(
                norm1: (try need("encoder.layers.\(i).layer_norm1.weight", [d]), try need("encoder.layers.\(i).layer_norm1.bias", [d])),
                norm2: (try need("encoder.layers.\(i).layer_norm2.weight", [d]), try need("encoder.layers.\(i).layer_norm2.bias", [d])),
                q: try LinearWeight(store: store, prefix: l + "self_attn.q_proj", out: d, in: d, bias: true),
                k: try LinearWeight(store: store, prefix: l + "self_attn.k_proj", out: d, in: d, bias: true),
                v: try LinearWeight(store: store, prefix: l + "self_attn.v_proj", out: d, in: d, bias: true),
                o: try LinearWeight(store: store, prefix: l + "self_attn.out_proj", out: d, in: d, bias: true),
                fc1: try LinearWeight(store: store, prefix: l + "mlp.fc1", out: config.intermediateSize, in: d, bias: true),
                fc2: try LinearWeight(store: store, prefix: l + "mlp.fc2", out: d, in: config.intermediateSize, bias: true)))
        }
        self.layers = layers
        let attention = try Attention(heads: config.heads, headDim: config.headDim, causal: false)
        self.attention = attention
    }

    private func norm(_ x: Tensor, _ w: (String, String)) throws -> Tensor {
        try x.layerNorm(weight: try store.tensor(w.0, alwaysCache: true), bias: try store.tensor(w.1, alwaysCache: true),
                        eps: config.layerNormEps)
    }

    /// Patch embeddings (+ [CLS]) + positions, then the CLIP pre-layernorm: `hidden_states[0]`.
    public func embed(_ pixels: Tensor) throws -> Tensor {
        let c = config.channels, s = config.imageSize, ps = config.patchSize, side = config.patchesPerSide
        guard pixels.shape == [c, s, s] else {
            throw ModelError("vision tower: pixel values have shape \(pixels.shape), expected [\(c), \(s), \(s)] (preprocess to the tower's image size)")
        }
        // im2col: one row per patch, laid out (channel, dy, dx) like the conv weight.
        let k = c * ps * ps
        var cols = Tensor(zeros: [side * side, k])
        cols.withUnsafeMutableBufferPointer { dst in
            pixels.withUnsafeBufferPointer { src in
                for py in 0..<side {
                    for px in 0..<side {
                        var o = (py * side + px) * k
                        for ch in 0..<c {
                            for dy in 0..<ps {
                                let rowStart = (ch * s + py * ps + dy) * s + px * ps
                                for dx in 0..<ps { dst[o] = src[rowStart + dx]; o += 1 }
                            }
                        }
                    }
                }
            }
        }
        let d = config.hiddenSize
        var patches = try cols.linear(weight: try store.tensor(patchWeight).reshaped([d, k]),
                                      bias: try patchBias.map { try store.tensor($0) })
        if let classEmbedding {
            let cls = try store.tensor(classEmbedding).reshaped([1, d])
            patches = try Tensor.concatenateRows([cls, patches])
        }
        try patches.addInPlace(try store.tensor(positionEmbedding))
        if let preNorm { patches = try norm(patches, preNorm) }
        return patches
    }

    /// A merge step's rows, checked: rank 2, the tower's width, at least one row.
    static func checkedReplacement(_ replaced: Tensor, for h: Tensor, layer: Int) throws -> Tensor {
        guard replaced.rank == 2, replaced.columns == h.columns, replaced.rows > 0 else {
            throw ModelError("vision tower layer \(layer): a merge step returned \(replaced.shape) rows, expected [rows > 0, \(h.columns)]")
        }
        return replaced
    }

    /// Runs the tower.
    /// - Parameters:
    ///   - hiddenStates: HF `hidden_states` indices to return (negative from the end); `nil` = all.
    ///     The pass stops after the last layer anything needs.
    ///   - capture: attention rows / q,k,v to record per encoder layer.
    ///   - afterAttention: called in every layer after the attention residual, before the MLP, with
    ///     the layer index, the hidden rows and that layer's queries and keys (`[rows, heads·headDim]`,
    ///     unscaled); a non-nil result replaces the hidden rows (a token-merging method inside the
    ///     tower, FiCoCo-V): the MLP and every later layer run on them.
    ///   - afterLayer: called at the end of every layer (after the MLP residual) with the same
    ///     arguments; a non-nil result replaces the layer's output (MustDrop's window merge after
    ///     layer 0), which is also what `hidden_states[layer + 1]` holds.
    public func forward(_ pixels: Tensor, hiddenStates wanted: [Int]? = nil, capture: VisionCaptureRequest = .none,
                        afterAttention: ((_ layer: Int, _ hidden: Tensor, _ queries: Tensor, _ keys: Tensor) throws -> Tensor?)? = nil,
                        afterLayer: ((_ layer: Int, _ hidden: Tensor, _ queries: Tensor, _ keys: Tensor) throws -> Tensor?)? = nil)
        throws -> VisionTowerOutput {
        let n = config.layers
        let indices = try (wanted ?? Array(0...n)).map { i -> Int in
            let v = i < 0 ? n + 1 + i : i
            guard v >= 0, v <= n else { throw ModelError("vision tower: hidden_states index \(i) is out of range (0...\(n))") }
            return v
        }
        let request = try capture.normalized(layers: n)
        let lastLayer = max(indices.max() ?? 0, (request.attention.keys.max() ?? -1) + 1, (request.qkvLayers.max() ?? -1) + 1)
        let wantedSet = Set(indices)
        var h = try OpProfile.measure("patch embedding") { try embed(pixels) }
        var out = VisionTowerOutput(hiddenStates: [:], lastHiddenState: nil, captures: [:])
        if wantedSet.contains(0) { out.hiddenStates[0] = h }
        for i in 0..<lastLayer {
            let layer = layers[i]
            out.rowsPerLayer.append(h.rows)
            let x = try OpProfile.measure("norm") { try norm(h, layer.norm1) }
            let (q, k, v) = try OpProfile.measure("q/k/v projections") {
                (try layer.q(x, store: store), try layer.k(x, store: store), try layer.v(x, store: store))
            }
            let record = request.attention[i] ?? .none
            let (a, recorded) = try OpProfile.measure("attention") { try attention(q: q, k: k, v: v, record: record) }
            if recorded != nil || request.qkvLayers.contains(i) {
                let keep = request.qkvLayers.contains(i)
                out.captures[i] = VisionLayerCapture(attention: recorded, queries: keep ? q : nil, keys: keep ? k : nil, values: keep ? v : nil)
            }
            let o = try OpProfile.measure("o projection") { try layer.o(a, store: store) }
            try OpProfile.measure("residual add") { try h.addInPlace(o) }
            if let afterAttention, let replaced = try afterAttention(i, h, q, k) {
                h = try Self.checkedReplacement(replaced, for: h, layer: i)
            }
            let y = try OpProfile.measure("norm") { try norm(h, layer.norm2) }
            let up = try OpProfile.measure("fc1 projection") { try layer.fc1(y, store: store) }
            let activated = OpProfile.measure("activation") { up.activated(act) }
            let m = try OpProfile.measure("fc2 projection") { try layer.fc2(activated, store: store) }
            try OpProfile.measure("residual add") { try h.addInPlace(m) }
            if let afterLayer, let replaced = try afterLayer(i, h, q, k) {
                h = try Self.checkedReplacement(replaced, for: h, layer: i)
            }
            if wantedSet.contains(i + 1) { out.hiddenStates[i + 1] = h }
        }
        if lastLayer == n {
            out.lastHiddenState = try postNorm.map { try norm(h, $0) } ?? h
        }
        return out
    }
}
