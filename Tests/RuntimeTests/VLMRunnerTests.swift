import Foundation
import ModelIO
import Models
import Tensors
import Testing
import TokenCompression
@testable import Runtime

/// Repository root, found from this file (tests may run from any directory).
let runRepoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path
func runPath(_ relative: String) -> String { (runRepoRoot as NSString).appendingPathComponent(relative) }

/// The built-in model loads in well under a second; share one runner across the suite's tests.
let runBuiltinRunner: Result<VLMRunner, Error> = Result { try VLMRunner(folder: runPath("builtin/models/llava")) }

/// A test-only vision-side "method": keeps every `stride`-th patch.
final class RunStrideVisionHook: VisionFeatureHook {
    let stride: Int
    var kept: [Int] = []
    init(stride: Int) { self.stride = stride }
    var captureRequest: VisionCaptureRequest { .none }
    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        try image.tiles.map { tile in
            let idx = Array(Swift.stride(from: 0, to: tile.features.rows, by: stride))
            kept = idx
            return try KeptFeatures.selecting(idx, of: tile)
        }
    }
}

/// A test-only LLM-side "method": before layer `layer`, keeps the text rows and the first `visual` image rows.
final class RunTruncatePrefillHook: PrefillHook {
    let layer: Int, visual: Int
    init(layer: Int, visual: Int) { self.layer = layer; self.visual = visual }
    func beforeLayer(_ l: Int, state: PrefillState) throws -> PruneDecision? {
        guard l == layer, let span = state.imageSpans.first else { return nil }
        let rows = state.originalIndices.indices.filter { i in
            let o = state.originalIndices[i]
            return !span.contains(o) || o < span.lowerBound + visual
        }
        return PruneDecision(keptRows: rows)
    }
}

/// A hook that must never be called (no-op budgets run uncompressed).
final class RunForbiddenVisionHook: VisionFeatureHook {
    var captureRequest: VisionCaptureRequest { .none }
    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        throw VLMRunError("hook called although the budget is a no-op")
    }
}

func runCompression(_ info: MethodInfo, budget: Budget, prefill: PrefillHook? = nil, vision: VisionFeatureHook? = nil,
                    report: @escaping () -> CompressionRunReport? = { nil }) -> ModelCompression {
    ModelCompression(info: info, budget: budget, prefillHook: prefill, visionHook: vision) {
        report() ?? CompressionRunReport(visualTokensBefore: 0, requestedVisualTokens: 0, achievedVisualTokens: 0, keptIndices: [],
                                         positionPolicy: .keepOriginal, scoringSeconds: 0, notes: [])
    }
}

@Suite struct RunVLMRunnerTests {
    func builtin() throws -> (VLMRunner, VLMSample, VLMPreparedImage, VLMPrompt) {
        let runner = try runBuiltinRunner.get()
        let sample = try VLMSample.load(jsonl: runPath("builtin/tasks/scenes/sample.jsonl"))[0]
        let image = try runner.prepare(try VLMRunner.loadImage(path: sample.imagePath))
        return (runner, sample, image, try runner.prompt(sample.question))
    }

    @Test func builtinSampleUncompressed() throws {
        let (runner, sample, image, prompt) = try builtin()
        #expect(runner.loadNotes.isEmpty)
        #expect(prompt.rendered?.hasPrefix("<s>USER: <image>\n") == true)
        #expect(prompt.inputIDs.filter { $0 == runner.model.config.imageTokenID }.count == 1)
        let r = try runner.run(prompt: prompt, image: image, compression: nil, maxNewTokens: 3)
        #expect((1...3).contains(r.generatedIDs.count))
        #expect(r.visualTokensTotal == 256 && r.visualTokensKept == 256)
        #expect(r.keptIndices == Array(0..<256) && !r.positionsRenumbered)
        #expect(r.promptTokens == prompt.inputIDs.count - 1 + 256)
        // The trace: every tower layer on 1 + 256 rows (6 layers), every decoder layer on all rows.
        #expect(r.trace.towerRowsPerTile == [Array(repeating: 257, count: 6)] && r.trace.towerRowsPerPass == nil)
        #expect(r.trace.projectedRows == 256 && r.trace.insertedRows == 0)
        #expect(r.trace.decoderRowsPerLayer == Array(repeating: r.promptTokens, count: 4))
        #expect(r.trace.decoderVisualRowsPerLayer == Array(repeating: 256, count: 4))
        #expect(r.logits.shape == [380])
        // 4 layers × (K + V) × tokens × 256 floats × 4 bytes.
        #expect(r.kvCacheBytes == 4 * 2 * r.promptTokens * 256 * 4)
        #expect(r.prefillMs > 0 && r.peakTensorBytes > 0 && r.processPeakRSS > 0)
        #expect(r.method == nil && r.methodReport == nil)
        // The shipped checkpoint answers the first bundled sample correctly (template, tokenizer and image path agree).
        #expect(r.text.trimmingCharacters(in: .whitespaces) == sample.answer)
        let json = try JSONSerialization.jsonObject(with: try r.jsonData()) as? [String: Any]
        #expect((json?["generated_ids"] as? [Int]) == r.generatedIDs)
        #expect(((json?["efficiency"] as? [String: Any])?["visual_tokens_total"] as? Int) == 256)
        #expect(r.efficiencyLine.hasPrefix("visual tokens 256/256, prefill "))
    }

