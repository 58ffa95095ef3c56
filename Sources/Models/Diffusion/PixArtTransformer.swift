import Foundation
import ModelIO
import Tensors

/// diffusers' `PixArtTransformer2DModel` (PixArt-α at 256/512 pixels): patch embedding + 2-D sin-cos
/// positions, adaLN-single (one timestep MLP for all blocks, a learned per-block `scale_shift_table`
/// added to it), self-attention, cross-attention to the projected caption embeddings (masked), MLP,
/// the final `scale_shift_table` layer, unpatchify.
public final class PixArtTransformer: @unchecked Sendable {
    public let config: PixArtConfig
    public let store: WeightStore
    let patchEmbed: Conv2DWeight
    let timestepLinear1, timestepLinear2, adaLNLinear: LinearWeight
    let captionLinear1, captionLinear2: LinearWeight
    let blocks: [PixArtBlock]
    let finalTable: Tensor
    let finalProjection: LinearWeight
    let positions: Tensor
    let attention: Attention
    let ones: Tensor

    /// Loads `folder` (a pipeline's `transformer/`: config.json + safetensors).
    public convenience init(folder: String) throws {
        let file = try DiffusersConfigFile(path: URL(fileURLWithPath: folder).appendingPathComponent("config.json").path)
        try self.init(config: try PixArtConfig(file: file), store: try WeightStore(folder: folder))
    }

    public init(config c: PixArtConfig, store: WeightStore) throws {
        config = c
        self.store = store
        let d = c.width
        patchEmbed = try Conv2DWeight(store: store, prefix: "pos_embed.proj", out: d, in: c.inChannels, kernel: c.patchSize, stride: c.patchSize)
        timestepLinear1 = try LinearWeight(store: store, prefix: "adaln_single.emb.timestep_embedder.linear_1", out: d, in: 256, bias: true)
        timestepLinear2 = try LinearWeight(store: store, prefix: "adaln_single.emb.timestep_embedder.linear_2", out: d, in: d, bias: true)
        adaLNLinear = try LinearWeight(store: store, prefix: "adaln_single.linear", out: 6 * d, in: d, bias: true)
        captionLinear1 = try LinearWeight(store: store, prefix: "caption_projection.linear_1", out: d, in: c.captionChannels, bias: true)
        captionLinear2 = try LinearWeight(store: store, prefix: "caption_projection.linear_2", out: d, in: d, bias: true)
        blocks = try (0..<c.layers).map { try PixArtBlock(store: store, index: $0, config: c) }
        if store.contains("transformer_blocks.\(c.layers).scale_shift_table") {
            throw ModelError("\(store.location): the checkpoint has more than num_layers = \(c.layers) blocks")
        }
        finalTable = try store.tensor("scale_shift_table", shape: [2, d], alwaysCache: true)
        finalProjection = try LinearWeight(store: store, prefix: "proj_out", out: c.patchSize * c.patchSize * c.outChannels, in: d, bias: true)
        positions = DiffusionEmbeddings.sinCos2D(dim: d, grid: c.patchesPerSide, baseSize: c.patchesPerSide,
                                                 interpolationScale: c.interpolationScale)
        attention = try Attention(heads: c.heads, headDim: c.headDim, causal: false)
        ones = Tensor(shape: [d], repeating: 1)
    }

