import Foundation
import ModelIO
import Tensors

/// The decoder half of diffusers' `AutoencoderKL`: latents `[latentChannels, h, w]` to an image
/// `[outChannels, h·upscale, w·upscale]` in about [-1, 1].
///
/// `post_quant_conv` → `conv_in` → mid block (ResNet, attention, ResNet) → up blocks (from the
/// widest level: `layers_per_block + 1` ResNets, then nearest ×2 + conv except at the last level) →
/// GroupNorm → SiLU → `conv_out`. Convolutions are im2col + sgemm (`Tensors.Convolution`).
public final class VAEDecoder: @unchecked Sendable {
    public let config: VAEConfig
    public let store: WeightStore
    let postQuantConv: Conv2DWeight?
    let convIn: Conv2DWeight
    let midResnets: [VAEResnet]
    let midAttention: VAEAttention?
    let upBlocks: [(resnets: [VAEResnet], upsample: Conv2DWeight?)]
    let normOut: String
    let convOut: Conv2DWeight

    /// Loads `folder` (a pipeline's `vae/`: config.json + safetensors; encoder weights are not read).
    public convenience init(folder: String) throws {
        let file = try DiffusersConfigFile(path: URL(fileURLWithPath: folder).appendingPathComponent("config.json").path)
        try self.init(config: try VAEConfig(file: file), store: try WeightStore(folder: folder))
    }

    public init(config c: VAEConfig, store: WeightStore) throws {
        config = c
        self.store = store
        let widest = c.blockOutChannels.last!
        postQuantConv = c.usePostQuantConv
            ? try Conv2DWeight(store: store, prefix: "post_quant_conv", out: c.latentChannels, in: c.latentChannels, kernel: 1) : nil
        convIn = try Conv2DWeight(store: store, prefix: "decoder.conv_in", out: widest, in: c.latentChannels, kernel: 3, padding: 1)
        midResnets = try (0..<2).map {
            try VAEResnet(store: store, prefix: "decoder.mid_block.resnets.\($0)", in: widest, out: widest, groups: c.normGroups)
        }
        midAttention = c.midBlockAttention
            ? try VAEAttention(store: store, prefix: "decoder.mid_block.attentions.0", channels: widest, groups: c.normGroups) : nil
        var blocks: [(resnets: [VAEResnet], upsample: Conv2DWeight?)] = []
        let reversed = Array(c.blockOutChannels.reversed())
        var previous = reversed[0]
        for (i, channels) in reversed.enumerated() {
            let prefix = "decoder.up_blocks.\(i)"
            let resnets = try (0..<(c.layersPerBlock + 1)).map { j in
                try VAEResnet(store: store, prefix: "\(prefix).resnets.\(j)", in: j == 0 ? previous : channels, out: channels, groups: c.normGroups)
            }
            let last = i == reversed.count - 1
            let up = last ? nil : try Conv2DWeight(store: store, prefix: "\(prefix).upsamplers.0.conv", out: channels, in: channels, kernel: 3, padding: 1)
            blocks.append((resnets, up))
            previous = channels
        }
        upBlocks = blocks
        normOut = "decoder.conv_norm_out"
        _ = try store.vector(normOut + ".weight", count: c.blockOutChannels[0])
        convOut = try Conv2DWeight(store: store, prefix: "decoder.conv_out", out: c.outChannels, in: c.blockOutChannels[0], kernel: 3, padding: 1)
    }

    /// `AutoencoderKL.decode(z).sample` for one latent `z` `[latentChannels, h, w]` (already divided by
    /// the scaling factor, as the pipelines do before calling it).
    public func callAsFunction(_ z: Tensor) throws -> Tensor {
        guard z.rank == 3, z.shape[0] == config.latentChannels else {
            throw ModelError("VAE decoder: latent of shape \(z.shape), expected [\(config.latentChannels), height, width]")
        }
        var x = try postQuantConv.map { try $0(z, store: store) } ?? z
        x = try convIn(x, store: store)
        x = try midResnets[0](x, store: store)
        if let midAttention { x = try midAttention(x, store: store) }
        x = try midResnets[1](x, store: store)
        for block in upBlocks {
            for r in block.resnets { x = try r(x, store: store) }
            if let up = block.upsample { x = try up(try Convolution.upsampleNearest2x(x), store: store) }
        }
        x = try Convolution.groupNorm(x, groups: config.normGroups, weight: try store.vector(normOut + ".weight", count: x.shape[0]),
                                      bias: try store.vector(normOut + ".bias", count: x.shape[0]), eps: 1e-6)
        return try convOut(x.silu(), store: store)
    }
}

