import Foundation
import FuzzSupport
import ModelIO
import Models
import Runtime

/// config.json read as every model config the toolkit loads (decoder, LLaVA, vision tower, ViT
/// classifier, CLIP), the same bytes as a diffusers component config (DiT and PixArt-α transformers,
/// the AutoencoderKL decoder, every scheduler class) and as the video processor's config: the readers
/// check sizes, defaults, nested sub-configs and the diffusers fields.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    let data = FuzzInput.data(bytes, size)
    FuzzScratch.write(data, "config.json")
    let folder = FuzzScratch.folder
    _ = try? LlamaConfig.load(folder: folder)
    _ = try? LlavaConfig.load(folder: folder)
    _ = try? VisionTowerConfig.load(folder: folder)
    _ = try? ViTClassifierConfig.load(folder: folder)
    _ = try? CLIPConfig.load(folder: folder)
    if let file = try? DiffusersConfigFile(path: folder + "/config.json") {
        _ = try? DiTConfig(file: file)
        _ = try? PixArtConfig(file: file)
        _ = try? VAEConfig(file: file)
        for name in ["DDIMScheduler", "DDPMScheduler", "DPMSolverMultistepScheduler", "EulerDiscreteScheduler"] {
            _ = try? DiffusionSchedulers.make(config: file, className: name)
        }
    }
    if let json = try? JSONValue.parse(data) { _ = try? VideoPreprocessor(config: json) }
    return 0
}
