import Foundation
import ModelIO
import Tensors

/// diffusers' `DiTTransformer2DModel` (class-conditional DiT, facebook/DiT-XL-2-256 layout): patch
/// embedding + 2-D sin-cos positions, adaLN-Zero blocks, the final adaLN layer, unpatchify.
///
/// Weights keep diffusers' key names and stay memory-mapped in their stored dtype (`WeightStore`).
/// A batch of latents runs as one `[B·N, width]` row block through every linear layer; attention is
/// per sample.
public final class DiTTransformer: @unchecked Sendable {
    public let config: DiTConfig
    public let store: WeightStore
    let blocks: [DiTBlock]
    let patchEmbed: Conv2DWeight
    let finalModulation: LinearWeight
    let finalProjection: LinearWeight
    /// `[tokens, width]`, fixed.
    let positions: Tensor
    let attention: Attention
    let ones: Tensor

    /// Channels of the sinusoidal timestep features (`Timesteps(num_channels=256)` in diffusers).
    static let timestepChannels = 256

    /// Loads `folder` (a pipeline's `transformer/`: config.json + safetensors).
    public convenience init(folder: String) throws {
        let file = try DiffusersConfigFile(path: URL(fileURLWithPath: folder).appendingPathComponent("config.json").path)
        let config = try DiTConfig(file: file)
        try self.init(config: config, store: try WeightStore(folder: folder))
    }

    public init(config c: DiTConfig, store: WeightStore) throws {
        config = c
        self.store = store
        let d = c.width
        patchEmbed = try Conv2DWeight(store: store, prefix: "pos_embed.proj", out: d, in: c.inChannels,
                                      kernel: c.patchSize, stride: c.patchSize)
        blocks = try (0..<c.layers).map { try DiTBlock(store: store, index: $0, config: c) }
        if store.contains("transformer_blocks.\(c.layers).norm1.linear.weight") {
            throw ModelError("\(store.location): the checkpoint has more than num_layers = \(c.layers) blocks")
        }
        finalModulation = try LinearWeight(store: store, prefix: "proj_out_1", out: 2 * d, in: d, bias: true)
        finalProjection = try LinearWeight(store: store, prefix: "proj_out_2", out: c.patchSize * c.patchSize * c.outChannels, in: d, bias: true)
        positions = DiffusionEmbeddings.sinCos2D(dim: d, grid: c.patchesPerSide, baseSize: c.patchesPerSide)
        attention = try Attention(heads: c.heads, headDim: c.headDim, causal: false)
        ones = Tensor(shape: [d], repeating: 1)
    }

