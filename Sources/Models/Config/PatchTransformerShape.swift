/// What DiT and PixArt-α share as patch transformers over a square latent: the sizes their configs
/// read, and the shapes derived from them once here (width, patch grid, learned variance, latents).
public protocol PatchTransformerShape {
    var heads: Int { get }
    var headDim: Int { get }
    var inChannels: Int { get }
    var outChannels: Int { get }
    /// Latent height and width the position embedding is built for.
    var sampleSize: Int { get }
    var patchSize: Int { get }
}

extension PatchTransformerShape {
    public var width: Int { heads * headDim }
    public var patchesPerSide: Int { sampleSize / patchSize }
    public var tokenCount: Int { patchesPerSide * patchesPerSide }
    /// Whether the output carries a learned variance after the noise prediction.
    public var learnedSigma: Bool { outChannels == 2 * inChannels }
    /// `[C, H, W]` of the latents the transformer samples.
    public var latentShape: [Int] { [inChannels, sampleSize, sampleSize] }
}
