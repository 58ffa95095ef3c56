import Foundation
import Testing
import ModelIO
import Tensors
@testable import Models

/// Parity of LLaVA-OneVision against transformers 5.25 (tools/fixtures/make_onevision_fixtures.py).
@Suite struct LlavaOnevisionTests {
    static let name = "llava-onevision"
    static let imageToken = 157
    static let videoToken = 158
    static let side = 35

    var folder: String { modelsFixture(Self.name) }

    /// `[tiles, 3, S, S]` pixel values from the fixture's uint8 levels and the processor's table.
    static func pixelValues(levels key: String, _ ref: ModelsReference) throws -> Tensor {
        let levels = try ref.tensor(key)
        let table = try ref.tensor("pixel_table").values
        let t = levels.shape[0], h = levels.shape[1], w = levels.shape[2]
        var out = Tensor(zeros: [t, 3, h, w])
        let src = levels.values
        out.withUnsafeMutableBufferPointer { dst in
            for i in 0..<t {
                for y in 0..<h {
                    for x in 0..<w {
                        for c in 0..<3 {
                            let v = Int(src[((i * h + y) * w + x) * 3 + c])
                            dst[((i * 3 + c) * h + y) * w + x] = table[c * 256 + v]
                        }
                    }
                }
            }
        }
        return out
    }

    static func split(_ pixels: Tensor) throws -> [Tensor] {
        let s = pixels.shape
        let flat = try pixels.reshaped([s[0], s[1] * s[2] * s[3]])
        return try (0..<s[0]).map { try flat.rows($0..<($0 + 1)).reshaped([s[1], s[2], s[3]]) }
    }

    static func image(_ key: String, _ ref: ModelsReference) throws -> LlavaImage {
        let size = try ref.ints("image_size_\(key)")
        return .anyRes(tiles: try split(try pixelValues(levels: "tiles_\(key)", ref)), imageHeight: size[0], imageWidth: size[1])
    }

    static func video(_ ref: ModelsReference) throws -> LlavaVideo {
        try LlavaVideo(pixelValues: try ref.tensor("pixel_values_video"))
    }

    /// The fixture's video frames as images.
    static func frames(_ ref: ModelsReference) throws -> [RGBImage] {
        let f = try ref.tensor("video_frames")
        let n = f.shape[0], h = f.shape[1], w = f.shape[2]
        let bytes = f.values.map { UInt8($0) }
        return try (0..<n).map { try RGBImage(width: w, height: h, pixels: Array(bytes[(($0 * h * w * 3))..<(($0 + 1) * h * w * 3)])) }
    }

    // MARK: config

    @Test func configReadsOnevisionFields() throws {
        let config = try LlavaConfig.load(folder: folder)
        #expect(config.variant == .onevision)
        #expect(config.vision.kind == .siglip && config.text.family == .qwen2)
        #expect(config.imageTokenID == Self.imageToken && config.videoTokenID == Self.videoToken)
        #expect(config.visionFeatureLayers == [-1] && config.visionFeatureStrategy == .full)
        #expect(config.anyResMaxTiles == 9)
        #expect(config.gridPinpoints.count == 10)
        #expect(config.text.tieWordEmbeddings)
        #expect(try Models.architecture(ofFolder: folder) == "LlavaOnevisionForConditionalGeneration")
    }

    /// A config that leaves fields out gets LlavaOnevisionConfig's class defaults from the one table.
    @Test func absentFieldsTakeClassDefaults() throws {
        let dir = try temporaryFolder(config: """
        {"architectures": ["LlavaOnevisionForConditionalGeneration"], "model_type": "llava_onevision",
         "text_config": {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 1, "num_attention_heads": 4,
                         "vocab_size": 160, "tie_word_embeddings": true},
         "vision_config": {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4,
                           "image_size": 384, "patch_size": 14}}
        """)
        let config = try LlavaConfig.load(folder: dir)
        #expect(config.vision.kind == .siglip && config.vision.patchesPerSide == 27)
        #expect(config.text.family == .qwen2 && config.text.tieWordEmbeddings)
        #expect(config.imageTokenID == 151646 && config.videoTokenID == 151647)
        #expect(config.visionFeatureLayers == [-1] && config.visionFeatureStrategy == .full)
        #expect(config.anyResMaxTiles == 9)
        #expect(config.gridPinpoints.count == 36)
        #expect(config.gridPinpoints.first! == (height: 384, width: 384) && config.gridPinpoints.last! == (height: 2304, width: 2304))
    }