    /// One forward pass: `latents` (each `[inChannels, sampleSize, sampleSize]`), one timestep and one
    /// class label per sample (label `config.nullClass` = unconditional); returns each sample's
    /// `[outChannels, sampleSize, sampleSize]` prediction (noise, then the learned variance channels).
    /// With `cache`, each block's attention and MLP follow its schedule for this call (compute and
    /// store, reuse, partial, forecast, or skip the block); without, everything computes (the same
    /// arithmetic as an all-compute schedule).
    /// With `merging` (ToMe-SD), each block merges tokens around the sub-layers its settings name.
    /// With `stepCache` (TeaCache, Δ-DiT), whole blocks are skipped by its policy.
    public func callAsFunction(_ latents: [Tensor], timesteps: [Float], classes: [Int], cache: DiTFeatureCache? = nil,
                               merging: DiTTokenMerging? = nil, stepCache: DiTStepCache? = nil) throws -> [Tensor] {
        let c = config, b = latents.count
        guard b > 0, timesteps.count == b, classes.count == b else {
            throw ModelError("DiT: \(b) latents, \(timesteps.count) timesteps and \(classes.count) class labels (one each per sample)")
        }
        for x in latents where x.shape != [c.inChannels, c.sampleSize, c.sampleSize] {
            throw ModelError("DiT: latent of shape \(x.shape), the model takes [\(c.inChannels), \(c.sampleSize), \(c.sampleSize)]")
        }
        if let bad = classes.first(where: { $0 < 0 || $0 > c.nullClass }) {
            throw ModelError("DiT: class label \(bad) is out of range (0..<\(c.classCount), or \(c.nullClass) for the null class)")
        }
        if cache != nil, merging != nil {
            throw ModelError("tomesd cannot run together with feature caching (\(cache?.method ?? "")): a cached module's rows would not match the merged tokens")
        }
        var h = try Tensor.concatenateRows(try latents.map { try LatentPatches.embed($0, conv: patchEmbed, positions: positions, store: store) })
        let features = DiffusionEmbeddings.timestep(timesteps, dim: Self.timestepChannels, flipSinToCos: true, downscaleFreqShift: 1)
        // Block 0's embedder also conditions the final layer, so it runs even when a cache skips block 0.
        let firstConditioning = try blocks[0].conditioning(timestepFeatures: features, classes: classes, store: store)
        try cache?.beginCall(layers: blocks.count, samples: b)
        merging?.beginCall()
        let runBlock = { [self] (layer: Int, h: Tensor) throws -> Tensor in
            // DuCa's aggressive steps skip whole blocks.
            if cache?.skipsBlock(layer: layer) ?? false { return h }
            let cond = layer == 0 ? firstConditioning : try blocks[layer].conditioning(timestepFeatures: features, classes: classes, store: store)
            return try forward(blocks[layer], layer: layer, h, conditioning: cond, samples: b, cache: cache, merging: merging)
        }
        if let stepCache {
            h = try stepCache.run(h, indicator: { try modulatedInput(h, conditioning: firstConditioning, samples: b) }, block: runBlock)
        } else {
            for layer in blocks.indices { h = try runBlock(layer, h) }
        }
        if let cache { h = try cache.finishBlocks(h, samples: b) }
        // diffusers conditions the final layer on block 0's embedder (`transformer_blocks[0].norm1.emb`).
        let shiftScale = try finalModulation(firstConditioning.silu(), store: store)
        let shift = try shiftScale.columns(0..<c.width), scale = try shiftScale.columns(c.width..<(2 * c.width))
        let normed = try h.layerNorm(weight: ones, bias: nil, eps: 1e-6).modulated(scale: scale, shift: shift, samples: b)
        let patches = try finalProjection(normed, store: store)
        let outputs = (0..<b).map { LatentPatches.unpatchify(patches, sample: $0, grid: c.patchesPerSide, patch: c.patchSize, channels: c.outChannels) }
        try stepCache?.endCall(outputs: outputs)
        return outputs
    }

    /// TeaCache's indicator: block 0's `norm1` output modulated by its shift/scale of this call
    /// (`LN(h)·(1 + scale_msa) + shift_msa`, the tensor block 0's attention reads).
    private func modulatedInput(_ h: Tensor, conditioning: Tensor, samples b: Int) throws -> Tensor {
        let m = try AdaLNModulation(try blocks[0].modulation(conditioning.silu(), store: store), width: config.width)
        return try h.layerNorm(weight: ones, bias: nil, eps: 1e-6).modulated(scale: m.scaleMSA, shift: m.shiftMSA, samples: b)
    }

