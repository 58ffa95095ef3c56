import Foundation
import ModelIO

/// Transformer models loaded from Hugging Face checkpoints (vision towers, decoder LMs, LLaVA
/// assemblies) with hook points where token compressors plug in.
///
/// Entry points: `VisionTower.load(folder:)`, `DecoderLM.load(folder:)`, `LlavaModel.load(folder:)`,
/// `ViTClassifier.load(folder:)` (ViT, DeiT), `CLIPModel.load(folder:)`.
public enum Models {
    /// Architectures (`config.json` `architectures[0]`) this module can run.
    public static var supportedArchitectures: [String] {
        ["CLIPVisionModel", "SiglipVisionModel", "LlamaForCausalLM", "Qwen2ForCausalLM",
         "LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration", "LlavaOnevisionForConditionalGeneration",
         "ViTForImageClassification", "DeiTForImageClassification", "DeiTForImageClassificationWithTeacher", "CLIPModel"]
    }

    /// `architectures[0]` of a folder's config.json (or a name derived from `model_type`).
    public static func architecture(ofFolder folder: String) throws -> String {
        try ModelConfigFile(folder: folder).architecture
    }
}

/// A model folder or config that cannot be used, with the file and field that is wrong.
public struct ModelError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// Any model this module loads, by what `config.json` says it is.
public enum LoadedModel: @unchecked Sendable {
    case vision(VisionTower)
    case decoder(DecoderLM)
    case llava(LlavaModel)
    case imageClassifier(ViTClassifier)
    case clip(CLIPModel)
}

extension Models {
    /// Loads a Hugging Face folder as whichever supported architecture its config names.
    public static func load(folder: String, keepConverted: Bool = false) throws -> LoadedModel {
        switch try architecture(ofFolder: folder) {
        case "CLIPVisionModel", "SiglipVisionModel": return .vision(try VisionTower.load(folder: folder, keepConverted: keepConverted))
        case "LlamaForCausalLM", "Qwen2ForCausalLM": return .decoder(try DecoderLM.load(folder: folder, keepConverted: keepConverted))
        case "LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration", "LlavaOnevisionForConditionalGeneration":
            return .llava(try LlavaModel.load(folder: folder, keepConverted: keepConverted))
        case "ViTForImageClassification", "DeiTForImageClassification", "DeiTForImageClassificationWithTeacher":
            return .imageClassifier(try ViTClassifier.load(folder: folder, keepConverted: keepConverted))
        case "CLIPModel": return .clip(try CLIPModel.load(folder: folder, keepConverted: keepConverted))
        case let other:
            throw ModelError("\(folder): architecture '\(other)' is not supported (supported: \(supportedArchitectures.joined(separator: ", ")))")
        }
    }
}
