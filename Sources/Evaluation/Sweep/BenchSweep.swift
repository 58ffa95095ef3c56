import Foundation
import ModelIO
import Models
import Runtime
import Tensors
import TokenCompression

/// Settings of a sweep that every row shares.
public struct BenchSettings: Sendable {
    public var maxNewTokens: Int = 8
    /// Timed runs per row (the prefill time is their median).
    public var repeats: Int = 3
    /// Untimed runs before the timed ones (first-touch allocations, caches).
    public var warmup: Int = 1
    public var seed: Int = 0
    /// Explicit method parameters, by method (`--param fastv.layer=3`).
    public var parameters: [String: [String: String]] = [:]
    public init() {}

    /// What `make` receives for `method`: the explicit parameters, plus the seed for `random`.
    public func parameters(for method: String) -> [String: String] {
        var p = parameters[method] ?? [:]
        if method == "random", p["seed"] == nil { p["seed"] = String(seed) }
        return p
    }
}

/// Runs the work items of a plan on one loaded model, appending each row to the store as it
/// finishes and skipping rows the store already holds.
public final class BenchSweep {
    public let runner: VLMRunner
    public let samples: [BenchSample]
    public let settings: BenchSettings
    let flops: BenchFlops?

    /// A sample's input as the model takes it.
    enum Input {
        case image(VLMPreparedImage)
        case video(VLMPreparedVideo)

        /// Frames of a video (nil for an image).
        var frames: Int? {
            if case .video(let v) = self { return v.llava.frames.count }
            return nil
        }
    }

    /// Per sample: the prepared input, prompt and uncompressed reference (computed once, on demand).
    struct Prepared {
        var input: Input
        var prompt: VLMPrompt
        var before: Int
        var after: Int
        var reference: VLMRunResult?
    }
    var prepared: [Int: Prepared] = [:]
    /// Where keep maps of the first `BenchKeepMaps.sampleCount` samples go (nil: not drawn).
    public var keepMapFolder: String?
    /// Frames sampled from a video whose task line gives no `frames` (nil: every frame).
    public var frames: Int?
    /// Why the analytic FLOPs cannot be computed for this model (nil: they can); rows then carry it as a note.
    let flopsProblem: String?

    public init(runner: VLMRunner, samples: [BenchSample], settings: BenchSettings) throws {
        guard settings.repeats >= 1, settings.warmup >= 0, settings.maxNewTokens >= 1 else {
            throw BenchError("need repeats ≥ 1, warm-up ≥ 0 and max new tokens ≥ 1")
        }
        self.runner = runner
        self.samples = samples
        self.settings = settings
        do {
            flops = try BenchFlops(configPath: (runner.folder as NSString).appendingPathComponent("config.json"))
            flopsProblem = nil
        } catch {
            flops = nil
            flopsProblem = "FLOPs not computed: \(error)"
        }
    }

    /// Runs the `items` that have no successful row in `store` yet (failed rows are retried);
    /// `progress(done, total, item)` after each. Returns the rows it ran, failed ones included.
    @discardableResult
    public func run(_ items: [BenchWorkItem], store: inout BenchResultStore,
                    progress: (Int, Int, BenchWorkItem) -> Void = { _, _, _ in }) throws -> [BenchRecord] {
        let done = store.doneKeys
        let todo = items.filter { !done.contains($0.key) }
        var ran: [BenchRecord] = []
        for (i, item) in todo.enumerated() {
            let record = measure(item)
            try store.append(record)
            ran.append(record)
            if item.sampleIndex != todo.dropFirst(i + 1).first?.sampleIndex { prepared[item.sampleIndex] = nil }
            progress(i + 1, todo.count, item)
        }
        return ran
    }

    func prepare(_ index: Int) throws -> Prepared {
        if let p = prepared[index] { return p }
        let p = try load(index)
        prepared[index] = p
        return p
    }

    /// Reads and preprocesses a sample's input (an image, or a video's sampled frames) and builds its
    /// prompt: the work a sample needs before the model, which the total latency includes.
    func load(_ index: Int) throws -> Prepared {
        let s = samples[index]
        let input: Input
        let prompt: VLMPrompt
        let token: Int
        if let path = s.videoPath {
            input = .video(try runner.prepare(video: try VLMRunner.loadVideo(path: path, frames: s.frames ?? frames)))
            prompt = try runner.videoPrompt(s.question)
            token = try runner.requireVideoPath()
        } else {
            input = .image(try runner.prepare(try VLMRunner.loadImage(path: s.imagePath)))
            prompt = try runner.prompt(s.question)
            token = runner.model.config.imageTokenID
        }
        let at = prompt.inputIDs.firstIndex(of: token) ?? 0
        return Prepared(input: input, prompt: prompt, before: at, after: prompt.inputIDs.count - at - 1)
    }

    /// One run of a prepared sample.
    func run(_ p: Prepared, compression: ModelCompression?) throws -> VLMRunResult {
        switch p.input {
        case .image(let image):
            return try runner.run(prompt: p.prompt, image: image, compression: compression, maxNewTokens: settings.maxNewTokens)
        case .video(let video):
            return try runner.run(prompt: p.prompt, video: video, compression: compression, maxNewTokens: settings.maxNewTokens)
        }
    }

    /// The uncompressed run of a sample, the reference for fidelity.
    func reference(_ index: Int) throws -> VLMRunResult {
        var p = try prepare(index)
        if let r = p.reference { return r }
        let r = try run(p, compression: nil)
        p.reference = r
        prepared[index] = p
        return r
    }