    /// One adaLN-Zero block on `h` `[B·N, width]`.
    /// The modules' outputs are pre-gate, so a cache can store them and gate them with a later step's gates.
    private func forward(_ block: DiTBlock, layer: Int, _ h: Tensor, conditioning: Tensor, samples b: Int,
                         cache: DiTFeatureCache?, merging: DiTTokenMerging?) throws -> Tensor {
        let c = config
        let m = try AdaLNModulation(try block.modulation(conditioning.silu(), store: store), width: c.width)
        var h = h
        let current = h
        // ToMe-SD: the matching from the block's input; the identity when not merging.
        let tome = try merging?.block(input: current, samples: b) ?? DiTBlockMerge(block: nil, tokenCount: c.tokenCount, samples: b)
        let computeAttention = { [self] () throws -> Tensor in
            let normed = try tome.merge(try current.layerNorm(weight: ones, bias: nil, eps: 1e-6)
                .modulated(scale: m.scaleMSA, shift: m.shiftMSA, samples: b), .selfAttention)
            let q = try block.q(normed, store: store), k = try block.k(normed, store: store), v = try block.v(normed, store: store)
            let n = normed.rows / b
            // ToCa's full steps keep the head-mean attention probabilities (its s1 score reads them).
            let wantsMap = cache?.wantsAttentionMap(layer: layer) ?? false
            var maps: [Tensor] = []
            let attended = try Tensor.concatenateRows(try (0..<b).map { s in
                let rows = (s * n)..<((s + 1) * n)
                let r = try attention(q: try q.rows(rows), k: try k.rows(rows), v: try v.rows(rows),
                                      record: wantsMap ? .probabilities(rows: nil) : .none)
                if wantsMap, let probs = r.recorded?.values { maps.append(try Self.headMean(probs)) }
                return r.output
            })
            if wantsMap { cache?.provideAttentionMaps(maps) }
            return try tome.unmerge(try block.out(attended, store: store), .selfAttention)
        }
        let attnOut = try cache.map {
            try $0.output(layer: layer, module: 0, input: current, samples: b, compute: computeAttention,
                          computeRows: { _, _ in throw ModelError("DiT: self-attention is never computed token-wise") })
        } ?? computeAttention()
        h.addGated(attnOut, gate: cache?.gate(layer: layer, module: 0, current: m.gateMSA) ?? m.gateMSA, samples: b)

        let afterAttention = h
        let computeMLP = { [self] () throws -> Tensor in
            let norm3W = c.normElementwiseAffine ? try store.vector(block.prefix + "norm3.weight", count: c.width) : ones
            let norm3B = c.normElementwiseAffine ? try store.vector(block.prefix + "norm3.bias", count: c.width) : nil
            let normed = try tome.merge(try afterAttention.layerNorm(weight: norm3W, bias: norm3B, eps: c.normEps)
                .modulated(scale: m.scaleMLP, shift: m.shiftMLP, samples: b), .mlp)
            let up = try block.mlpUp(normed, store: store)
            return try tome.unmerge(try block.mlpDown(c.activation == "gelu" ? up.gelu() : up.geluTanh(), store: store), .mlp)
        }
        // ToCa's partial steps: the MLP on some rows of one batch row, with that row's modulation.
        let computeMLPRows = { [self] (rows: Tensor, sample: Int) throws -> Tensor in
            let norm3W = c.normElementwiseAffine ? try store.vector(block.prefix + "norm3.weight", count: c.width) : ones
            let norm3B = c.normElementwiseAffine ? try store.vector(block.prefix + "norm3.bias", count: c.width) : nil
            let normed = try rows.layerNorm(weight: norm3W, bias: norm3B, eps: c.normEps)
                .modulated(scale: try m.scaleMLP.rows(sample..<(sample + 1)), shift: try m.shiftMLP.rows(sample..<(sample + 1)), samples: 1)
            let up = try block.mlpUp(normed, store: store)
            return try block.mlpDown(c.activation == "gelu" ? up.gelu() : up.geluTanh(), store: store)
        }
        let mlpOut = try cache.map {
            try $0.output(layer: layer, module: 1, input: afterAttention, samples: b, compute: computeMLP, computeRows: computeMLPRows)
        } ?? computeMLP()
        h.addGated(mlpOut, gate: cache?.gate(layer: layer, module: 1, current: m.gateMLP) ?? m.gateMLP, samples: b)
        return h
    }

    /// `[heads, N, N]` probabilities → their mean over heads `[N, N]` (ToCa's `attn_map`).
    static func headMean(_ probs: Tensor) throws -> Tensor {
        let heads = probs.shape[0], plane = probs.count / heads
        var out = Tensor(zeros: Array(probs.shape.dropFirst()))
        out.withUnsafeMutableBufferPointer { o in
            probs.withUnsafeBufferPointer { p in
                for h in 0..<heads { for i in 0..<plane { o[i] += p[h * plane + i] } }
                for i in 0..<plane { o[i] /= Float(heads) }
            }
        }
        return out
    }
}