/// `ResnetBlock2D` without a time embedding (the VAE's): GroupNorm, SiLU, conv, GroupNorm, SiLU, conv,
/// plus the input (through a 1×1 `conv_shortcut` when the width changes).
struct VAEResnet: Sendable {
    let prefix: String
    let groups: Int
    let inChannels, outChannels: Int
    let conv1, conv2: Conv2DWeight
    let shortcut: Conv2DWeight?

    init(store: WeightStore, prefix: String, in inChannels: Int, out: Int, groups: Int) throws {
        self.prefix = prefix
        self.groups = groups
        self.inChannels = inChannels
        outChannels = out
        _ = try store.vector(prefix + ".norm1.weight", count: inChannels)
        _ = try store.vector(prefix + ".norm2.weight", count: out)
        conv1 = try Conv2DWeight(store: store, prefix: prefix + ".conv1", out: out, in: inChannels, kernel: 3, padding: 1)
        conv2 = try Conv2DWeight(store: store, prefix: prefix + ".conv2", out: out, in: out, kernel: 3, padding: 1)
        shortcut = inChannels == out ? nil : try Conv2DWeight(store: store, prefix: prefix + ".conv_shortcut", out: out, in: inChannels, kernel: 1)
    }

    func callAsFunction(_ x: Tensor, store: WeightStore) throws -> Tensor {
        func norm(_ t: Tensor, _ name: String, _ c: Int) throws -> Tensor {
            try Convolution.groupNorm(t, groups: groups, weight: try store.vector("\(prefix).\(name).weight", count: c),
                                      bias: try store.vector("\(prefix).\(name).bias", count: c), eps: 1e-6)
        }
        var h = try conv1(try norm(x, "norm1", inChannels).silu(), store: store)
        h = try conv2(try norm(h, "norm2", outChannels).silu(), store: store)
        let skip = try shortcut.map { try $0(x, store: store) } ?? x
        return try skip + h
    }
}

/// The mid-block `Attention` of the VAE: GroupNorm, one attention over all pixels (heads =
/// channels / `attention_head_dim`, which the decoder sets to the channel count: one head), output
/// projection, plus the input.
struct VAEAttention: Sendable {
    let prefix: String
    let channels: Int
    let groups: Int
    let q, k, v, out: LinearWeight
    let attention: Attention

    init(store: WeightStore, prefix: String, channels: Int, groups: Int) throws {
        self.prefix = prefix
        self.channels = channels
        self.groups = groups
        _ = try store.vector(prefix + ".group_norm.weight", count: channels)
        q = try LinearWeight(store: store, prefix: prefix + ".to_q", out: channels, in: channels, bias: true)
        k = try LinearWeight(store: store, prefix: prefix + ".to_k", out: channels, in: channels, bias: true)
        v = try LinearWeight(store: store, prefix: prefix + ".to_v", out: channels, in: channels, bias: true)
        out = try LinearWeight(store: store, prefix: prefix + ".to_out.0", out: channels, in: channels, bias: true)
        attention = try Attention(heads: 1, headDim: channels, causal: false)
    }

    func callAsFunction(_ x: Tensor, store: WeightStore) throws -> Tensor {
        let (c, hgt, wid) = (x.shape[0], x.shape[1], x.shape[2])
        let normed = try Convolution.groupNorm(x, groups: groups, weight: try store.vector(prefix + ".group_norm.weight", count: c),
                                               bias: try store.vector(prefix + ".group_norm.bias", count: c), eps: 1e-6)
        let pixels = try normed.reshaped([c, hgt * wid]).transposed()  // [HW, C]
        let attended = try attention(q: try q(pixels, store: store), k: try k(pixels, store: store), v: try v(pixels, store: store)).output
        let projected = try out(attended, store: store).transposed()  // [C, HW]
        return try x + projected.reshaped([c, hgt, wid])
    }
}
