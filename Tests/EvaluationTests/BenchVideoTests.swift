import Foundation
import ModelIO
import Models
import Runtime
import Testing
@testable import Evaluation

/// Video lines in bench tasks, the seed's video set and columns, without a model.
@Suite("Bench video tasks and columns")
struct BenchVideoUnitTests {
    let base = URL(fileURLWithPath: "/data/task")

    @Test func videoLinesResolveAgainstTheTaskFolder() throws {
        let text = """
        {"id": "v0", "video": "frames/test-00000", "question": "Which way?", "answer": "left", "type": "direction"}
        {"id": "v1", "video": "/abs/clip.mp4", "frames": 8, "question": "How many?", "answer": 3}
        {"id": "i0", "image": "img/a.png", "question": "Is it red?"}
        """
        let s = try BenchTask.parse(text, name: "t.jsonl", baseDirectory: base)
        #expect(s[0].videoPath == "/data/task/frames/test-00000" && s[0].frames == nil && s[0].imagePath == "")
        #expect(s[0].inputPath == "/data/task/frames/test-00000" && s[0].type == "direction")
        #expect(s[1].videoPath == "/abs/clip.mp4" && s[1].frames == 8 && s[1].answer == "3")
        #expect(s[2].videoPath == nil && s[2].imagePath == "/data/task/img/a.png" && s[2].inputPath == s[2].imagePath)
    }

    @Test func badVideoLinesNameTheLine() {
        for (text, fragment) in [
            ("{\"video\": \"v\", \"image\": \"a.png\", \"question\": \"q\"}", "t.jsonl:1: a line has an 'image' or a 'video', not both"),
            ("{\"video\": \"v\", \"frames\": 0, \"question\": \"q\"}", "t.jsonl:1: field 'frames' must be a whole number ≥ 1"),
            ("{\"video\": \"v\", \"frames\": 2.5, \"question\": \"q\"}", "field 'frames' must be a whole number"),
            ("{\"video\": \"v\", \"frames\": \"8\", \"question\": \"q\"}", "field 'frames' must be a whole number"),
            ("{\"image\": \"a.png\", \"frames\": 4, \"question\": \"q\"}", "t.jsonl:1: field 'frames' needs a 'video'"),
            ("{\"video\": \"\", \"question\": \"q\"}", "t.jsonl:1: field 'video' must be a non-empty path"),
            ("{\"question\": \"q\"}", "missing string field 'image' (or 'video')"),
        ] {
            let e = #expect(throws: BenchError.self) { try BenchTask.parse(text, name: "t.jsonl", baseDirectory: base) }
            #expect(e?.description.contains(fragment) == true, "\(e?.description ?? "") should contain \(fragment)")
        }
    }

    /// The seed's set by default, only `random` added as a baseline, unknown names refused, and a
    /// known method that has no way into the model kept (its rows fail with the reason).
    @Test func videoPlanDefaultsToTheSeedsSet() throws {
        let plan = try BenchPlan(methods: nil, budgets: BenchVideo.budgets, sampleCount: 2, video: true)
        #expect(plan.methods == ["random", "fastv", "pdrop", "sparsevlm", "dycoke", "vidcom2"])
        #expect(plan.methods.allSatisfy { MethodCatalog.entry(named: $0) != nil })
        #expect(BenchVideo.budgets.map(\.label) == ["50%", "25%", "10%"])
        #expect(plan.items.count == 2 * (1 + 6 * 3))
        let some = try BenchPlan(methods: ["FastV"], budgets: [.ratio(0.25)], sampleCount: 1, video: true)
        #expect(some.methods == ["fastv", "random"])
        let e = #expect(throws: BenchError.self) { try BenchPlan(methods: ["nosuch"], budgets: [.ratio(0.25)], sampleCount: 1, video: true) }
        #expect(e?.description.contains("unknown method 'nosuch'") == true)
        // An image sweep keeps its strict check: a video method without a LLaVA adapter is refused there.
        #expect(throws: BenchError.self) { try BenchPlan(methods: ["fastvid"], budgets: [.ratio(0.25)], sampleCount: 1) }
    }

