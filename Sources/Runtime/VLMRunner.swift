import Foundation
import ModelIO
import Models
import Tensors
import TokenCompression

/// A prompt ready for the model: token ids with one image token (the placeholder the model
/// expands) and how it was built.
public struct VLMPrompt: Sendable, Equatable {
    public var inputIDs: [Int]
    /// The text given to the tokenizer (after the chat template), nil for pre-tokenized input.
    public var rendered: String?
    public var notes: [String]
    public init(inputIDs: [Int], rendered: String? = nil, notes: [String] = []) {
        self.inputIDs = inputIDs
        self.rendered = rendered
        self.notes = notes
    }
}

/// Loads a LLaVA folder once (model, tokenizer, chat template, image preprocessing) and runs
/// single samples, with or without a `ModelCompression`, measuring what a fair comparison needs.
///
/// `tokc run` uses it for one sample; the `tokc bench` harness reuses one runner for many.
public final class VLMRunner: @unchecked Sendable {
    public let folder: String
    public let model: LlavaModel
    /// Nil when the folder has no tokenizer.json (then prompts must be pre-tokenized).
    public let tokenizer: Tokenizer?
    /// Nil when the folder has no chat template (prompts are then used raw, with a note).
    public let template: ChatTemplate?
    public let preprocessor: ImagePreprocessor
    /// LLaVA-OneVision: the frame preprocessing of `video_preprocessor_config.json` (the class
    /// defaults at the tower's size when the file is absent); nil for models without a video path.
    public let videoPreprocessor: VideoPreprocessor?
    /// What loading had to assume (no template, default preprocessing, ...).
    public private(set) var loadNotes: [String] = []
    /// What loading had to assume about video input (added to the notes of video runs only).
    public private(set) var videoLoadNotes: [String] = []
    /// Why `video_preprocessor_config.json` could not be read: an error for video runs only, so
    /// that image runs on the folder are unaffected.
    let videoPreprocessorProblem: String?

