import ArgumentParser
import Evaluation
import Foundation
import ModelIO
import Models
import Runtime
import Tensors
import TokenCompression

struct RunCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Answer one image (or, with LLaVA-OneVision, video) question, or classify an image with a ViT, optionally compressing tokens.",
        discussion: """
        With no --model, runs the built-in model (builtin/models/llava); with no --image/--prompt, \
        answers the first bundled sample (builtin/tasks/scenes/sample.jsonl) and prints the expected \
        answer. Prints the answer and one efficiency line; progress goes to stderr.

        With a ViT/DeiT image-classification folder (ViTForImageClassification, DeiTForImageClassification[WithTeacher]) \
        as --model, classifies --image with the folder's preprocessing and prints the top classes, the tokens each \
        block ran on, GFLOPs and timings. --method tome|evit|sparse_tuning runs inside the blocks with its --param \
        (tome: r=8, schedule=decreasing; evit: keep_rate=0.7; sparse_tuning: adapters=FILE.safetensors); \
        --merge-map OUT.png draws which patches became one token.

        With a LLaVA-OneVision folder, --video PATH answers --prompt about a video: PATH is a video file \
        (MP4/WebM/MKV/AVI/GIF, decoded with FFmpeg) or a folder of frame images (PNG/JPEG, in name order). \
        --frames N samples N frames uniformly as lmms-eval does (linspace(0, total-1, N) truncated); without it \
        every frame is used. With --raw, <video> marks the video in the prompt. Decoder-side methods run on the \
        video's tokens; --keep-map draws the sampled frames side by side with dropped tokens dimmed.
        """
    )

    @Option(name: .long, help: "LLaVA model folder (default: builtin/models/llava).")
    var model: String?
    @Option(name: .long, help: "Image file (PNG/JPEG).")
    var image: String?
    @Option(name: .long, help: "LLaVA-OneVision: video file (MP4/WebM/MKV/AVI/GIF) or folder of frame images.")
    var video: String?
    @Option(name: .long, help: "With --video: frames to sample uniformly (default: every frame).")
    var frames: Int?
    @Option(name: .long, help: "Question (wrapped in the chat template unless --raw).")
    var prompt: String?
    @Option(name: .long, help: "Compression method (registry name).")
    var method: String?
    @Option(name: .long, help: "Visual tokens to keep.")
    var keep: Int?
    @Option(name: .long, help: "Fraction of the visual tokens to keep, in (0, 1].")
    var ratio: Double?
    @Option(name: .long, parsing: .singleValue, help: "Method parameter NAME=VALUE (repeatable).")
    var param: [String] = []
    @Option(name: .long, help: "Maximum generated tokens.")
    var maxNewTokens = 16
    @Flag(name: .long, help: "Print a JSON object instead of text.")
    var json = false
    @Option(name: .long, help: "Write the prefill's final-position logits (F32 [vocab]) to this .safetensors file.")
    var logitsOut: String?
    @Option(name: .long, help: "Write the keep map (dropped patches dimmed) to this PNG.")
    var keepMap: String?
    @Flag(name: .long, help: "Use the prompt as given (<image> marks the image), no chat template.")
    var raw = false
    @Option(name: .long, help: "Threads for BLAS and parallel work (default: all cores).")
    var threads: Int?
    @Option(name: .long, help: "Classifier: write the merge map (each final token's patches as one region) to this PNG.")
    var mergeMap: String?
    @Option(name: .long, help: "Classifier: how many top classes to print.")
    var topK = 5

    /// Option checks (in `run`, not `validate`, so that bad input exits with status 1 like every other error).
    func checkOptions() throws {
        if keep != nil && ratio != nil { throw VLMRunError("give either --keep or --ratio, not both") }
        if let k = keep, k < 1 { throw VLMRunError("--keep must be at least 1, got \(k)") }
        if let r = ratio, !(r > 0 && r <= 1) { throw VLMRunError("--ratio must be in (0, 1], got \(r)") }
        if maxNewTokens < 1 { throw VLMRunError("--max-new-tokens must be at least 1") }
        if let t = threads, t < 1 { throw VLMRunError("--threads must be positive") }
        if frames != nil && video == nil { throw VLMRunError("--frames samples the frames of --video; give --video PATH") }
        if let f = frames, f < 1 { throw VLMRunError("--frames must be at least 1, got \(f)") }
        if video != nil && image != nil { throw VLMRunError("give either --image or --video, not both") }
        if video != nil && prompt == nil { throw VLMRunError("--video needs --prompt (the bundled sample is an image question)") }
    }

    /// Checks that only a LLaVA run needs.
    func checkLlavaOptions() throws {
        if (keep != nil || ratio != nil) && method == nil { throw VLMRunError("--keep/--ratio need --method") }
        if method != nil && keep == nil && ratio == nil { throw VLMRunError("--method needs a budget: --keep N or --ratio R") }
        if mergeMap != nil { throw VLMRunError("--merge-map draws a ViT method's merged tokens; with a LLaVA model use --keep-map") }
    }

    func run() throws {
        do {
            try checkOptions()
            try applyThreads(threads)
            if let model, ClassifierRunner.isClassifier(folder: model) {
                if video != nil { throw VLMRunError("\(model) is an image classifier: --video needs a LLaVA-OneVision model") }
                try executeClassifier(folder: model)
            } else {
                try checkLlavaOptions()
                try execute()
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }

    func execute() throws {
        // The method first: an unknown or unwired method fails before the model loads.
        var compression: ModelCompression?
        if let method {
            let budget: Budget = keep.map { .count($0) } ?? .ratio(ratio!)
            compression = try MethodCatalog.compression(method: method, budget: budget, parameters: try MethodParameters.parse(param, method: method).values)
        }
        let folder: String
        if let model {
            folder = model
        } else {
            folder = try VLMPaths.defaultModelFolder()
        }
        if let video {
            return try executeVideo(folder: folder, path: video, compression: compression)
        }
        // The bundled sample fills what is missing; its expected answer only applies when it gave both.
        var sample: VLMSample?
        var imagePath = image
        var question = prompt
        if image == nil || prompt == nil {
            let s = try VLMSample.builtin()[0]
            if image == nil && prompt == nil { sample = s }
            imagePath = imagePath ?? s.imagePath
            question = question ?? s.question
        }
        printError("loading \(folder)")
        let runner = try VLMRunner(folder: folder)
        let picture = try runner.prepare(try VLMRunner.loadImage(path: imagePath!))
        let ids = try runner.prompt(question!, raw: raw)
        printError("running \(compression.map { "\($0.info.name) at \($0.budget)" } ?? "uncompressed") on \(imagePath!)")
        let result = try runner.run(prompt: ids, image: picture, compression: compression, maxNewTokens: maxNewTokens)

        if let logitsOut {
            try result.writeLogits(to: logitsOut)
            printError("logits [\(result.logits.count)] written to \(logitsOut)")
        }
        // Default keep map: bundled sample with a method.
        let mapPath = keepMap ?? ((sample != nil && method != nil) ? "keep-map.png" : nil)
        if let mapPath {
            let picture = try runner.keepMap(kept: result.keptIndices, image: picture)
            do { try picture.writePNG(path: mapPath) } catch { throw VLMRunError("cannot write keep map '\(mapPath)': \(error)") }
            printError("keep map (\(result.visualTokensKept)/\(result.visualTokensTotal) visual tokens kept) written to \(mapPath)")
        }

        if json {
            var extra: [String: Any] = ["model": folder, "image": imagePath!, "prompt": question!]
            if let sample { extra["expected_answer"] = sample.answer; extra["sample_id"] = sample.id }
            if let logitsOut { extra["logits_out"] = logitsOut }
            if let mapPath { extra["keep_map"] = mapPath }
            FileHandle.standardOutput.write(try result.jsonData(extra: extra))
            print()
            return
        }
        for n in result.notes { printError("note: \(n)") }
        print("question: \(question!)")
        print("answer: \(result.text.trimmingCharacters(in: .whitespacesAndNewlines))")
        if let sample { print("expected: \(sample.answer)") }
        print(result.efficiencyLine)
    }

    /// `--video`: frames from the file or folder, the model's video preprocessing and prompt, one run.
    func executeVideo(folder: String, path: String, compression: ModelCompression?) throws {
        printError("loading \(folder)")
        let runner = try VLMRunner(folder: folder)
        _ = try runner.requireVideoPath()  // a model without a video path fails before decoding
        let clip = try VLMRunner.loadVideo(path: path, frames: frames)
        printError("video \(path): \(clip.frames.count) of \(clip.totalFrames) frames (\(clip.frames[0].width)x\(clip.frames[0].height)), indices \(clip.indices)")
        let prepared = try runner.prepare(video: clip)
        let ids = try runner.videoPrompt(prompt!, raw: raw)
        printError("running \(compression.map { "\($0.info.name) at \($0.budget)" } ?? "uncompressed") on \(path)")
        let result = try runner.run(prompt: ids, video: prepared, compression: compression, maxNewTokens: maxNewTokens)
        if let logitsOut {
            try result.writeLogits(to: logitsOut)
            printError("logits [\(result.logits.count)] written to \(logitsOut)")
        }
        if let keepMap {
            let picture = try runner.keepMap(kept: result.keptIndices, video: prepared)
            do { try picture.writePNG(path: keepMap) } catch { throw VLMRunError("cannot write keep map '\(keepMap)': \(error)") }
            printError("keep map (\(result.visualTokensKept)/\(result.visualTokensTotal) visual tokens kept, \(clip.frames.count) frames) written to \(keepMap)")
        }
        if json {
            var extra: [String: Any] = ["model": folder, "video": path, "prompt": prompt!, "frame_indices": clip.indices,
                                        "total_frames": clip.totalFrames]
            if let logitsOut { extra["logits_out"] = logitsOut }
            if let keepMap { extra["keep_map"] = keepMap }
            FileHandle.standardOutput.write(try result.jsonData(extra: extra))
            print()
            return
        }
        for n in result.notes { printError("note: \(n)") }
        print("question: \(prompt!)")
        print("answer: \(result.text.trimmingCharacters(in: .whitespacesAndNewlines))")
        print("video: \(clip.frames.count) of \(clip.totalFrames) frames")
        print(result.efficiencyLine)
    }
}
