import Foundation

/// Built-in shapes of public checkpoints, so `tokc flops` needs no download.
///
/// Values are those of the public `config.json` files (and, for the vision towers, of the
/// encoder the checkpoint names); docs/flops.md lists them with their source.
public enum ShapePresets {
    /// Vicuna-7B / LLaMA-2-7B geometry (LLaVA-1.5-7B, LLaVA-NeXT-7B vicuna).
    static let vicuna7B = TransformerShape(layers: 32, hidden: 4096, heads: 32, mlpWidth: 11008, gatedMLP: true, vocab: 32000)
    static let vicuna13B = TransformerShape(layers: 40, hidden: 5120, heads: 40, mlpWidth: 13824, gatedMLP: true, vocab: 32000)
    /// Qwen2-7B: 28 layers, GQA with 4 KV heads of 128.
    static let qwen2_7B = TransformerShape(layers: 28, hidden: 3584, heads: 28, kvHeads: 4, headDim: 128,
                                           mlpWidth: 18944, gatedMLP: true, vocab: 152064)

    /// CLIP ViT-L/14 at 336 px: 24 layers run (LLaVA takes `hidden_states[-2]` but the tower
    /// computes all of them), 576 patches + [CLS].
    static func clipL336(projectTo d: Int) -> VisionTowerShape {
        VisionTowerShape(encoder: TransformerShape(layers: 24, hidden: 1024, heads: 16, mlpWidth: 4096, gatedMLP: false),
                         patchSize: 14, patchesPerPass: 576, hasCLS: true, projector: [1024, d, d])
    }

    /// SigLIP so400m/14 at 384 px: 729 patches, no [CLS]; LLaVA-OneVision drops the last of its
    /// 27 layers, so 26 run.
    static let siglip384 = VisionTowerShape(
        encoder: TransformerShape(layers: 26, hidden: 1152, heads: 16, mlpWidth: 4304, gatedMLP: false),
        patchSize: 14, patchesPerPass: 729, hasCLS: false, projector: [1152, 3584, 3584])

    /// Qwen2-VL ViT: 32 layers of width 1280, patches of 2×14×14×3, 2×2 patches merged into one
    /// LLM token by the MLP merger (5120 → 5120 → 3584).
    static let qwen2VLVision = VisionTowerShape(
        encoder: TransformerShape(layers: 32, hidden: 1280, heads: 16, mlpWidth: 5120, gatedMLP: false),
        patchSize: 14, temporalPatch: 2, patchesPerPass: 0, hasCLS: false, mergeFactor: 4,
        projector: [5120, 5120, 3584])

    public static let all: [ModelShape] = [
        ModelShape(name: "llava-1.5-7b", llm: vicuna7B, vision: clipL336(projectTo: 4096), defaultVisualTokens: 576),
        ModelShape(name: "llava-1.5-13b", llm: vicuna13B, vision: clipL336(projectTo: 5120), defaultVisualTokens: 576),
        // AnyRes with the largest grids: base + 4 crops = 5 passes of 576.
        ModelShape(name: "llava-next-7b", llm: vicuna7B, vision: clipL336(projectTo: 4096), defaultVisualTokens: 2880),
        // Video: each frame's 27×27 patches pooled to 14×14 = 196 tokens.
        ModelShape(name: "llava-onevision-7b", llm: qwen2_7B, vision: siglip384, defaultVisualTokens: 729,
                   videoTokensPerFrame: ModelShape.onevisionPooledTokens(patchesPerFrame: 729)),
        // Native resolution: 1024 tokens ≈ an 896×896 image (4096 patches).
        ModelShape(name: "qwen2-vl-7b", llm: qwen2_7B, vision: qwen2VLVision, defaultVisualTokens: 1024),
    ]

    public static var names: [String] { all.map(\.name) }

    public static func named(_ name: String) throws -> ModelShape {
        guard let s = all.first(where: { $0.name == name.lowercased() }) else {
            throw FlopsError.unknownPreset("unknown preset '\(name)'; presets: \((names + DiffusionPresets.names).joined(separator: ", "))")
        }
        return s
    }
}