    /// MustDrop's window merge reorders the visual rows before the LLM: the keep map is drawn in
    /// patch space, a kept merged row as its whole window (4×4 windows on the 16×16 grid).
    @Test func mustDropKeepMapUsesTheMergedRowsPatches() throws {
        let (runner, _, image, prompt) = try builtin()
        let c = try MustDropCompression.adapter.make(budget: .count(64), parameters: ["window": "4", "merge_threshold": "-1"])
        let r = try runner.run(prompt: prompt, image: image, compression: c, maxNewTokens: 1)
        #expect(r.visualTokensTotal == 256 && !r.keptIndices.isEmpty && r.visualTokensKept <= 16)
        let windows = Dictionary(grouping: r.keptIndices) { ($0 / 64) * 4 + ($0 % 16) / 4 }
        #expect(windows.values.allSatisfy { $0.count == 16 } && Set(r.keptIndices).count == r.keptIndices.count, "\(r.keptIndices)")
        #expect(r.notes.contains { $0.contains("16 of 16 4×4 windows merged") })
        // The merge after tower layer 0 leaves CLS + 16 rows for the later layers and the projector.
        #expect(r.trace.towerRowsPerTile == [[257, 17, 17, 17, 17, 17]] && r.trace.projectedRows == 16)
        #expect(r.trace.decoderVisualRowsPerLayer[0] == 16 && r.trace.positionsRenumbered)
    }

    @Test func visionSideHookKeepsPatchesAndDrawsKeepMap() throws {
        let (runner, _, image, prompt) = try builtin()
        let hook = RunStrideVisionHook(stride: 4)
        let c = runCompression(VisionZip.info, budget: .count(64), vision: hook) {
            CompressionRunReport(visualTokensBefore: 256, requestedVisualTokens: 64, achievedVisualTokens: hook.kept.count,
                                 keptIndices: hook.kept, positionPolicy: .notApplicable, scoringSeconds: 0, notes: ["test hook"])
        }
        let r = try runner.run(prompt: prompt, image: image, compression: c, maxNewTokens: 1)
        #expect(r.visualTokensKept == 64 && r.visualTokensTotal == 256)
        #expect(r.keptIndices == Array(stride(from: 0, to: 256, by: 4)))
        #expect(r.promptTokens == prompt.inputIDs.count - 1 + 256)
        #expect(r.kvCacheBytes == 4 * 2 * (prompt.inputIDs.count - 1 + 64) * 256 * 4)
        #expect(r.method == "visionzip" && r.notes.contains("test hook"))
        // The 64 rows are spliced in as a shorter prompt: contiguous, renumbered positions.
        #expect(r.positionsRenumbered)
        #expect(r.trace.projectedRows == 64 && r.trace.decoderVisualRowsPerLayer == [64, 64, 64, 64])
        let map = try runner.keepMap(kept: r.keptIndices, image: image)
        let input = try #require(image.modelInput)
        #expect(map.width == input.width && map.height == input.height)
        // Cell 0 is kept (unchanged), cell 1 (pixels 14..<28 of row 0) is dimmed.
        #expect(map.pixel(x: 3, y: 3) == input.pixel(x: 3, y: 3))
        let (a, _, _) = map.pixel(x: 20, y: 3), (b, _, _) = input.pixel(x: 20, y: 3)
        #expect(Int(a) <= Int(b) && (b < 4 || a < b))
    }