    @Test func unsupportedConfigsAreRefused() throws {
        let text = try String(contentsOfFile: folder + "/config.json", encoding: .utf8)
        for (from, to, needle) in [("\"anyres_max_9\"", "\"anyres\"", "vision_aspect_ratio"),
                                   ("\"anyres_max_9\"", "\"pad\"", "vision_aspect_ratio"),
                                   ("\"vision_feature_select_strategy\": \"full\"", "\"vision_feature_select_strategy\": \"default\"", "SigLIP"),
                                   ("\"video_token_index\": 158", "\"video_token_index\": 157", "video_token_index")] {
            #expect(text.contains(from))
            let dir = try temporaryFolder(config: text.replacingOccurrences(of: from, with: to))
            do {
                _ = try LlavaConfig.load(folder: dir)
                Issue.record("config with \(to) was accepted")
            } catch let e as ModelError {
                #expect(e.message.contains(needle), "\(e.message)")
            }
        }
        #expect(try LlavaConfig.maxTiles(aspectRatio: "anyres_max_4", context: "t") == 4)
        #expect(throws: ModelError.self) { try LlavaConfig.maxTiles(aspectRatio: "anyres_max_0", context: "t") }
    }

    // MARK: images

    @Test(arguments: ["a", "b"])
    func imageMatchesTransformers(_ key: String) throws {
        let model = try LlavaModel.load(folder: folder)
        let ref = try ModelsReference(Self.name)
        let image = try Self.image(key, ref)
        let ids = try ref.ints("input_ids_\(key)")
        #expect(try model.imageTokenCount(image) == ids.filter { $0 == Self.imageToken }.count)
        let (tokens, prefill) = try model.generate(inputIDs: ids, images: [image], maxNewTokens: 5, stopTokens: [])
        let d = modelsMaxAbs(prefill.logits, try ref.tensor("logits_\(key)"))
        print("llava-onevision image \(key): max |Δlogits| = \(d)")
        #expect(d < 1e-4, "image \(key): logits differ by \(d)")
        #expect(tokens == (try ref.ints("greedy_\(key)")))
        #expect(prefill.expandedInputIDs == ids)
        #expect(prefill.trace.towerRowsPerTile.count == (key == "a" ? 17 : 13))
    }

    /// The visual token counts: image a needs the max-9 downscale (18×20 → 14×15 cells), image b
    /// only unpadding (5×20); a single tile is its 25 rows and one newline; a video of F frames is
    /// F·3·3 pooled cells and one newline.
    @Test func visualTokenCounts() throws {
        let model = try LlavaModel.load(folder: folder)
        #expect(try model.imageTokenCount(imageHeight: 150, imageWidth: 160) == 25 + 14 * 16)
        #expect(try model.imageTokenCount(imageHeight: 36, imageWidth: 150) == 25 + 5 * 21)
        let a = try model.onevisionGridSize(height: 18, width: 20)
        #expect(a.height == 14 && a.width == 15 && a.downscaled)
        let b = try model.onevisionGridSize(height: 5, width: 20)
        #expect(b.height == 5 && b.width == 20 && !b.downscaled)
        #expect(try model.imageTokenCount(.single(Tensor(zeros: [3, 35, 35]))) == 26)
        #expect(try model.videoTokenCount(frames: 4) == 37)
        #expect(try model.videoTokenCount(frames: 1) == 10)
    }

