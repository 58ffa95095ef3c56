import Foundation
import ModelIO

/// `AutoencoderKL`'s config (diffusers), as in `vae/config.json`: what the decoder needs.
///
/// Absent fields take `AutoencoderKL.__init__`'s defaults. Only the plain decoder is supported
/// (`UpDecoderBlock2D` up blocks, SiLU, GroupNorm); anything else is an error naming the field.
public struct VAEConfig: Sendable, Equatable {
    public var latentChannels: Int
    public var outChannels: Int
    /// Per resolution level, shallowest first (the decoder walks them in reverse).
    public var blockOutChannels: [Int]
    /// ResNets per up block = `layersPerBlock + 1`.
    public var layersPerBlock: Int
    public var normGroups: Int
    /// Latents are divided by it before decoding (`1 / scaling_factor * latents` in the pipelines).
    public var scalingFactor: Double
    public var usePostQuantConv: Bool
    public var midBlockAttention: Bool

    /// Pixels per latent pixel along an axis: one ×2 upsampling per level but the last.
    public var upscale: Int { 1 << (blockOutChannels.count - 1) }

    public init(file: DiffusersConfigFile) throws {
        let context = file.path
        if let name = file.className, name != "AutoencoderKL" {
            throw ModelError("\(context): _class_name '\(name)' is not supported as the VAE (expected AutoencoderKL)")
        }
        let r = file.reader
        latentChannels = try r.positiveInt("latent_channels", default: 4)
        outChannels = try r.positiveInt("out_channels", default: 3)
        blockOutChannels = try file.positiveInts("block_out_channels", default: [64])
        layersPerBlock = try r.positiveInt("layers_per_block", default: 1)
        normGroups = try r.positiveInt("norm_num_groups", default: 32)
        scalingFactor = try r.double("scaling_factor", default: 0.18215)
        usePostQuantConv = try r.bool("use_post_quant_conv", default: true)
        midBlockAttention = try r.bool("mid_block_add_attention", default: true)
        let act = try r.string("act_fn", default: "silu")
        guard act == "silu" || act == "swish" else {
            throw ModelError("\(context): act_fn '\(act)' is not supported (expected 'silu')")
        }
        let upBlocks = try file.strings("up_block_types", default: ["UpDecoderBlock2D"])
        guard upBlocks.count == blockOutChannels.count else {
            throw ModelError("\(context): \(upBlocks.count) up_block_types for \(blockOutChannels.count) block_out_channels")
        }
        if let bad = upBlocks.first(where: { $0 != "UpDecoderBlock2D" }) {
            throw ModelError("\(context): up block type '\(bad)' is not supported (expected UpDecoderBlock2D)")
        }
        guard scalingFactor > 0, scalingFactor.isFinite else {
            throw ModelError("\(context): scaling_factor must be positive, found \(scalingFactor)")
        }
        if let bad = blockOutChannels.first(where: { $0 % normGroups != 0 }) {
            throw ModelError("\(context): block_out_channels entry \(bad) is not divisible by norm_num_groups \(normGroups)")
        }
    }
}