    @Test func llmSideHookMapsPromptIndicesBackToPatches() throws {
        let (runner, _, image, prompt) = try builtin()
        let c = runCompression(FastV.info, budget: .count(32), prefill: RunTruncatePrefillHook(layer: 2, visual: 32))
        let r = try runner.run(prompt: prompt, image: image, compression: c, maxNewTokens: 1)
        // The report gave no indices: the rows that reached the last layer are used.
        #expect(r.keptIndices == Array(0..<32))
        // Dropped rows leave gaps: the survivors keep their original positions.
        #expect(!r.positionsRenumbered)
        #expect(r.trace.decoderVisualRowsPerLayer == [256, 256, 32, 32] && r.trace.projectedRows == 256)
        let span = try #require(r.imageSpans.first)
        #expect(r.keptPromptIndices?.filter { span.contains($0) }.count == 32)
        let map = try runner.keepMap(kept: r.keptIndices, image: image)
        #expect(map.width == 224)
    }

    @Test func budgetCoveringAllVisualTokensIsAnExplicitNoOp() throws {
        let (runner, _, image, prompt) = try builtin()
        let c = runCompression(VisionZip.info, budget: .count(300), vision: RunForbiddenVisionHook())
        let r = try runner.run(prompt: prompt, image: image, compression: c, maxNewTokens: 1)
        #expect(r.method == nil && r.visualTokensKept == 256)
        #expect(r.notes.contains { $0.contains("no-op") && $0.contains("300") })
        #expect(try VLMRunner.noOpNote(budget: .ratio(0.5), visualTokens: 256, method: "x") == nil)
        #expect(try VLMRunner.noOpNote(budget: .ratio(1), visualTokens: 256, method: "x") != nil)
        #expect(throws: CompressionError.self) { try VLMRunner.noOpNote(budget: .ratio(1.5), visualTokens: 256, method: "x") }
    }

    @Test func promptLongerThanTheContextIsAnError() throws {
        let (runner, _, image, _) = try builtin()
        let long = try runner.prompt(String(repeating: "a b ", count: 150))
        #expect(throws: VLMRunError.self) { try runner.run(prompt: long, image: image, maxNewTokens: 1) }
    }

    @Test func rawPromptsMarkTheImage() throws {
        let runner = try runBuiltinRunner.get()
        let p = try runner.prompt("<image>\nWhat?", raw: true)
        #expect(p.rendered == "<image>\nWhat?" && p.notes.isEmpty)
        let q = try runner.prompt("What?", raw: true)
        #expect(q.rendered == "<image>\nWhat?" && !q.notes.isEmpty)
        #expect(throws: VLMRunError.self) { try runner.prompt("<image> and <image>", raw: true) }
    }
}

@Suite struct RunErrorTests {
    @Test func missingFolderConfigAndArchitecture() throws {
        #expect(throws: VLMRunError.self) { try VLMRunner(folder: runPath("Tests/Fixtures/models/no-such-model")) }
        #expect(throws: VLMRunError.self) { try VLMRunner(folder: runPath("Tests/Fixtures/models")) }
        #expect(throws: VLMRunError.self) { try VLMRunner(folder: runPath("Tests/Fixtures/models/llama")) }
    }

    @Test func undecodableImage() throws {
        let path = NSTemporaryDirectory() + "run-bad-\(UUID().uuidString).png"
        try Data("not an image".utf8).write(to: URL(fileURLWithPath: path))
        defer { try? FileManager.default.removeItem(atPath: path) }
        #expect(throws: VLMRunError.self) { try VLMRunner.loadImage(path: path) }
        #expect(throws: VLMRunError.self) { try VLMRunner.loadImage(path: path + ".missing") }
    }

    @Test func fixtureModelWithPretokenizedPrompt() throws {
        let runner = try VLMRunner(folder: runPath("Tests/Fixtures/models/llava"))
        #expect(runner.tokenizer == nil && runner.template == nil && runner.loadNotes.count == 3)
        #expect(throws: VLMRunError.self) { try runner.prompt("hello") }
        let image = try runner.prepare(RGBImage(width: 40, height: 30, fill: (200, 30, 90)))
        let imageID = runner.model.config.imageTokenID
        let r = try runner.run(prompt: VLMPrompt(inputIDs: [1, 5, imageID, 7, 8]), image: image, maxNewTokens: 2)
        #expect(r.visualTokensTotal == 4 && r.promptTokens == 8)
        #expect(r.logits.shape == [100] && (1...2).contains(r.generatedIDs.count) && r.text.isEmpty)
        #expect(throws: VLMRunError.self) { try runner.run(prompt: VLMPrompt(inputIDs: [1, 5, 7]), image: image) }
        #expect(throws: VLMRunError.self) { try runner.run(prompt: VLMPrompt(inputIDs: [1, imageID, 500]), image: image) }
    }