    /// One forward pass: per sample a latent `[inChannels, sampleSize, sampleSize]`, a timestep, the
    /// caption embeddings `[L, captionChannels]` and their attention mask (1 = attend; nil = all ones).
    /// Returns each sample's `[outChannels, sampleSize, sampleSize]`.
    /// With `cache`, each block's attention, cross-attention and MLP follow its schedule for this call
    /// (ToCa's partial steps recompute the fresh rows of cross-attention and MLP only);
    /// with `merging` (ToMe-SD), each block merges tokens around the sub-layers its settings name;
    /// with `stepCache` (TeaCache, Δ-DiT), whole blocks are skipped by its policy.
    public func callAsFunction(_ latents: [Tensor], timesteps: [Float], captions: [Tensor], masks: [[Float]?],
                               cache: DiTFeatureCache? = nil, merging: DiTTokenMerging? = nil, stepCache: DiTStepCache? = nil) throws -> [Tensor] {
        let c = config, b = latents.count
        guard b > 0, timesteps.count == b, captions.count == b, masks.count == b else {
            throw ModelError("PixArt: \(b) latents, \(timesteps.count) timesteps, \(captions.count) captions and \(masks.count) masks (one each per sample)")
        }
        for x in latents where x.shape != [c.inChannels, c.sampleSize, c.sampleSize] {
            throw ModelError("PixArt: latent of shape \(x.shape), the model takes [\(c.inChannels), \(c.sampleSize), \(c.sampleSize)]")
        }
        var keyBiases: [[Float]] = []
        for (caption, mask) in zip(captions, masks) {
            guard caption.rank == 2, caption.shape[1] == c.captionChannels, caption.shape[0] > 0 else {
                throw ModelError("PixArt: caption embeddings of shape \(caption.shape), expected [tokens, \(c.captionChannels)]")
            }
            let m = mask ?? Array(repeating: 1, count: caption.shape[0])
            guard m.count == caption.shape[0] else {
                throw ModelError("PixArt: attention mask of \(m.count) values for \(caption.shape[0]) caption tokens")
            }
            // diffusers: (1 − mask) · −10000, added to the scaled logits.
            keyBiases.append(m.map { (1 - $0) * -10000 })
        }
        if cache != nil, merging != nil {
            throw ModelError("tomesd cannot run together with feature caching (\(cache?.method ?? "")): a cached module's rows would not match the merged tokens")
        }
        let projected = try captions.map { try captionLinear2(try captionLinear1($0, store: store).geluTanh(), store: store) }
        var h = try Tensor.concatenateRows(try latents.map { try LatentPatches.embed($0, conv: patchEmbed, positions: positions, store: store) })
        let features = DiffusionEmbeddings.timestep(timesteps, dim: 256, flipSinToCos: true, downscaleFreqShift: 0)
        let embedded = try timestepLinear2(try timestepLinear1(features, store: store).silu(), store: store)  // [B, D]
        let t6 = try adaLNLinear(embedded.silu(), store: store)  // [B, 6D]
        try cache?.beginCall(layers: blocks.count, samples: b)
        merging?.beginCall()
        let runBlock = { [self] (layer: Int, h: Tensor) throws -> Tensor in
            // DuCa's aggressive steps skip whole blocks.
            if cache?.skipsBlock(layer: layer) ?? false { return h }
            return try forward(blocks[layer], layer: layer, h, t6: t6, captions: projected, keyBiases: keyBiases, samples: b, cache: cache,
                               merging: merging)
        }
        if let stepCache {
            h = try stepCache.run(h, indicator: { try modulatedInput(h, t6: t6, samples: b) }, block: runBlock)
        } else {
            for layer in blocks.indices { h = try runBlock(layer, h) }
        }
        // DuCa: the last block's output is stored every call and replaces h on aggressive calls; the
        // final layer below still uses the current conditioning.
        if let cache { h = try cache.finishBlocks(h, samples: b) }
        let shift = try Self.rowsPlusVector(embedded, finalTable.rows(0..<1))
        let scale = try Self.rowsPlusVector(embedded, finalTable.rows(1..<2))
        let normed = try h.layerNorm(weight: ones, bias: nil, eps: 1e-6).modulated(scale: scale, shift: shift, samples: b)
        let patches = try finalProjection(normed, store: store)
        let outputs = (0..<b).map { LatentPatches.unpatchify(patches, sample: $0, grid: c.patchesPerSide, patch: c.patchSize, channels: c.outChannels) }
        try stepCache?.endCall(outputs: outputs)
        return outputs
    }

    /// TeaCache's indicator: block 0's `norm1` output modulated by adaLN-single's shift/scale plus
    /// block 0's `scale_shift_table` (the tensor block 0's self-attention reads).
    private func modulatedInput(_ h: Tensor, t6: Tensor, samples b: Int) throws -> Tensor {
        let d = config.width
        let table = try store.tensor(blocks[0].prefix + "scale_shift_table", shape: [6, d], alwaysCache: true)
        let shift = try Self.modulation(t6, table: table, 0, width: d), scale = try Self.modulation(t6, table: table, 1, width: d)
        return try h.layerNorm(weight: ones, bias: nil, eps: config.normEps).modulated(scale: scale, shift: shift, samples: b)
    }

