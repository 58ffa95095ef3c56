import Foundation

/// A video input for the calculator (`tokc flops --frames N`): its LLM token count and which
/// method plans apply to it.
public enum VideoFlops {
    /// Visual tokens of an `frames`-frame video on `shape`: frames × pooled tokens per frame + 1 newline.
    public static func visualTokens(shape: ModelShape, frames: Int) throws -> (visual: Int, tokensPerFrame: Int) {
        guard let perFrame = shape.videoTokensPerFrame else {
            throw FlopsError.invalidRequest("\(shape.name) has no video path (presets with one: \(ShapePresets.all.filter { $0.videoTokensPerFrame != nil }.map(\.name).joined(separator: ", ")))")
        }
        guard frames > 0 else { throw FlopsError.invalidRequest("--frames must be ≥ 1, got \(frames)") }
        return (frames * perFrame + 1, perFrame)
    }

    /// Refuses plans of methods that act on images before the projector: on a video prompt their
    /// hook never sees the frames (the model refuses them), so a plan would be fiction.
    public static func checkMethod(_ method: String) throws {
        let name = method.lowercased()
        guard name == "none" || MethodCatalog.videoPromptMethods.contains(name) else {
            throw FlopsError.invalidRequest("'\(name)' does not run on video prompts; on videos: \(MethodCatalog.videoPromptMethods.joined(separator: ", "))")
        }
    }
}
