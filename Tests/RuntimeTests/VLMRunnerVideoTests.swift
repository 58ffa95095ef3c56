import Foundation
import ModelIO
import Models
import Tensors
import Testing
import TokenCompression
@testable import Runtime

/// Video runs on the tiny LLaVA-OneVision fixture: frames from a folder or file, the folder's
/// video preprocessing, the video prompt (chat template or raw `<video>`), the run, keep maps,
/// and `tokc run --video` itself.
@Suite struct VLMRunnerVideoTests {
    static let fixture = runPath("Tests/Fixtures/models/llava-onevision")
    static let videos = runPath("Tests/Fixtures/videos")

    /// The fixture model with the video fixtures' tokenizer and chat template (the model folder
    /// itself has none), in a fresh temporary folder of links.
    static func modelWithTokenizer() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokc-ov-\(UUID().uuidString)").path
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "preprocessor_config.json", "video_preprocessor_config.json"] {
            try fm.createSymbolicLink(atPath: dir + "/" + f, withDestinationPath: fixture + "/" + f)
        }
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            try fm.copyItem(atPath: videos + "/tokenizer/" + f, toPath: dir + "/" + f)
        }
        return dir
    }

    /// transformers' rendering and ids of the fixture's prompts (tools/fixtures/make_video_fixtures.py).
    static func expected() throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: videos + "/tokenizer/expected.json"))
        return try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
    }

    static func maxAbs(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.values, b.values).reduce(Float(0)) { max($0, abs($1.0 - $1.1)) }
    }

    @Test func videoPromptsMatchTransformers() throws {
        let folder = try Self.modelWithTokenizer()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let runner = try VLMRunner(folder: folder)
        let e = try Self.expected()
        let question = try #require(e["question"] as? String)
        let templated = try runner.videoPrompt(question)
        #expect(templated.rendered == e["template_rendered"] as? String)
        #expect(templated.inputIDs == e["template_ids"] as? [Int])
        let raw = try runner.videoPrompt(try #require(e["raw_prompt"] as? String), raw: true)
        #expect(raw.inputIDs == e["raw_ids"] as? [Int] && raw.notes.isEmpty)
        // Raw text without <video> gets it at the start, with a note.
        let placed = try runner.videoPrompt(question, raw: true)
        #expect(placed.inputIDs == raw.inputIDs && placed.notes.contains { $0.contains("video placed at the start") })
        #expect(throws: VLMRunError.self) { try runner.videoPrompt("<video> and <video>", raw: true) }
        #expect(throws: VLMRunError.self) { try runner.videoPrompt("<video><image> what?", raw: true) }
    }

    /// Frame images in a folder → the runner's video path gives transformers' logits and greedy
    /// tokens for the same frames (the fixture's `video_frames`, 4 frames of 64×48).
    @Test func frameFolderRunMatchesTransformers() throws {
        let ref = try SafetensorsFile(path: Self.fixture + "/reference.safetensors")
        let frames = try ref.info("video_frames")
        let (n, h, w) = (frames.shape[0], frames.shape[1], frames.shape[2])
        let bytes = Array(try ref.rawBytes("video_frames"))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokc-ovframes-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        for f in 0..<n {
            let image = try RGBImage(width: w, height: h, pixels: Array(bytes[(f * h * w * 3)..<((f + 1) * h * w * 3)]))
            try image.writePNG(path: dir + "/\(f).png")
        }
        let runner = try VLMRunner(folder: Self.fixture)
        let clip = try VLMRunner.loadVideo(path: dir, frames: n)
        let video = try runner.prepare(video: clip)
        #expect(video.modelInput.count == n && video.modelInput.allSatisfy { $0.width == 35 && $0.height == 35 })
        #expect(try runner.visualTokenCount(video) == 37)
        var ids: [Int] = []
        for t in try ref.integers("input_ids_video").map({ Int($0) }) where !(t == 158 && ids.last == 158) { ids.append(t) }
        let result = try runner.run(prompt: VLMPrompt(inputIDs: ids), video: video, maxNewTokens: 5)
        let d = Self.maxAbs(result.logits, try ref.tensor("logits_video"))
        print("video frame folder run vs transformers: max |Δlogits| = \(d)")
        #expect(d < 1e-4, "video run logits differ from transformers by \(d)")
        let greedy = try ref.integers("greedy_video").map { Int($0) }
        #expect(Array(greedy.prefix(result.generatedIDs.count)) == result.generatedIDs)
        #expect(result.promptTokens == 43 && result.visualTokensTotal == 37 && result.keptIndices == Array(0..<37))
        #expect(result.imageSpans == [3..<40])
        // The model folder has a video_preprocessor_config.json: nothing assumed.
        #expect(!result.notes.contains { $0.contains("video_preprocessor_config") })
    }

    /// A decoder-side method acts on the video's rows; a vision-side one is refused.
    @Test func decoderMethodsActOnTheVideoSpan() throws {
        let runner = try VLMRunner(folder: Self.fixture)
        let video = try runner.prepare(video: try VLMRunner.loadVideo(path: Self.videos + "/clip.gif", frames: 4))
        let prompt = VLMPrompt(inputIDs: [1, 15, 158, 27, 33])
        let fastv = try AttentionRowCompression.fastVAdapter.make(budget: .count(10), parameters: ["layer": "1"])
        let r = try runner.run(prompt: prompt, video: video, compression: fastv, maxNewTokens: 2)
        #expect(r.method == "fastv" && r.visualTokensTotal == 37 && r.visualTokensKept == 10)
        #expect(r.keptIndices.count == 10 && r.keptIndices.allSatisfy { (0..<37).contains($0) })
        #expect(r.trace.decoderVisualRowsPerLayer == [37, 10])
        let map = try runner.keepMap(kept: r.keptIndices, video: video)
        #expect(map.width == 4 * 35 + 3 * 4 && map.height == 35)
        let full = try runner.keepMap(kept: Array(0..<37), video: video)
        #expect(full.pixels != map.pixels)
        let vision = runCompression(VisionZip.info, budget: .count(10), vision: RunStrideVisionHook(stride: 2))
        #expect(throws: ModelError.self) { try runner.run(prompt: prompt, video: video, compression: vision) }
        // The prompt must hold exactly one video token and no image token.
        #expect(throws: VLMRunError.self) { try runner.run(prompt: VLMPrompt(inputIDs: [1, 15, 27]), video: video) }
        #expect(throws: VLMRunError.self) { try runner.run(prompt: VLMPrompt(inputIDs: [1, 157, 158, 27]), video: video) }
    }

    /// Video methods run through the runner with their own hooks: VidCom² cuts the pooled rows before
    /// the LLM, DyCoke also re-selects the cache rows at each decoding step; the runner's tokens equal the
    /// model API's `generate` given the same hooks.
    @Test func videoMethodsRunThroughTheRunner() throws {
        let runner = try VLMRunner(folder: Self.fixture)
        let video = try runner.prepare(video: try VLMRunner.loadVideo(path: Self.videos + "/clip.gif", frames: 6))
        let prompt = VLMPrompt(inputIDs: [1, 15, 158, 27, 33])
        for (method, parameters) in [("vidcom2", [String: String]()), ("dycoke", ["l": "1", "k": "0.7", "p": "0.5"])] {
            let adapter = method == "vidcom2" ? VideoVidCom2Compression.adapter : VideoDyCokeCompression.adapter
            let c = try adapter.make(budget: .ratio(0.25), parameters: parameters)
            let r = try runner.run(prompt: prompt, video: video, compression: c, maxNewTokens: 3)
            #expect(r.method == method && r.visualTokensTotal == 6 * 9 + 1)
            #expect(r.visualTokensKept < 6 * 9, "\(method) kept \(r.visualTokensKept)")
            #expect(r.keptIndices.count == r.visualTokensKept && r.keptIndices.allSatisfy { (0..<(6 * 9)).contains($0) }, "\(method): \(r.keptIndices) \(r.visualTokensKept)")
            let again = try adapter.make(budget: .ratio(0.25), parameters: parameters)
            let (tokens, _) = try runner.model.generate(inputIDs: prompt.inputIDs, images: [], videos: [video.llava], maxNewTokens: 3,
                                                        stopTokens: [], hook: again.prefillHook, videoHook: again.videoHook,
                                                        decodeHook: again.decodeHook)
            #expect(r.generatedIDs == Array(tokens.prefix(r.generatedIDs.count)), "\(method)")
            if method == "dycoke" {
                #expect(c.report().notes.contains { $0.contains("decode steps re-selected") })
                // The run's own notes include what decoding read (the report is taken after the last step).
                #expect(r.decodeSteps == 2 && r.notes.contains { $0.contains("K/V bytes read over 2 decode steps") }, "\(r.decodeSteps) \(r.notes)")
            }
        }
    }

    @Test func modelsWithoutAVideoPathAreRefused() throws {
        let runner = try runBuiltinRunner.get()
        #expect(!runner.takesVideo && runner.videoPreprocessor == nil)
        let clip = try VLMRunner.loadVideo(path: Self.videos + "/frames", frames: 2)
        #expect(throws: VLMRunError.self) { try runner.prepare(video: clip) }
        #expect(throws: VLMRunError.self) { try runner.videoPrompt("what moves?") }
    }

    /// Without video_preprocessor_config.json the class defaults at the tower's size are used (noted on
    /// video runs only); an unreadable one fails video runs, naming the file, and leaves image runs alone.
    @Test func videoPreprocessorConfigAbsentOrBroken() throws {
        let folder = try Self.modelWithTokenizer()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let config = folder + "/video_preprocessor_config.json"
        try FileManager.default.removeItem(atPath: config)
        let clip = try VLMRunner.loadVideo(path: Self.videos + "/frames", frames: 2)
        let runner = try VLMRunner(folder: folder)
        let pre = try #require(runner.videoPreprocessor)
        #expect(pre.size == PixelSize(height: 35, width: 35) && pre.imageMean == ImagePreprocessor.openAIClipMean)
        let video = try runner.prepare(video: clip)
        let r = try runner.run(prompt: try runner.videoPrompt("what?", raw: true), video: video, maxNewTokens: 1)
        #expect(r.notes.contains { $0.contains("no video_preprocessor_config.json") })
        let image = try runner.prepare(try VLMRunner.loadImage(path: Self.fixture + "/image_b.png"))
        let ri = try runner.run(prompt: VLMPrompt(inputIDs: [1, 157, 27]), image: image, maxNewTokens: 1)
        #expect(!ri.notes.contains { $0.contains("video_preprocessor_config") })

        try Data(#"{"size": {"shortest_edge": 35}}"#.utf8).write(to: URL(fileURLWithPath: config))
        let broken = try VLMRunner(folder: folder)
        _ = try broken.run(prompt: VLMPrompt(inputIDs: [1, 157, 27]), image: image, maxNewTokens: 1)
        do {
            _ = try broken.prepare(video: clip)
            Issue.record("a broken video_preprocessor_config.json was accepted")
        } catch let e as VLMRunError {
            #expect(e.message.contains("video_preprocessor_config.json") && e.message.contains("size"), "\(e)")
        }
    }

    // MARK: the command line

    /// The `tokc` executable the test build made (next to the test bundle).
    static func tokc() throws -> String {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent("tokc").path
        for p in [beside, runPath(".build/debug/tokc")] where FileManager.default.isExecutableFile(atPath: p) { return p }
        throw VLMRunError("tokc executable not found beside the test bundle or in .build/debug (build with swift build --build-tests)")
    }

    static func tokcRun(_ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: try tokc())
        p.arguments = ["run"] + arguments
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        try p.run()
        let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
    }

    /// `tokc run --video` writes the logits the model API gives for the same sampled frames.
    @Test func commandLineMatchesTheModelAPI() throws {
        let folder = try Self.modelWithTokenizer()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let logits = folder + "/logits.safetensors", map = folder + "/keep.png"
        let e = try Self.expected()
        let rawPrompt = try #require(e["raw_prompt"] as? String)
        for path in [Self.videos + "/frames", Self.videos + "/clip.mp4"] {
            let r = try Self.tokcRun(["--model", folder, "--video", path, "--frames", "4", "--raw", "--prompt", rawPrompt,
                                      "--max-new-tokens", "2", "--logits-out", logits, "--keep-map", map, "--json", "--threads", "1"])
            #expect(r.status == 0, "\(r.stderr)")
            let json = try #require(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any])
            #expect(json["frame_indices"] as? [Int] == [0, 1, 3, 5] && json["total_frames"] as? Int == 6)
            let efficiency = try #require(json["efficiency"] as? [String: Any])
            #expect(efficiency["visual_tokens_total"] as? Int == 37)
            // The same frames through the model API.
            let clip = try VideoClip.load(path: path, frames: 4)
            let pixels = try VideoPreprocessor.load(folder: Self.fixture)(clip.frames)
            let model = try VLMRunner(folder: Self.fixture).model
            let ids = try #require(e["raw_ids"] as? [Int])
            let p = try model.prefill(inputIDs: ids, images: [], videos: [LlavaVideo(frames: pixels)])
            let written = try SafetensorsFile(path: logits).tensor("logits")
            let d = Self.maxAbs(written, p.logits)
            print("tokc run --video \((path as NSString).lastPathComponent) vs the model API: max |Δlogits| = \(d)")
            #expect(written.count == 160 && d <= 1e-5, "\(path): tokc logits differ from the model API by \(d)")
            let picture = try RGBImage.load(path: map)
            #expect(picture.width == 4 * 35 + 3 * 4 && picture.height == 35)
        }
    }

    @Test func commandLineErrorsExitWithStatusOne() throws {
        let folder = try Self.modelWithTokenizer()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let garbage = folder + "/garbage.mp4"
        try Data("no video here".utf8).write(to: URL(fileURLWithPath: garbage))
        let cases: [([String], String)] = [
            (["--model", folder, "--video", Self.videos + "/clip.mp4", "--frames", "7", "--prompt", "q"], "asked for 7 frames but the video has only 6"),
            (["--model", folder, "--video", garbage, "--prompt", "q"], "cannot open the video file"),
            (["--model", folder, "--video", folder + "/none", "--prompt", "q"], "no such file or folder"),
            (["--model", folder, "--frames", "3", "--prompt", "q"], "--frames samples the frames of --video"),
            (["--model", runPath("builtin/models/llava"), "--video", Self.videos + "/clip.gif", "--prompt", "q"], "has no video path"),
        ]
        for (arguments, message) in cases {
            let r = try Self.tokcRun(arguments)
            #expect(r.status == 1 && r.stderr.contains(message), "\(arguments): status \(r.status), \(r.stderr)")
        }
    }
}