    /// Loads `folder`; missing files and unsupported architectures fail with the reason.
    public init(folder: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw VLMRunError("model folder '\(folder)' does not exist")
        }
        guard FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("config.json")) else {
            throw VLMRunError("model folder '\(folder)' has no config.json")
        }
        self.folder = folder
        switch try Models.load(folder: folder) {
        case .llava(let m): model = m
        case .vision, .decoder, .imageClassifier, .clip:
            throw VLMRunError("\(folder): architecture '\(try Models.architecture(ofFolder: folder))' is not a vision-language model (tokc run needs LlavaForConditionalGeneration, LlavaNextForConditionalGeneration or LlavaOnevisionForConditionalGeneration)")
        }
        var notes: [String] = []
        if FileManager.default.fileExists(atPath: (folder as NSString).appendingPathComponent("tokenizer.json")) {
            tokenizer = try Tokenizer(folder: folder)
        } else {
            tokenizer = nil
            notes.append("no tokenizer.json: prompts must be given as token ids")
        }
        if let t = try? ChatTemplate(folder: folder) {
            template = t
        } else {
            template = nil
            notes.append("no chat template in the folder: prompts are used raw")
        }
        let ppPath = (folder as NSString).appendingPathComponent("preprocessor_config.json")
        if let d = FileManager.default.contents(atPath: ppPath) {
            do {
                preprocessor = try ImagePreprocessor(config: try JSONValue.parse(d))
            } catch {
                throw VLMRunError("\(ppPath): \(error)")
            }
        } else {
            preprocessor = try Self.defaultPreprocessor(model.config)
            notes.append("no preprocessor_config.json: using CLIP preprocessing at \(model.config.vision.imageSize) px")
        }
        loadNotes = notes
        if model.config.variant == .onevision {
            let videoPath = (folder as NSString).appendingPathComponent("video_preprocessor_config.json")
            if FileManager.default.fileExists(atPath: videoPath) {
                do {
                    videoPreprocessor = try VideoPreprocessor.load(folder: folder)
                    videoPreprocessorProblem = nil
                } catch {
                    videoPreprocessor = nil
                    videoPreprocessorProblem = "\(error)"
                }
            } else {
                let s = model.config.vision.imageSize
                videoPreprocessor = try VideoPreprocessor(config: try JSONValue.parse(Data(#"{"size": {"height": \#(s), "width": \#(s)}}"#.utf8)))
                videoLoadNotes.append("no video_preprocessor_config.json: LlavaOnevisionVideoProcessor defaults at \(s)x\(s) px")
                videoPreprocessorProblem = nil
            }
        } else {
            videoPreprocessor = nil
            videoPreprocessorProblem = nil
        }
    }

    /// CLIP preprocessing at the tower's size (LLaVA-NeXT: with the config's pinpoints; OneVision:
    /// its own processor at the tower's size with the config's pinpoints).
    static func defaultPreprocessor(_ config: LlavaConfig) throws -> ImagePreprocessor {
        let s = config.vision.imageSize
        var json: String
        switch config.variant {
        case .onevision:
            json = """
            {"image_processor_type": "LlavaOnevisionImageProcessor", "size": {"height": \(s), "width": \(s)}
            """
        case .next, .llava15:
            json = """
            {"image_processor_type": "\(config.variant == .next ? "LlavaNextImageProcessor" : "CLIPImageProcessor")",
             "size": {"shortest_edge": \(s)}, "crop_size": {"height": \(s), "width": \(s)}
            """
        }
        if config.usesAnyRes, !config.gridPinpoints.isEmpty {
            json += ", \"image_grid_pinpoints\": [" + config.gridPinpoints.map { "[\($0.height), \($0.width)]" }.joined(separator: ", ") + "]"
        }
        json += "}"
        return try ImagePreprocessor(config: try JSONValue.parse(Data(json.utf8)))
    }

    /// The string that marks the image in a prompt.
    public var imageTokenString: String {
        tokenizer?.token(for: model.config.imageTokenID) ?? "<image>"
    }

    /// Tokenizes `text`: wrapped in the chat template as one user turn with one image, or, with
    /// `raw` (or no template), as given, with `<image>` marking the image (added at the start
    /// when the text has none).
    public func prompt(_ text: String, raw: Bool = false) throws -> VLMPrompt {
        guard let tokenizer else { throw VLMRunError("\(folder) has no tokenizer.json: give the prompt as token ids") }
        let imageToken = imageTokenString
        guard tokenizer.tokenID(imageToken) == model.config.imageTokenID else {
            throw VLMRunError("tokenizer has no token '\(imageToken)' with the config's image_token_index \(model.config.imageTokenID)")
        }
        var notes: [String] = []
        let rendered: String
        if !raw, let template {
            rendered = try template.render(userText: text, withImage: true, imageToken: imageToken,
                                           bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken)
        } else {
            if !raw { notes.append("the model folder has no chat template: prompt used raw") }
            if text.contains(imageToken) {
                rendered = text
            } else {
                rendered = imageToken + "\n" + text
                notes.append("raw prompt has no \(imageToken): image placed at the start")
            }
        }
        let ids = try tokenizer.encodePrompt(rendered)
        let images = ids.filter { $0 == model.config.imageTokenID }.count
        guard images == 1 else {
            throw VLMRunError("prompt has \(images) image tokens '\(imageToken)'; exactly one is needed (one image per run)")
        }
        return VLMPrompt(inputIDs: ids, rendered: rendered, notes: notes)
    }

    /// Tokens the prompt takes in the decoder (text plus the uncompressed visual tokens).
    public func expandedLength(_ prompt: VLMPrompt, visualTokens: Int) -> Int {
        let placeholders = prompt.inputIDs.filter { $0 == model.config.imageTokenID }.count
        return prompt.inputIDs.count - placeholders + placeholders * visualTokens
    }

    /// Ids the decoding stops at: the config's EOS ids and the tokenizer's.
    public var stopTokens: Set<Int> {
        var s = Set(model.config.text.eosTokenIDs)
        if let e = tokenizer?.eosTokenID { s.insert(e) }
        return s
    }

    /// The explicit no-op note when a budget keeps every visual token (nil when it compresses):
    /// `Budget.resolve` decides, as it does inside every hook.
    public static func noOpNote(budget: Budget, visualTokens: Int, method: String) throws -> String? {
        guard case .noOp(_, let why) = try budget.resolve(over: visualTokens) else { return nil }
        return "\(why): \(method) is a no-op, run uncompressed"
    }
}
