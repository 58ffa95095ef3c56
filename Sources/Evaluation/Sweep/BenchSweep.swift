import Foundation
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
    let flops: BenchFlops

    /// Per sample: the prepared image, prompt and uncompressed reference (computed once, on demand).
    struct Prepared {
        var image: VLMPreparedImage
        var prompt: VLMPrompt
        var before: Int
        var after: Int
        var reference: VLMRunResult?
    }
    var prepared: [Int: Prepared] = [:]
    /// Where keep maps of the first `BenchKeepMaps.sampleCount` samples go (nil: not drawn).
    public var keepMapFolder: String?

    public init(runner: VLMRunner, samples: [BenchSample], settings: BenchSettings) throws {
        guard settings.repeats >= 1, settings.warmup >= 0, settings.maxNewTokens >= 1 else {
            throw BenchError("need repeats ≥ 1, warm-up ≥ 0 and max new tokens ≥ 1")
        }
        self.runner = runner
        self.samples = samples
        self.settings = settings
        flops = try BenchFlops(configPath: (runner.folder as NSString).appendingPathComponent("config.json"))
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
        let s = samples[index]
        let image = try runner.prepare(try VLMRunner.loadImage(path: s.imagePath))
        let prompt = try runner.prompt(s.question)
        let imageAt = prompt.inputIDs.firstIndex(of: runner.model.config.imageTokenID) ?? 0
        let p = Prepared(image: image, prompt: prompt, before: imageAt, after: prompt.inputIDs.count - imageAt - 1)
        prepared[index] = p
        return p
    }

    /// The uncompressed run of a sample, the reference for fidelity.
    func reference(_ index: Int) throws -> VLMRunResult {
        var p = try prepare(index)
        if let r = p.reference { return r }
        let r = try runner.run(prompt: p.prompt, image: p.image, compression: nil, maxNewTokens: settings.maxNewTokens)
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
            _ = try runner.run(prompt: p.prompt, image: p.image, compression: try makeCompression(), maxNewTokens: settings.maxNewTokens)
        }
        var runs: [(VLMRunResult, Double)] = []
        for _ in 0..<settings.repeats {
            let c = try makeCompression()
            let t0 = DispatchTime.now().uptimeNanoseconds
            let r = try runner.run(prompt: p.prompt, image: p.image, compression: c, maxNewTokens: settings.maxNewTokens)
            runs.append((r, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6))
        }
        let first = runs[0].0
        if let folder = keepMapFolder, item.sampleIndex < BenchKeepMaps.sampleCount {
            // What the report shows for the fixed samples: the image with the kept patches lit.
            let map = try runner.keepMap(kept: first.keptIndices, image: p.image)
            try BenchKeepMaps.write(map, folder: folder, sample: item.sampleIndex, method: item.method, budget: rec.budget)
        }
        rec.prediction = first.text.trimmingCharacters(in: .whitespacesAndNewlines)
        rec.visualTokens = first.visualTokensTotal
        let requested = try item.budget?.budget.tokens(outOf: first.visualTokensTotal) ?? first.visualTokensTotal
        rec.requestedTokens = first.methodReport?.requestedVisualTokens ?? requested
        rec.achievedTokens = first.visualTokensKept
        rec.prefillMsRepeats = runs.map { $0.0.prefillMs }
        rec.prefillMs = Statistics.median(rec.prefillMsRepeats)
        rec.decodeMsPerToken = Statistics.median(runs.map { $0.0.decodeMsPerToken })
        rec.endToEndMs = Statistics.median(runs.map { $0.1 })
        rec.kvCacheBytes = first.kvCacheBytes
        rec.peakTensorBytes = runs.map { $0.0.peakTensorBytes }.max() ?? 0
        rec.peakRSSBytes = runs.map { $0.0.processPeakRSS }.max() ?? 0
        rec.scoringMs = Statistics.median(runs.map { ($0.0.methodReport?.scoringSeconds ?? 0) * 1000 })
        rec.notes = first.notes
        rec.positionsRenumbered = first.positionsRenumbered
        let f = try flops.compute(trace: first.trace, visual: first.visualTokensTotal, before: p.before, after: p.after,
                                  decodeTokens: first.decodeSteps, method: first.method)
        rec.tflops = f.total
        rec.prefillTFLOPs = f.prefill
        rec.flopsNote = f.note
        if let a = samples[item.sampleIndex].answer { rec.correct = BenchMetrics.isCorrect(prediction: rec.prediction, answer: a) }
        let ref = item.budget == nil ? first : try reference(item.sampleIndex)
        if item.budget == nil, prepared[item.sampleIndex] != nil { prepared[item.sampleIndex]!.reference = first }
        let refLogits = ref.logits.values, logits = first.logits.values
        rec.answerAgrees = BenchMetrics.normalize(ref.text) == BenchMetrics.normalize(first.text)
        rec.top1Agrees = BenchMetrics.top1Agreement(reference: refLogits, candidate: logits)
        rec.klDivergence = try BenchMetrics.klDivergence(reference: refLogits, candidate: logits)
    }
}
