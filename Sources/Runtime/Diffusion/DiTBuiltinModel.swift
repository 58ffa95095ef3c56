import Foundation
import Models

extension DiTPipeline {
    /// The built-in class-conditional DiT (`tools/builtin/train_dit.py`: 24 shape × colour classes, the
    /// ids of the built-in classifier `builtin/models/vit-shapes`), the model of `tokc generate` without `--model`.
    public static let builtinModel = "builtin/models/dit-shapes"

    /// Where the built-in model is (the current directory first, then above the executable, as for the
    /// built-in LLaVA of `tokc run`), or an error that says where it looked.
    public static func defaultFolder(executable: String? = nil) throws -> String {
        guard let folder = VLMPaths.resolve(builtinModel, executable: executable) else {
            throw ModelError("built-in diffusion model '\(builtinModel)' not found in the current directory or above the executable; pass --model DIR")
        }
        return folder
    }
}
