import Foundation
import FuzzSupport
import ModelIO
import Models

/// config.json read as every model config the toolkit loads (decoder, LLaVA, vision tower, ViT
/// classifier, CLIP): the readers check sizes, defaults and nested sub-configs.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzConfig(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> CInt {
    FuzzScratch.write(FuzzInput.data(bytes, size), "config.json")
    let folder = FuzzScratch.folder
    _ = try? LlamaConfig.load(folder: folder)
    _ = try? LlavaConfig.load(folder: folder)
    _ = try? VisionTowerConfig.load(folder: folder)
    _ = try? ViTClassifierConfig.load(folder: folder)
    _ = try? CLIPConfig.load(folder: folder)
    return 0
}