    /// `table[k] + t6[:, k·D..<(k+1)·D]` for each sample: adaLN-single's k-th modulation vector `[B, D]`.
    private static func modulation(_ t6: Tensor, table: Tensor, _ k: Int, width d: Int) throws -> Tensor {
        try rowsPlusVector(try t6.columns(k * d..<((k + 1) * d)), try table.rows(k..<(k + 1)))
    }

    /// `vector + rows[b]` for each row (the table first, as diffusers adds it).
    private static func rowsPlusVector(_ rows: Tensor, _ vector: Tensor) throws -> Tensor {
        var out = rows
        let d = rows.columns
        guard vector.count == d else { throw ModelError("PixArt: modulation table of \(vector.count) values for width \(d)") }
        out.withUnsafeMutableBufferPointer { o in
            vector.withUnsafeBufferPointer { v in
                for r in 0..<rows.rows { for j in 0..<d { o[r * d + j] = v[j] + o[r * d + j] } }
            }
        }
        return out
    }

    private func forward(_ block: PixArtBlock, layer: Int, _ h: Tensor, t6: Tensor, captions: [Tensor], keyBiases: [[Float]],
                         samples b: Int, cache: DiTFeatureCache?, merging: DiTTokenMerging?) throws -> Tensor {
        let c = config, d = c.width
        let table = try store.tensor(block.prefix + "scale_shift_table", shape: [6, d], alwaysCache: true)
        let m = try (0..<6).map { try Self.modulation(t6, table: table, $0, width: d) }
        // `rows(x, s)`: the module on some rows `x` of batch row `s` only (ToCa's partial steps).
        func run(_ module: Int, input: Tensor, rows: @escaping (Tensor, Int) throws -> Tensor, _ compute: () throws -> Tensor) throws -> Tensor {
            try cache.map { try $0.output(layer: layer, module: module, input: input, samples: b, compute: compute, computeRows: rows) } ?? compute()
        }
        var h = h
        let beforeAttention = h
        // ToMe-SD: the matching from the block's input; the identity when not merging.
        let tome = try merging?.block(input: beforeAttention, samples: b) ?? DiTBlockMerge(block: nil, tokenCount: c.tokenCount, samples: b)
        let attnOut = try run(0, input: beforeAttention, rows: { _, _ in throw ModelError("PixArt: self-attention is never computed token-wise") }) {
            let normed = try tome.merge(try beforeAttention.layerNorm(weight: ones, bias: nil, eps: c.normEps)
                .modulated(scale: m[1], shift: m[0], samples: b), .selfAttention)
            let q = try block.q1(normed, store: store), k = try block.k1(normed, store: store), v = try block.v1(normed, store: store)
            let n = normed.rows / b
            let attended = try Tensor.concatenateRows(try (0..<b).map { s in
                let rows = (s * n)..<((s + 1) * n)
                return try attention(q: try q.rows(rows), k: try k.rows(rows), v: try v.rows(rows)).output
            })
            return try tome.unmerge(try block.out1(attended, store: store), .selfAttention)
        }
        h.addGated(attnOut, gate: cache?.gate(layer: layer, module: 0, current: m[2]) ?? m[2], samples: b)

        // Cross-attention: no norm before it and no gate after it (PixArt-α).
        let beforeCross = h
        // ToCa's s2 score reads the head-mean cross-attention probabilities (full steps: all rows; partial: the fresh ones).
        let wantsCrossMap = cache?.wantsCrossAttentionMap(layer: layer) ?? false
        let cross = { [self] (q2: Tensor, s: Int) throws -> (output: Tensor, map: Tensor?) in
            let r = try attention(q: q2, k: try block.k2(captions[s], store: store), v: try block.v2(captions[s], store: store),
                                  keyBias: keyBiases[s], record: wantsCrossMap ? .probabilities(rows: nil) : .none)
            guard wantsCrossMap, let probs = r.recorded?.values else { return (r.output, nil) }
            return (r.output, try Self.flattenedCrossMap(probs, sample: s, samples: b))
        }
        let crossRows = { [self] (rows: Tensor, s: Int) throws -> Tensor in
            let r = try cross(try block.q2(rows, store: store), s)
            if let map = r.map { cache?.provideFreshCrossAttentionRows(map, sample: s) }
            return try block.out2(r.output, store: store)
        }
        let crossOut = try run(1, input: beforeCross, rows: crossRows) {
            let q2 = try block.q2(try tome.merge(beforeCross, .crossAttention), store: store)
            let n = q2.rows / b
            var maps: [Tensor] = []
            let crossed = try Tensor.concatenateRows(try (0..<b).map { s in
                let r = try cross(try q2.rows((s * n)..<((s + 1) * n)), s)
                if let map = r.map { maps.append(map) }
                return r.output
            })
            if wantsCrossMap { cache?.provideAttentionMaps(maps) }
            return try tome.unmerge(try block.out2(crossed, store: store), .crossAttention)
        }
        h = try h + crossOut

        let beforeMLP = h
        let mlpRows = { [self] (rows: Tensor, s: Int) throws -> Tensor in
            let normed = try rows.layerNorm(weight: ones, bias: nil, eps: c.normEps)
                .modulated(scale: try m[4].rows(s..<(s + 1)), shift: try m[3].rows(s..<(s + 1)), samples: 1)
            let up = try block.mlpUp(normed, store: store)
            return try block.mlpDown(c.activation == "gelu" ? up.gelu() : up.geluTanh(), store: store)
        }
        let mlpOut = try run(2, input: beforeMLP, rows: mlpRows) {
            let normed = try tome.merge(try beforeMLP.layerNorm(weight: ones, bias: nil, eps: c.normEps)
                .modulated(scale: m[4], shift: m[3], samples: b), .mlp)
            let up = try block.mlpUp(normed, store: store)
            return try tome.unmerge(try block.mlpDown(c.activation == "gelu" ? up.gelu() : up.geluTanh(), store: store), .mlp)
        }
        h.addGated(mlpOut, gate: cache?.gate(layer: layer, module: 2, current: m[5]) ?? m[5], samples: b)
        return h
    }

