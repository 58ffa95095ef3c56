import Foundation
import ModelIO

/// Transformer models loaded from Hugging Face checkpoints (vision towers, decoder LMs, LLaVA
/// assemblies) with hook points where token compressors plug in.
///
/// Entry points: `VisionTower.load(folder:)`, `DecoderLM.load(folder:)`, `LlavaModel.load(folder:)`.
public enum Models {
    /// Architectures (`config.json` `architectures[0]`) this module can run.
    public static var supportedArchitectures: [String] {
        ["CLIPVisionModel", "SiglipVisionModel", "LlamaForCausalLM", "Qwen2ForCausalLM",
         "LlavaForConditionalGeneration", "LlavaNextForConditionalGeneration"]
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
