import Foundation
import ModelIO
import Models
import Tensors

/// One video ready for a LLaVA-OneVision run: the sampled frames as decoded, the frames the tower
/// sees (after the video preprocessor's resize; keep maps are drawn on them) and the model's input.
public struct VLMPreparedVideo: @unchecked Sendable {
    public var clip: VideoClip
    public var modelInput: [RGBImage]
    public var llava: LlavaVideo
}

extension VLMRunner {
    /// Whether this model has a video path (LLaVA-OneVision with a `video_token_index`).
    public var takesVideo: Bool { model.config.variant == .onevision && model.config.videoTokenID != nil }

    /// The video token id; a model without a video path is refused, naming its architecture.
    public func requireVideoPath() throws -> Int {
        guard takesVideo, let id = model.config.videoTokenID else {
            let arch = (try? Models.architecture(ofFolder: folder)) ?? model.config.variant.rawValue
            throw VLMRunError("\(folder): '\(arch)' has no video path; --video needs a LLaVA-OneVision model (LlavaOnevisionForConditionalGeneration)")
        }
        return id
    }

    /// Reads a video file or frame folder, sampling `frames` frames (nil: all of them).
    public static func loadVideo(path: String, frames: Int? = nil) throws -> VideoClip {
        try VideoClip.load(path: path, frames: frames)
    }

    /// Runs the folder's video preprocessing on the sampled frames.
    public func prepare(video clip: VideoClip) throws -> VLMPreparedVideo {
        _ = try requireVideoPath()
        guard let videoPreprocessor else { throw VLMRunError(videoPreprocessorProblem ?? "\(folder): no video preprocessor for this model") }
        let side = model.config.vision.imageSize
        guard videoPreprocessor.doResize ? videoPreprocessor.size == PixelSize(height: side, width: side)
                                         : clip.frames.allSatisfy({ $0.width == side && $0.height == side }) else {
            throw VLMRunError("video preprocessing gives frames of \(videoPreprocessor.doResize ? "\(videoPreprocessor.size.width)x\(videoPreprocessor.size.height)" : "their own size"), the vision tower takes \(side)x\(side) (check video_preprocessor_config.json 'size')")
        }
        let pixels: [Tensor]
        do { pixels = try videoPreprocessor(clip.frames) } catch { throw VLMRunError("\(clip.path): \(error)") }
        return VLMPreparedVideo(clip: clip, modelInput: try clip.frames.map(videoPreprocessor.resizedFrame),
                                llava: LlavaVideo(frames: pixels))
    }

    /// Visual tokens the video takes in the prompt without compression.
    public func visualTokenCount(_ video: VLMPreparedVideo) throws -> Int { try model.videoTokenCount(video.llava) }

    /// The string that marks the video in a prompt.
    public var videoTokenString: String {
        model.config.videoTokenID.flatMap { tokenizer?.token(for: $0) } ?? "<video>"
    }

    /// Tokenizes `text` for one video: in the chat template as one user turn whose content is
    /// `[{"type": "video"}, {"type": "text", ...}]` (as transformers' processor builds it; a
    /// template that wants plain string content gets `<video>\n` + text), or, with `raw` (or no
    /// template), as given with `<video>` marking the video (added at the start when absent).
    public func videoPrompt(_ text: String, raw: Bool = false) throws -> VLMPrompt {
        let videoID = try requireVideoPath()
        guard let tokenizer else { throw VLMRunError("\(folder) has no tokenizer.json: give the prompt as token ids") }
        let token = videoTokenString
        guard tokenizer.tokenID(token) == videoID else {
            throw VLMRunError("tokenizer has no token '\(token)' with the config's video_token_index \(videoID)")
        }
        var notes: [String] = []
        let rendered: String
        if !raw, let template {
            rendered = try Self.renderVideoTurn(template, text: text, videoToken: token, bos: tokenizer.bosToken, eos: tokenizer.eosToken)
        } else {
            if !raw { notes.append("the model folder has no chat template: prompt used raw") }
            if text.contains(token) {
                rendered = text
            } else {
                rendered = token + "\n" + text
                notes.append("raw prompt has no \(token): video placed at the start")
            }
        }
        let ids = try tokenizer.encodePrompt(rendered)
        let videos = ids.filter { $0 == videoID }.count
        guard videos == 1 else {
            throw VLMRunError("prompt has \(videos) video tokens '\(token)'; exactly one is needed (one video per run)")
        }
        let images = ids.filter { $0 == model.config.imageTokenID }.count
        guard images == 0 else { throw VLMRunError("a video prompt cannot also hold image tokens (found \(images) '\(imageTokenString)')") }
        return VLMPrompt(inputIDs: ids, rendered: rendered, notes: notes)
    }

    static func renderVideoTurn(_ template: ChatTemplate, text: String, videoToken: String, bos: String?, eos: String?) throws -> String {
        func context(_ content: JinjaValue) -> [String: JinjaValue] {
            [
                "messages": .list([.object(["role": .string("user"), "content": content])]),
                "add_generation_prompt": .bool(true),
                "bos_token": .string(bos ?? ""),
                "eos_token": .string(eos ?? ""),
            ]
        }
        let parts: JinjaValue = .list([.object(["type": .string("video")]), .object(["type": .string("text"), "text": .string(text)])])
        var firstError: Error?
        do {
            let r = try template.render(context: context(parts))
            if r.contains(text) && r.contains(videoToken) { return r }
        } catch {
            firstError = error
        }
        do {
            return try template.render(context: context(.string(videoToken + "\n" + text)))
        } catch {
            throw firstError ?? error
        }
    }

    /// The keep map of a video run: the model-input frames side by side, dropped tokens dimmed.
    /// `kept` indexes the video's tokens (frames × pooled cells, then the newline).
    public func keepMap(kept: [Int], video: VLMPreparedVideo, dim: Float = 0.3) throws -> RGBImage {
        let pooled = (model.config.vision.patchesPerSide + 1) / 2
        return try VideoKeepMap.draw(frames: video.modelInput, grid: (pooled, pooled), kept: Set(kept), dim: dim)
    }
}