    /// Batch row `sample`'s cross-attention probabilities `[heads, rows, L]` → their head mean in
    /// PixArt's batch-flattened layout `[rows, B·L]`: zeros for the other rows' text (ToCa's `cross_attn_map`).
    static func flattenedCrossMap(_ probs: Tensor, sample: Int, samples: Int) throws -> Tensor {
        let mean = try DiTTransformer.headMean(probs)
        let rows = mean.shape[0], l = mean.shape[1]
        var out = Tensor(zeros: [rows, samples * l])
        out.withUnsafeMutableBufferPointer { o in
            mean.withUnsafeBufferPointer { p in
                for i in 0..<rows { for k in 0..<l { o[i * samples * l + sample * l + k] = p[i * l + k] } }
            }
        }
        return out
    }
}

/// The weights of one PixArt-α block (`BasicTransformerBlock` with `norm_type="ada_norm_single"`).
struct PixArtBlock: Sendable {
    let prefix: String
    let q1, k1, v1, out1: LinearWeight
    let q2, k2, v2, out2: LinearWeight
    let mlpUp, mlpDown: LinearWeight

    init(store: WeightStore, index: Int, config c: PixArtConfig) throws {
        let pre = "transformer_blocks.\(index)."
        prefix = pre
        let d = c.width
        let tableInfo = try store.info(pre + "scale_shift_table")
        guard tableInfo.shape == [6, d] else {
            throw ModelError("\(store.location): '\(pre)scale_shift_table' has shape \(tableInfo.shape), the config implies [6, \(d)]")
        }
        let linear = { (name: String, inFeatures: Int, out: Int, bias: Bool) throws -> LinearWeight in
            try LinearWeight(store: store, prefix: pre + name, out: out, in: inFeatures, bias: bias)
        }
        q1 = try linear("attn1.to_q", d, d, c.attentionBias)
        k1 = try linear("attn1.to_k", d, d, c.attentionBias)
        v1 = try linear("attn1.to_v", d, d, c.attentionBias)
        out1 = try linear("attn1.to_out.0", d, d, true)
        q2 = try linear("attn2.to_q", d, d, c.attentionBias)
        k2 = try linear("attn2.to_k", c.crossAttentionDim, d, c.attentionBias)
        v2 = try linear("attn2.to_v", c.crossAttentionDim, d, c.attentionBias)
        out2 = try linear("attn2.to_out.0", d, d, true)
        mlpUp = try linear("ff.net.0.proj", d, 4 * d, true)
        mlpDown = try linear("ff.net.2", 4 * d, d, true)
    }
}