    @Test func placeholderTokensExpand() throws {
        let model = try LlavaModel.load(folder: folder)
        let ref = try ModelsReference(Self.name)
        let full = try ref.ints("input_ids_mixed")
        var short: [Int] = []
        for t in full where !((t == Self.imageToken || t == Self.videoToken) && short.last == t) { short.append(t) }
        #expect(short.count == full.count - 129 - 36)
        let p = try model.prefill(inputIDs: short, images: [try Self.image("b", ref)], videos: [try Self.video(ref)])
        #expect(modelsMaxAbs(p.logits, try ref.tensor("logits_mixed")) < 1e-4)
        #expect(p.expandedInputIDs == full)
        #expect(p.imageSpans == [3..<133] && p.videoSpans == [134..<171])
        #expect(p.videoTokens == [37] && p.visualTokensBefore == [130])
    }

    /// Two images in one prompt (`batch_num_images` = 2): one padded-to-square tile each.
    @Test func multiImagePromptMatchesTransformers() throws {
        let model = try LlavaModel.load(folder: folder)
        let ref = try ModelsReference(Self.name)
        let tiles = try Self.split(try Self.pixelValues(levels: "tiles_multi", ref))
        let p = try model.prefill(inputIDs: try ref.ints("input_ids_multi"), images: tiles.map { .single($0) })
        let d = modelsMaxAbs(p.logits, try ref.tensor("logits_multi"))
        print("llava-onevision multi-image: max |Δlogits| = \(d)")
        #expect(d < 1e-4, "multi-image logits differ by \(d)")
        #expect(p.visualTokensBefore == [26, 26])
    }

    // MARK: video

    @Test func videoMatchesTransformers() throws {
        let model = try LlavaModel.load(folder: folder)
        let ref = try ModelsReference(Self.name)
        let video = try Self.video(ref)
        let features = try model.videoFeatures(video)
        let df = modelsMaxAbs(features.features, try ref.tensor("features_video"))
        #expect(df < 1e-4, "video features differ by \(df)")
        #expect(features.towerRowsPerFrame.count == 4 && features.projectedRows == 100)
        let ids = try ref.ints("input_ids_video")
        #expect(ids.filter { $0 == Self.videoToken }.count == 37)
        let (tokens, p) = try model.generate(inputIDs: ids, images: [], videos: [video], maxNewTokens: 5, stopTokens: [])
        let d = modelsMaxAbs(p.logits, try ref.tensor("logits_video"))
        print("llava-onevision video: max |Δlogits| = \(d), features \(df)")
        #expect(d < 1e-4, "video logits differ by \(d)")
        #expect(tokens == (try ref.ints("greedy_video")))
        #expect(p.videoSpans == [3..<40] && p.imageSpans.isEmpty)
        #expect(p.trace.projectedRows == 100 && p.trace.towerRowsPerTile.count == 4)
        // The decoder's hook sees the video rows as visual rows.
        #expect(p.trace.decoderVisualRowsPerLayer.allSatisfy { $0 == 37 })
    }

    @Test func mixedImageAndVideoPrompt() throws {
        let model = try LlavaModel.load(folder: folder)
        let ref = try ModelsReference(Self.name)
        let p = try model.prefill(inputIDs: try ref.ints("input_ids_mixed"), images: [try Self.image("b", ref)], videos: [try Self.video(ref)])
        let d = modelsMaxAbs(p.logits, try ref.tensor("logits_mixed"))
        print("llava-onevision image + video: max |Δlogits| = \(d)")
        #expect(d < 1e-4, "mixed logits differ by \(d)")
        #expect(p.trace.towerRowsPerTile.count == 13 + 4)
    }

    // MARK: preprocessing