    @Test func missingBuiltinsAreNamed() throws {
        let e = #expect(throws: BenchError.self) {
            try BenchVideo.builtin(resolve: { $0 == BenchVideo.builtinTask ? "/t/test.jsonl" : nil })
        }
        #expect(e?.description.contains("model 'builtin/models/llava-onevision-video'") == true && e?.description.contains("task '") == false)
        let both = #expect(throws: BenchError.self) { try BenchVideo.builtin(resolve: { _ in nil }) }
        #expect(both?.description.contains("task 'builtin/tasks/videos/test.jsonl' and model") == true)
        // A --model given stands in for the built-in one.
        let found = try BenchVideo.builtin(model: "/m", resolve: { $0 == BenchVideo.builtinTask ? "/t/test.jsonl" : nil })
        #expect(found.task == "/t/test.jsonl" && found.model == "/m")
    }

    /// LLM generation latency, total latency and their reductions, throughput over total time and
    /// the accuracy change, from rows with known numbers.
    @Test func summaryHasTheVideoColumns() throws {
        func rec(_ method: String, _ sample: Int, llm: Double, total: Double, correct: Bool) -> BenchRecord {
            var r = benchRecord(method: method, budget: method == "uncompressed" ? "100%" : "25%", sample: sample, prefill: llm, correct: correct)
            r.frames = 8
            r.llmMs = llm
            r.totalMs = total
            return r
        }
        let records = [rec("uncompressed", 0, llm: 40, total: 100, correct: true), rec("uncompressed", 1, llm: 60, total: 300, correct: true),
                       rec("fastv", 0, llm: 20, total: 50, correct: true), rec("fastv", 1, llm: 30, total: 150, correct: false)]
        let rows = BenchSummary.rows(records)
        let (u, f) = (rows[0], rows[1])
        #expect(u.frames == 8 && u.llmMs == 50 && u.totalMs == 200 && u.accuracyChange == 0)
        #expect(f.llmMs == 25 && f.llmReduction == 50 && f.totalMs == 100 && f.totalReduction == 50)
        // 2 samples in 0.4 s of total time; 2 in 0.2 s.
        #expect(abs(u.throughput - 5) < 1e-9 && abs(f.throughput - 10) < 1e-9 && abs(f.throughputGain - 2) < 1e-9)
        #expect(f.accuracy == 50 && f.accuracyChange == -50)
        let md = BenchOutput.videoMarkdown(rows)
        #expect(md.hasPrefix("| Method | Budget | Frames | Tokens (req/got) | LLM gen. ms (↓%) | Total ms (↓%) | Peak mem (↓%) | Throughput (×) | Accuracy | Δ acc. (pts)"))
        #expect(md.contains("| fastv | 25% | 8 | 25/25.0 | 25.0 (↓50%) | 100.0 (↓50%) |") && md.contains("| 50.0% | -50.0 |"))
        let csv = BenchOutput.csv(rows).split(separator: "\n")
        let header = csv[0].split(separator: ",").map(String.init)
        let fastv = csv[2].split(separator: ",", omittingEmptySubsequences: false).map(String.init)
        for (column, value) in [("frames", "8"), ("llm_generation_ms", "25"), ("total_latency_ms", "100"), ("accuracy_change_pts", "-50"),
                                ("throughput_samples_per_s", "10")] {
            let i = try #require(header.firstIndex(of: column))
            #expect(fastv[i] == value, "\(column): \(fastv[i])")
        }
        // Rows of an older run (no total recorded) keep the end-to-end throughput and show no latencies.
        let old = BenchSummary.rows([benchRecord(method: "uncompressed", budget: "100%", sample: 0, prefill: 10, correct: true)])
        #expect(old[0].llmMs == nil && old[0].totalMs == nil && abs(old[0].throughput - 1000.0 / 15) < 1e-9)
    }

    @Test func framesChangeRefusesResume() {
        var a = BenchManifest(model: "/m", weightsSHA256: [:], task: "/t", samples: 2, methods: ["fastv"], parameters: [:], budgets: ["25%"],
                              seed: 0, maxNewTokens: 2, repeats: 1, warmup: 0, shard: "0/1", machine: "x", cores: 1, threads: 1,
                              toolkitVersion: "test", date: "d")
        a.kind = BenchVideo.kind
        var b = a
        b.frames = 8
        #expect(b.resumeConflicts(with: a) == ["--frames all → 8"])
        #expect(a.isVideo && !a.isClassifier)
    }
}