    /// One row; a failure becomes a row with `error` so a sweep never stops on one bad method.
    public func measure(_ item: BenchWorkItem) -> BenchRecord {
        let s = samples[item.sampleIndex]
        var rec = BenchRecord(key: item.key, method: item.method, budget: item.budget?.label ?? "100%", sampleID: s.id,
                              sampleIndex: item.sampleIndex, type: s.type, answer: s.answer, prediction: "",
                              visualTokens: 0, requestedTokens: 0, achievedTokens: 0, prefillMs: .nan, prefillMsRepeats: [],
                              decodeMsPerToken: .nan, endToEndMs: .nan, kvCacheBytes: 0, peakTensorBytes: 0, peakRSSBytes: 0,
                              scoringMs: 0, tflops: .nan, prefillTFLOPs: .nan, flopsNote: nil, correct: nil,
                              answerAgrees: nil, top1Agrees: nil, klDivergence: nil, error: nil, notes: [])
        do {
            try fill(&rec, item)
        } catch {
            rec.error = "\(error)"
        }
        return rec
    }

    func fill(_ rec: inout BenchRecord, _ item: BenchWorkItem) throws {
        let p = try prepare(item.sampleIndex)
        let makeCompression: () throws -> ModelCompression? = {
            guard let b = item.budget else { return nil }
            return try MethodCatalog.compression(method: item.method, budget: b.budget, parameters: self.settings.parameters(for: item.method))
        }
        for _ in 0..<settings.warmup {
            _ = try run(p, compression: try makeCompression())
        }
        // Each timed repeat reads its input from disk again, so the total latency covers decoding the
        // image or the video's frames and preprocessing; the end-to-end time starts at the prepared input.
        var runs: [(result: VLMRunResult, endToEnd: Double, total: Double)] = []
        for _ in 0..<settings.repeats {
            let c = try makeCompression()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let fresh = try load(item.sampleIndex)
            let t1 = DispatchTime.now().uptimeNanoseconds
            let r = try run(fresh, compression: c)
            let t2 = DispatchTime.now().uptimeNanoseconds
            runs.append((r, Double(t2 - t1) / 1e6, Double(t2 - t0) / 1e6))
        }
        let first = runs[0].result
        if let folder = keepMapFolder, item.sampleIndex < BenchKeepMaps.sampleCount {
            // What the report shows for the fixed samples: the image (a video: its frames in a strip)
            // with the kept patches lit.
            let map: RGBImage
            switch p.input {
            case .image(let image): map = try runner.keepMap(kept: first.keptIndices, image: image)
            case .video(let video): map = try runner.keepMap(kept: first.keptIndices, video: video)
            }
            try BenchKeepMaps.write(map, folder: folder, sample: item.sampleIndex, method: item.method, budget: rec.budget)
        }
        rec.frames = p.input.frames
        rec.prediction = first.text.trimmingCharacters(in: .whitespacesAndNewlines)
        rec.visualTokens = first.visualTokensTotal
        let requested = try item.budget?.budget.tokens(outOf: first.visualTokensTotal) ?? first.visualTokensTotal
        rec.requestedTokens = first.methodReport?.requestedVisualTokens ?? requested
        rec.achievedTokens = first.visualTokensKept
        rec.prefillMsRepeats = runs.map { $0.result.prefillMs }
        rec.prefillMs = Statistics.median(rec.prefillMsRepeats)
        rec.decodeMsPerToken = Statistics.median(runs.map { $0.result.decodeMsPerToken })
        rec.endToEndMs = Statistics.median(runs.map(\.endToEnd))
        rec.llmMs = Statistics.median(runs.map { $0.result.llmGenerationMs })
        rec.totalMs = Statistics.median(runs.map(\.total))
        rec.kvCacheBytes = first.kvCacheBytes
        rec.peakTensorBytes = runs.map { $0.result.peakTensorBytes }.max() ?? 0
        rec.peakRSSBytes = runs.map { $0.result.processPeakRSS }.max() ?? 0
        rec.scoringMs = Statistics.median(runs.map { ($0.result.methodReport?.scoringSeconds ?? 0) * 1000 })
        rec.notes = first.notes
        rec.positionsRenumbered = first.positionsRenumbered
        if let flops {
            let f = try flops.compute(trace: first.trace, visual: first.visualTokensTotal, before: p.before, after: p.after,
                                      decodeTokens: first.decodeSteps, method: first.method)
            rec.tflops = f.total
            rec.prefillTFLOPs = f.prefill
            rec.flopsNote = f.note
        } else {
            rec.flopsNote = flopsProblem
        }
        if let a = samples[item.sampleIndex].answer { rec.correct = BenchMetrics.isCorrect(prediction: rec.prediction, answer: a) }
        let ref = item.budget == nil ? first : try reference(item.sampleIndex)
        if item.budget == nil, prepared[item.sampleIndex] != nil { prepared[item.sampleIndex]!.reference = first }
        let refLogits = ref.logits.values, logits = first.logits.values
        rec.answerAgrees = BenchMetrics.normalize(ref.text) == BenchMetrics.normalize(first.text)
        rec.top1Agrees = BenchMetrics.top1Agreement(reference: refLogits, candidate: logits)
        rec.klDivergence = try BenchMetrics.klDivergence(reference: refLogits, candidate: logits)
    }
}