    @Test func nextFixtureRunsWithTilesAndDrawsThumbnailAndCanvas() throws {
        let runner = try VLMRunner(folder: runPath("Tests/Fixtures/models/llava-next-wide"))
        let image = try runner.prepare(RGBImage(width: 60, height: 30, fill: (20, 200, 90)))
        let a = try #require(image.anyRes)
        guard case .anyRes(let tiles, 30, 60) = image.llava else { Issue.record("not an AnyRes image"); return }
        #expect(tiles.count == a.tileRows * a.tileCols + 1)
        let total = try runner.visualTokenCount(image)
        let r = try runner.run(prompt: VLMPrompt(inputIDs: [1, runner.model.config.imageTokenID, 7]), image: image, maxNewTokens: 1)
        #expect(r.visualTokensTotal == total && r.keptIndices.count == total)
        let full = try runner.keepMap(kept: r.keptIndices, image: image)
        let half = try runner.keepMap(kept: Array(0..<(total / 2)), image: image)
        #expect(full.width == a.thumbnail.width + 8 + a.canvas.width)
        #expect(full.width == half.width && full.pixels != half.pixels)
    }

    @Test func samplesAndPaths() throws {
        let samples = try VLMSample.load(jsonl: runPath("builtin/tasks/scenes/sample.jsonl"))
        #expect(samples.count == 4 && samples[0].answer == "left")
        #expect(FileManager.default.fileExists(atPath: samples[0].imagePath))
        let fake = runPath(".build/debug/tokc")
        #expect(VLMPaths.resolve(VLMPaths.builtinModel, executable: fake) != nil)
        #expect(VLMPaths.resolve("no/such/thing", executable: fake) == nil)
        let bad = NSTemporaryDirectory() + "run-bad-\(UUID().uuidString).jsonl"
        try Data("{\"id\": 1}\n".utf8).write(to: URL(fileURLWithPath: bad))
        defer { try? FileManager.default.removeItem(atPath: bad) }
        #expect(throws: VLMRunError.self) { try VLMSample.load(jsonl: bad) }
    }
}

/// The same run on 1 and 2 threads gives the same tokens and logits within float tolerance, and the
/// random baseline's selection depends on its seed alone.
@Suite(.serialized) struct RunDeterminismTests {
    @Test func threadCountDoesNotChangeTheAnswer() throws {
        let runner = try runBuiltinRunner.get()
        let sample = try VLMSample.load(jsonl: runPath("builtin/tasks/scenes/sample.jsonl"))[1]
        let image = try runner.prepare(try VLMRunner.loadImage(path: sample.imagePath))
        let prompt = try runner.prompt(sample.question)
        let saved = (BLAS.threads, Parallel.threadCount)
        defer { BLAS.threads = saved.0; Parallel.threadCount = saved.1 }
        var results: [VLMRunResult] = []
        for threads in [1, 2] {
            BLAS.threads = threads
            Parallel.threadCount = threads
            results.append(try runner.run(prompt: prompt, image: image, compression: nil, maxNewTokens: 4))
        }
        #expect(results[0].generatedIDs == results[1].generatedIDs)
        let diff = zip(results[0].logits.values, results[1].logits.values).map { abs($0 - $1) }.max() ?? 0
        #expect(diff <= 1e-4, "logits differ by \(diff) between 1 and 2 threads")
    }

    @Test func randomBaselineSelectionDependsOnTheSeedAlone() throws {
        let runner = try runBuiltinRunner.get()
        let sample = try VLMSample.load(jsonl: runPath("builtin/tasks/scenes/sample.jsonl"))[0]
        let image = try runner.prepare(try VLMRunner.loadImage(path: sample.imagePath))
        let prompt = try runner.prompt(sample.question)
        func kept(_ seed: Int) throws -> [Int] {
            let c = try SignalNormCompression.randomAdapter.make(budget: .count(32), parameters: ["seed": String(seed)])
            return try runner.run(prompt: prompt, image: image, compression: c, maxNewTokens: 1).keptIndices
        }
        #expect(try kept(7) == kept(7))
        #expect(try kept(7) != kept(8))
    }
}