    @Test(arguments: ["a", "b"])
    func imagePreprocessingMatchesProcessor(_ key: String) throws {
        let pre = try ImagePreprocessor(config: try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: folder + "/preprocessor_config.json"))))
        #expect(pre.kind == .llavaOnevision && !pre.doCenterCrop && pre.anyResTileSize == Self.side)
        let ref = try ModelsReference(Self.name)
        let image = try RGBImage.load(path: folder + "/image_\(key).png")
        let size = try ref.ints("image_size_\(key)")
        #expect([image.height, image.width] == size)
        let ours = try pre(image)
        let theirs = try Self.pixelValues(levels: "tiles_\(key)", ref)
        #expect(ours.shape == theirs.shape)
        let d = modelsMaxAbs(ours, theirs)
        #expect(d == 0, "image \(key): pixel values differ by \(d)")
    }

    @Test func multiImagePreprocessingPadsToSquare() throws {
        let pre = try ImagePreprocessor(config: try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: folder + "/preprocessor_config.json"))))
        let ref = try ModelsReference(Self.name)
        let theirs = try Self.split(try Self.pixelValues(levels: "tiles_multi", ref))
        for (i, key) in ["a", "b"].enumerated() {
            let ours = try pre.onevisionSingleTile(try RGBImage.load(path: folder + "/image_\(key).png"))
            #expect(modelsMaxAbs(ours, theirs[i]) == 0, "image \(key) as a single tile")
        }
    }

    @Test func videoPreprocessingMatchesProcessor() throws {
        let pre = try VideoPreprocessor.load(folder: folder)
        #expect(pre.size == PixelSize(height: Self.side, width: Self.side) && pre.resample == .bicubic && !pre.doSampleFrames)
        let ref = try ModelsReference(Self.name)
        let frames = try Self.frames(ref)
        let ours = try Tensor.concatenateRows(try pre(frames).map { try $0.reshaped([1, 3 * Self.side * Self.side]) })
        let theirs = try ref.tensor("pixel_values_video").reshaped([4, 3 * Self.side * Self.side])
        let d = modelsMaxAbs(ours, theirs)
        #expect(d <= 1e-6, "video pixel values differ by \(d)")
        // torchvision's uint8 bicubic (torch's native kernel) is within one level of Pillow's here.
        let torch = try ref.tensor("video_resized_torch").values
        var worst: Float = 0
        for (f, frame) in frames.enumerated() {
            let r = try pre.resizedFrame(frame).pixels
            for (j, v) in r.enumerated() { worst = max(worst, abs(Float(v) - torch[f * r.count + j])) }
        }
        #expect(worst <= 1)
    }

    @Test func badVideoPreprocessorConfigs() throws {
        #expect(throws: ImageError.self) { try VideoPreprocessor(config: try JSONValue.parse(Data(#"{"video_processor_type": "Qwen2VLVideoProcessor"}"#.utf8))) }
        #expect(throws: ImageError.self) { try VideoPreprocessor(config: try JSONValue.parse(Data(#"{"size": {"shortest_edge": 384}}"#.utf8))) }
        #expect(throws: ImageError.self) { try VideoPreprocessor(config: try JSONValue.parse(Data(#"{"image_std": [0.5, 0, 0.5]}"#.utf8))) }
        let defaults = try VideoPreprocessor(config: try JSONValue.parse(Data("{}".utf8)))
        #expect(defaults.size == PixelSize(height: 384, width: 384) && defaults.imageMean == ImagePreprocessor.openAIClipMean)
        #expect(throws: ImageError.self) { try defaults([]) }
    }

    // MARK: bad input

    @Test func badVideoInputIsRefused() throws {
        let model = try LlavaModel.load(folder: folder)
        let ref = try ModelsReference(Self.name)
        let ids = try ref.ints("input_ids_video")
        func message(_ body: () throws -> Void) -> String {
            do { try body() } catch let e as ModelError { return e.message } catch { return "\(error)" }
            return "no error"
        }
        // Wrong frame size.
        let small = LlavaVideo(frames: Array(repeating: Tensor(zeros: [3, 28, 28]), count: 4))
        #expect(message { _ = try model.prefill(inputIDs: ids, images: [], videos: [small]) }.contains("expected [3, 35, 35]"))
        // A video prompt without the video's frames.
        #expect(message { _ = try model.prefill(inputIDs: ids, images: [], videos: []) }.contains("video tokens"))
        #expect(message { _ = try model.prefill(inputIDs: ids, images: [], videos: [LlavaVideo(frames: [])]) }.contains("no frames"))
        // Frame count that does not match the expanded prompt.
        let three = LlavaVideo(frames: Array(try Self.video(ref).frames.prefix(3)))
        #expect(message { _ = try model.prefill(inputIDs: ids, images: [], videos: [three]) }.contains("video tokens"))
        #expect(throws: ModelError.self) { try LlavaVideo(pixelValues: Tensor(zeros: [3, 35, 35])) }
        // A vision-side hook would leave the frames uncompressed: refused.
        #expect(message { _ = try model.prefill(inputIDs: ids, images: [], videos: [try Self.video(ref)], visionHook: KeepAllHook()) }
            .contains("vision-feature hook"))
        // LLaVA-NeXT takes no videos.
        let next = try LlavaModel.load(folder: modelsFixture("llava-next-wide"))
        #expect(message { _ = try next.prefill(inputIDs: [1, 2], images: [], videos: [try Self.video(ref)]) }.contains("only LLaVA-OneVision"))
    }

    /// A vision hook that keeps every row in order leaves the downscaled layout intact; one that
    /// drops rows is placed without the downscale where none is needed and refused where it is.
    @Test func visionHookOnOnevisionImages() throws {
        let model = try LlavaModel.load(folder: folder)
        let ref = try ModelsReference(Self.name)
        let a = try model.prefill(inputIDs: try ref.ints("input_ids_a"), images: [try Self.image("a", ref)], visionHook: KeepAllHook())
        #expect(modelsMaxAbs(a.logits, try ref.tensor("logits_a")) < 1e-4)
        let drop = DropFirstHook()
        #expect(throws: ModelError.self) {
            try model.prefill(inputIDs: [1, Self.imageToken, 2], images: [try Self.image("a", ref)], visionHook: drop)
        }
        let b = try model.prefill(inputIDs: [1, Self.imageToken, 2], images: [try Self.image("b", ref)], visionHook: drop)
        // Every tile loses its first patch: the thumbnail keeps 24 rows, and the unpadded 5×20 grid
        // loses the cells at tile origins that fall inside it, as LLaVA-NeXT would place them.
        #expect(b.visualTokensBefore == [130] && b.visualTokensAfter[0] < 130 && b.visualTokensAfter[0] >= 130 - 13)
    }

    @Test func floorDivisionAndBilinearFollowPythonAndTorch() throws {
        #expect(LlavaModel.pythonFloorDivide(1.0, 0.1) == 9)  // Python: 1.0 // 0.1 == 9.0
        #expect(LlavaModel.pythonFloorDivide(18, (360.0 / 225).squareRoot()) == 14)
        #expect(LlavaModel.pythonFloorDivide(-7, 2) == -4)
        // 2×2 → 1×1 averages the four cells; 1×2 → 1×4 interpolates with torch's edge clamp.
        let g = try Tensor(shape: [4, 1], values: [1, 2, 3, 4])
        #expect(try LlavaModel.bilinearResize(g, height: 2, width: 2, toHeight: 1, toWidth: 1).values == [2.5])
        let line = try Tensor(shape: [2, 1], values: [0, 4])
        #expect(try LlavaModel.bilinearResize(line, height: 1, width: 2, toHeight: 1, toWidth: 4).values == [0, 1, 3, 4])
    }
}

/// Keeps every feature row in order (a hook that selects nothing).
final class KeepAllHook: VisionFeatureHook {
    var captureRequest: VisionCaptureRequest { .none }
    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        try image.tiles.map { try KeptFeatures(rows: $0.features, sourceIndices: Array(0..<$0.features.rows)) }
    }
}

/// Drops the first feature row of every tile.
final class DropFirstHook: VisionFeatureHook {
    var captureRequest: VisionCaptureRequest { .none }
    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        try image.tiles.map { try KeptFeatures.selecting(Array(1..<$0.features.rows), of: $0) }
    }
}

/// A temporary folder holding one config.json.
func temporaryFolder(config: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("onevision-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    try config.write(to: dir.appendingPathComponent("config.json"), atomically: true, encoding: .utf8)
    return dir.path
}