/// `tokc bench` on video tasks with the tiny LLaVA-OneVision fixture: rows, columns, keep-map
/// strips, resume and failing rows.
@Suite("Bench video sweeps", .serialized)
struct BenchVideoSweepTests {
    static let fixture = benchRepoRoot + "/Tests/Fixtures/models/llava-onevision"
    static let videos = benchRepoRoot + "/Tests/Fixtures/videos"

    /// The fixture model with the video fixtures' tokenizer and chat template, in `dir/model`.
    static func model(in dir: String) throws -> String {
        let fm = FileManager.default
        let folder = dir + "/model"
        try fm.createDirectory(atPath: folder, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors", "preprocessor_config.json", "video_preprocessor_config.json"] {
            try fm.createSymbolicLink(atPath: folder + "/" + f, withDestinationPath: fixture + "/" + f)
        }
        for f in ["tokenizer.json", "tokenizer_config.json"] {
            try fm.copyItem(atPath: videos + "/tokenizer/" + f, toPath: folder + "/" + f)
        }
        return folder
    }

    /// A task in `dir`: sample 0 a folder of 6 frames (relative to the JSONL), sample 1 an MP4
    /// sampled to 4 frames, then `extra` lines.
    static func task(in dir: String, extra: [String] = []) throws -> String {
        let frames = dir + "/frames/test-00000"
        try FileManager.default.createDirectory(atPath: frames, withIntermediateDirectories: true)
        for f in 0..<6 { try FileManager.default.copyItem(atPath: videos + "/frames/frame_0\(f).png", toPath: frames + "/frame_0\(f).png") }
        let lines = [#"{"id": "v0", "video": "frames/test-00000", "question": "Which way does it move?", "answer": "left", "type": "direction"}"#,
                     #"{"id": "v1", "video": "\#(videos)/clip.mp4", "frames": 4, "question": "How many objects?", "answer": "2", "type": "count"}"#] + extra
        let path = dir + "/test.jsonl"
        try Data(lines.joined(separator: "\n").utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    static func options(model: String, task: String, out: String, methods: [String]) -> BenchOptions {
        var o = BenchOptions(model: model, task: task)
        o.methods = methods
        o.budgets = [.ratio(0.5)]
        o.budgetsGiven = true
        o.settings.maxNewTokens = 2
        o.settings.repeats = 1
        o.settings.warmup = 0
        o.out = out
        o.hashWeights = false
        o.progress = false
        o.threads = 1
        // The fixture has 2 decoder layers: cut after the first (the default layer 2 is never reached).
        for m in methods + ["random"] where ["fastv", "random"].contains(m) { o.settings.parameters[m] = ["layer": "1"] }
        return o
    }

    @Test func videoSweepRecordsTheSeedsColumnsAndResumes() throws {
        let dir = benchTempFolder("video")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let out = dir + "/out"
        // fastv acts in the decoder (runs on the video's rows); pooling acts on image tiles before the
        // projector, which a video prompt refuses: its rows fail with the reason and stay in the table.
        let o = Self.options(model: try Self.model(in: dir), task: try Self.task(in: dir), out: out, methods: ["fastv", "pooling"])
        var log: [String] = []
        let first = try BenchDriver.run(o) { log.append($0) }
        #expect(first.ran == 6 && first.failed == 2 && first.skipped == 0, "\(first.countsLine)")
        let ok = first.records.filter { $0.error == nil }
        #expect(Set(ok.map(\.method)) == ["uncompressed", "fastv", "random"])
        for r in ok {
            // Frames and tokens of each sample: 6 (or 4) frames × 3×3 pooled cells + one newline.
            #expect(r.frames == (r.sampleIndex == 0 ? 6 : 4) && r.visualTokens == (r.sampleIndex == 0 ? 55 : 37), "\(r.key)")
            let llm = try #require(r.llmMs), total = try #require(r.totalMs)
            #expect(llm > 0 && llm <= r.endToEndMs && r.endToEndMs <= total, "\(r.key): llm \(llm), run \(r.endToEndMs), total \(total)")
            #expect(r.prefillMs <= r.endToEndMs && r.peakTensorBytes > 0 && r.kvCacheBytes > 0)
            if r.method != BenchPlan.uncompressed { #expect(r.achievedTokens < r.visualTokens && r.klDivergence != nil, "\(r.key): \(r.achievedTokens)/\(r.visualTokens) \(r.notes)") }
        }
        let pooling = first.records.filter { $0.method == "pooling" }
        #expect(pooling.count == 2 && pooling.allSatisfy { $0.error?.contains("video") == true }, "\(pooling.map(\.error))")

        // The summary: the seed's columns, throughput = samples / total time, accuracy change against uncompressed.
        let manifest = try #require(BenchOutput.readManifest(folder: out))
        #expect(manifest.isVideo && manifest.methods == ["fastv", "pooling", "random"] && manifest.budgets == ["50%"])
        let rows = BenchSummary.rows(first.records, methods: manifest.methods, budgets: manifest.budgets)
        let base = try #require(rows.first { $0.method == BenchPlan.uncompressed })
        let baseRecords = ok.filter { $0.method == BenchPlan.uncompressed }
        #expect(base.frames == 5 && base.llmMs != nil && base.totalMs! >= base.llmMs!)
        #expect(abs(base.throughput - 2 / (baseRecords.map { $0.totalMs! }.reduce(0, +) / 1000)) < 1e-9)
        let fastv = try #require(rows.first { $0.method == "fastv" })
        #expect(fastv.accuracyChange == fastv.accuracy! - base.accuracy! && fastv.llmReduction != nil)
        #expect(rows.first { $0.method == "pooling" }?.errors == 2)
        #expect(first.markdown.hasPrefix("| Method | Budget | Frames |") && first.markdown.contains("FAILED (2 of 2 rows)"))
        let csv = try String(contentsOfFile: out + "/results.csv", encoding: .utf8)
        #expect(csv.contains("llm_generation_ms") && csv.contains("total_latency_ms") && csv.contains("accuracy_change_pts"))
        let json = try String(contentsOfFile: out + "/results.json", encoding: .utf8)
        #expect(json.contains("\"llmMs\"") && json.contains("\"totalMs\"") && json.contains("\"kind\" : \"video\""))

        // Keep maps of video rows are strips of the frames at the tower's 35 px.
        let strip = try RGBImage.load(path: out + "/keepmaps/" + BenchKeepMaps.fileName(sample: 0, method: "fastv", budget: "50%"))
        #expect(strip.width == 6 * 35 + 5 * 4 && strip.height == 35)
        let four = try RGBImage.load(path: out + "/keepmaps/" + BenchKeepMaps.fileName(sample: 1, method: "uncompressed", budget: "100%"))
        #expect(four.width == 4 * 35 + 3 * 4)
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        #expect(html.contains("<img class=\"strip\"") && html.contains("<th data-col=\"2\">Frames</th>") && html.contains("LLM gen. ms"))
        // Plots against the LLM and total latencies, TFLOPs and KV cache.
        #expect(html.components(separatedBy: "<svg").count - 1 == 4 && html.contains("against llm generation latency (ms)"))

        // Resume: the successful rows are kept, the failed ones are retried (and fail again).
        let second = try BenchDriver.run(o)
        #expect(second.skipped == 6 && second.ran == 0 && second.failed == 2, "\(second.countsLine)")
        #expect(second.records.filter { $0.error == nil }.map(\.totalMs) == ok.map(\.totalMs))
        // Another --frames is another run: refused rather than mixed in.
        var other = o
        other.frames = 2
        let e = #expect(throws: BenchError.self) { try BenchDriver.run(other) }
        #expect(e?.description.contains("--frames all → 2") == true)
    }

    /// The runner's split of the prefill (decoder start to logits) changes nothing the model computes:
    /// the same logits as a prefill with no hook at all, with and without a method's own hook.
    @Test func theDecoderClockIsInvisibleToTheModel() throws {
        let dir = benchTempFolder("video-clock")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let runner = try VLMRunner(folder: try Self.model(in: dir))
        let video = try runner.prepare(video: try VLMRunner.loadVideo(path: Self.videos + "/frames"))
        let prompt = try runner.videoPrompt("Which way does it move?")
        let plain = try runner.model.prefill(inputIDs: prompt.inputIDs, images: [], videos: [video.llava])
        let run = try runner.run(prompt: prompt, video: video, maxNewTokens: 3)
        #expect(run.logits.values == plain.logits.values)
        #expect(run.llmPrefillMs > 0 && run.llmPrefillMs <= run.prefillMs)
        #expect(abs(run.llmGenerationMs - (run.llmPrefillMs + run.decodeMsPerToken * Double(run.decodeSteps))) < 1e-9)
        let c = try MethodCatalog.compression(method: "fastv", budget: .ratio(0.25), parameters: ["layer": "1"])
        let hooked = try runner.model.prefill(inputIDs: prompt.inputIDs, images: [], videos: [video.llava], hook: c.prefillHook)
        let compressed = try runner.run(prompt: prompt, video: video,
                                        compression: try MethodCatalog.compression(method: "fastv", budget: .ratio(0.25), parameters: ["layer": "1"]),
                                        maxNewTokens: 1)
        #expect(compressed.logits.values == hooked.logits.values && compressed.visualTokensKept < compressed.visualTokensTotal)
        #expect(compressed.llmPrefillMs > 0 && compressed.llmPrefillMs <= compressed.prefillMs)
    }

    @Test func aMissingVideoFailsItsRowsNotTheSweep() throws {
        let dir = benchTempFolder("video-missing")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let task = try Self.task(in: dir, extra: [#"{"id": "gone", "video": "frames/test-00099", "question": "q", "answer": "a"}"#])
        var log: [String] = []
        let outcome = try BenchDriver.run(Self.options(model: try Self.model(in: dir), task: task, out: dir + "/out", methods: ["random"])) {
            log.append($0)
        }
        #expect(log.contains { $0.contains("1 of 3 task videos cannot be read") && $0.contains("test-00099") }, "\(log)")
        let gone = outcome.records.filter { $0.sampleID == "gone" }
        #expect(gone.count == 2 && gone.allSatisfy { $0.error?.contains("test-00099") == true }, "\(gone.map(\.error))")
        #expect(outcome.failed == 2 && outcome.ran == 4)
    }

    @Test func videoTasksNeedAModelWithAVideoPath() throws {
        let dir = benchTempFolder("video-llava")
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let o = Self.options(model: benchRepoRoot + "/builtin/models/llava", task: try Self.task(in: dir), out: dir + "/out", methods: ["fastv"])
        let e = #expect(throws: BenchError.self) { try BenchDriver.run(o) }
        #expect(e?.description.contains("has video lines") == true && e?.description.contains("no video path") == true, "\(e?.description ?? "")")
        // A task none of whose videos exists stops before loading anything.
        try Data(#"{"video": "nowhere", "question": "q"}"#.utf8).write(to: URL(fileURLWithPath: dir + "/none.jsonl"))
        let none = #expect(throws: BenchError.self) { try BenchDriver.run(Self.options(model: Self.fixture, task: dir + "/none.jsonl", out: dir + "/o2", methods: ["fastv"])) }
        #expect(none?.description.contains("none of its 1 videos can be read") == true)
        var zero = Self.options(model: Self.fixture, task: dir + "/none.jsonl", out: dir + "/o3", methods: ["fastv"])
        zero.frames = 0
        let frames = #expect(throws: BenchError.self) { try BenchDriver.run(zero) }
        #expect(frames?.description.contains("--frames must be at least 1") == true)
        var images = Self.options(model: Self.fixture, task: benchRepoRoot + "/builtin/tasks/scenes/sample.jsonl", out: dir + "/o4", methods: ["fastv"])
        images.frames = 4
        let noVideo = #expect(throws: BenchError.self) { try BenchDriver.run(images) }
        #expect(noVideo?.description.contains("--frames samples the frames of video lines") == true)
    }
}
