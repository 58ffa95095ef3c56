import Foundation
import ModelIO
import Models
import Runtime
import Tensors
import TokenCompression

/// One setting of a classifier sweep: a ViT method with its parameters, or the uncompressed model.
public struct ClassifierSetting: Sendable, Equatable {
    public var method: String
    /// The table's "setting" column ("r=8", "keep_rate=0.7"; "100%" for uncompressed, as in every sweep).
    public var label: String
    public var parameters: [String: String]

    public static let uncompressed = ClassifierSetting(method: BenchPlan.uncompressed, label: "100%", parameters: [:])
}

/// The settings and batches of a classifier sweep, in one fixed order: per batch of images, the
/// uncompressed run (the reference for fidelity) and then every setting, so one loaded batch and one
/// reference serve all its rows. Row keys are `method|setting|sample`, as in a LLaVA sweep.
public struct ClassifierPlan: Sendable {
    public var settings: [ClassifierSetting]
    public var sampleCount: Int
    public var batchSize: Int

    /// The default grid from the catalog (`ViTAdapter.sweep`: ToMe r = 2, 4, 8, 12, 16; EViT keep rate
    /// 0.9, 0.7, 0.5; Sparse-Tuning at 0.7), for `methods` (nil: every ViT method that can run on the
    /// given parameters: Sparse-Tuning joins when its adapters file is given). A sweep parameter given
    /// as a list (`tome.r=4,8`) replaces its default values; other parameters apply to every setting of
    /// the method. Each setting is built once for `shape`, so a bad parameter or an adapters file that
    /// does not fit the model stops the sweep before it starts.
    public init(methods requested: [String]?, parameters: [String: [String: String]], shape: ViTModelShape,
                sampleCount: Int, batchSize: Int) throws {
        guard batchSize >= 1 else { throw BenchError("--batch must be at least 1, got \(batchSize)") }
        let vit = MethodCatalog.vitMethods
        var methods: [String]
        if let requested {
            methods = requested.map { $0.lowercased() }.filter { $0 != BenchPlan.uncompressed && $0 != "none" }
            if let bad = methods.first(where: { !vit.contains($0) }) {
                let llava = MethodCatalog.llavaMethods.contains(bad) ? " (it runs in LLaVA models)" : ""
                throw BenchError("method '\(bad)' cannot run inside a ViT classifier\(llava); runnable: \(vit.joined(separator: ", "))")
            }
        } else {
            methods = vit.filter { MethodCatalog.entry(named: $0)?.vitAdapter?.requires == nil || parameters[$0] != nil }
        }
        var seen = Set<String>()
        methods = methods.filter { seen.insert($0).inserted }
        for m in parameters.keys where !methods.contains(m) {
            throw BenchError("parameters given for '\(m)', which is not in the sweep (\(methods.joined(separator: ", ")))")
        }
        var settings = [ClassifierSetting.uncompressed]
        for m in methods {
            let adapter = MethodCatalog.entry(named: m)!.vitAdapter!
            var given = parameters[m] ?? [:]
            let values = given.removeValue(forKey: adapter.sweep.parameter)
                .map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } } ?? adapter.sweep.values
            guard !values.isEmpty else { throw BenchError("\(m).\(adapter.sweep.parameter) is empty") }
            for v in values {
                var p = given
                p[adapter.sweep.parameter] = v
                let built: ViTCompression
                do { built = try adapter.make(parameters: p, shape: shape) } catch { throw BenchError("\(m) with \(adapter.sweep.parameter)=\(v): \(error)") }
                let setting = ClassifierSetting(method: m, label: built.setting, parameters: p)
                guard !settings.contains(where: { $0.method == m && $0.label == setting.label }) else {
                    throw BenchError("\(m): setting '\(setting.label)' is listed twice")
                }
                settings.append(setting)
            }
        }
        self.settings = settings
        self.sampleCount = sampleCount
        self.batchSize = batchSize
    }

    public var methods: [String] { settings.map(\.method).reduce(into: []) { if !$0.contains($1) { $0.append($1) } } }
    public var labels: [String] { settings.map(\.label).reduce(into: []) { if !$0.contains($1) { $0.append($1) } } }
    public var batches: [Range<Int>] {
        stride(from: 0, to: sampleCount, by: batchSize).map { $0..<min($0 + batchSize, sampleCount) }
    }

    public static func key(_ s: ClassifierSetting, sample: Int) -> String { "\(s.method)|\(s.label)|\(sample)" }

    /// Batch indices this shard runs (a shard takes whole batches: k mod n == i).
    public func batchIndices(shard: BenchShard) -> [Int] { batches.indices.filter { shard.takes($0) } }

    /// Every row key of the batches a shard runs, in plan order.
    public func keys(shard: BenchShard) -> [String] {
        batchIndices(shard: shard).flatMap { b in settings.flatMap { s in batches[b].map { Self.key(s, sample: $0) } } }
    }
}

/// Runs a classifier plan on one loaded model: per batch, each setting with warm-up and timed repeats
/// (its rows carry the batch's per-image share of the forward time, so a setting's throughput is
/// images over summed time at the batch size), appending its rows to the store as they finish and
/// skipping settings whose rows the store already holds.
public final class ClassifierSweep {
    public let runner: ClassifierRunner
    public let samples: [BenchSample]
    public let plan: ClassifierPlan
    public let settings: BenchSettings
    /// Where merge maps of the first `BenchKeepMaps.sampleCount` samples go (nil: not drawn).
    public var mergeMapFolder: String?

    public init(runner: ClassifierRunner, samples: [BenchSample], plan: ClassifierPlan, settings: BenchSettings) throws {
        guard settings.repeats >= 1, settings.warmup >= 0 else { throw BenchError("need repeats ≥ 1 and warm-up ≥ 0") }
        self.runner = runner
        self.samples = samples
        self.plan = plan
        self.settings = settings
    }

    /// Runs the shard's batches; `progress(done, total, label)` after each setting of a batch. Returns
    /// the rows it ran, failed ones included.
    @discardableResult
    public func run(shard: BenchShard, store: inout BenchResultStore,
                    progress: (Int, Int, String) -> Void = { _, _, _ in }) throws -> [BenchRecord] {
        let done = store.doneKeys
        let work = plan.batchIndices(shard: shard).map { b -> (Int, [ClassifierSetting]) in
            (b, plan.settings.filter { s in plan.batches[b].contains { !done.contains(ClassifierPlan.key(s, sample: $0)) } })
        }.filter { !$0.1.isEmpty }
        let total = work.reduce(0) { $0 + $1.1.count }
        var count = 0
        var ran: [BenchRecord] = []
        for (b, pending) in work {
            let range = plan.batches[b]
            // Images first: one that cannot be read fails its rows, the others run.
            var images: [(Int, ClassifierImage)] = []
            var failures: [Int: String] = [:]
            for i in range {
                do { images.append((i, try runner.prepare(path: samples[i].imagePath))) } catch { failures[i] = "\(error)" }
            }
            var reference: ClassifierRunResult?
            for setting in pending {
                var rows: [BenchRecord]
                do {
                    guard !images.isEmpty else { throw BenchError("no image of this batch could be prepared") }
                    if reference == nil, setting.method != BenchPlan.uncompressed {
                        reference = try runner.classify(images.map(\.1), topK: 1)
                    }
                    let (result, perImageMs) = try measure(setting, images: images.map(\.1))
                    if setting.method == BenchPlan.uncompressed { reference = result }
                    rows = try records(setting, images: images, result: result, perImageMs: perImageMs, reference: reference ?? result)
                    try drawMergeMaps(setting, images: images, result: result)
                } catch {
                    rows = images.map { failed(setting, sample: $0.0, error: "\(error)") }
                }
                rows += failures.keys.sorted().map { failed(setting, sample: $0, error: failures[$0]!) }
                rows.sort { $0.sampleIndex < $1.sampleIndex }
                for r in rows { try store.append(r) }
                ran += rows
                count += 1
                progress(count, total, "\(setting.method) \(setting.label) batch \(b + 1)/\(plan.batches.count)")
            }
        }
        return ran
    }

    /// Warm-up, then timed repeats of one setting on a batch: the first timed run's result and the
    /// per-image share of each repeat's forward time.
    func measure(_ s: ClassifierSetting, images: [ClassifierImage]) throws -> (ClassifierRunResult, [Double]) {
        let compression = s.method == BenchPlan.uncompressed ? nil
            : try MethodCatalog.vitCompression(method: s.method, parameters: s.parameters, shape: runner.shape)
        let pixels = try runner.batch(images)
        for _ in 0..<settings.warmup { _ = try runner.classify(pixels: pixels, compression: compression) }
        var first: ClassifierRunResult?
        var times: [Double] = []
        for _ in 0..<settings.repeats {
            let r = try runner.classify(pixels: pixels, compression: compression)
            if first == nil { first = r }
            times.append(r.forwardMs / Double(images.count))
        }
        return (first!, times)
    }

    func records(_ s: ClassifierSetting, images: [(Int, ClassifierImage)], result r: ClassifierRunResult, perImageMs: [Double],
                 reference: ClassifierRunResult) throws -> [BenchRecord] {
        let config = runner.model.config
        let ms = Statistics.median(perImageMs)
        let scoring = (r.methodReport?.scoringSeconds ?? 0) * 1000 / Double(images.count)
        return try images.enumerated().map { b, item in
            let (index, _) = item
            let sample = samples[index]
            let top = r.predictions[b][0]
            let flops = try ViTFlops.perImage(config: config, classes: runner.model.classCount, trace: r.trace, image: b, extra: r.extraFlops[b]) / 1e12
            let logits = try r.logits.rows(b..<(b + 1)).values, refLogits = try reference.logits.rows(b..<(b + 1)).values
            var rec = BenchRecord(
                key: ClassifierPlan.key(s, sample: index), method: s.method, budget: s.label, sampleID: sample.id, sampleIndex: index,
                type: sample.type, answer: sample.answer, prediction: top.label, visualTokens: r.tokensIn,
                requestedTokens: r.tokensOut[b], achievedTokens: r.tokensOut[b], prefillMs: ms, prefillMsRepeats: perImageMs,
                decodeMsPerToken: 0, endToEndMs: ms, kvCacheBytes: 0, peakTensorBytes: r.peakTensorBytes, peakRSSBytes: r.processPeakRSS,
                scoringMs: scoring, tflops: flops, prefillTFLOPs: flops, flopsNote: nil,
                correct: sample.answer.map { Self.isCorrect(top, answer: $0) },
                answerAgrees: BenchMetrics.argmax(refLogits) == top.index,
                top1Agrees: BenchMetrics.top1Agreement(reference: refLogits, candidate: logits),
                klDivergence: try BenchMetrics.klDivergence(reference: refLogits, candidate: logits),
                error: nil, notes: r.notes)
            rec.batchSize = images.count
            rec.tokensPerBlock = r.trace.rowsEnteringBlock.map { $0[b] }
            return rec
        }
    }

    /// The answer names the predicted class (case-insensitive) or gives its index.
    public static func isCorrect(_ p: ClassifierPrediction, answer: String) -> Bool {
        BenchMetrics.isCorrect(prediction: p.label, answer: answer) || answer.trimmingCharacters(in: .whitespaces) == String(p.index)
    }

    func failed(_ s: ClassifierSetting, sample i: Int, error: String) -> BenchRecord {
        let sample = samples[i]
        return BenchRecord(key: ClassifierPlan.key(s, sample: i), method: s.method, budget: s.label, sampleID: sample.id, sampleIndex: i,
                           type: sample.type, answer: sample.answer, prediction: "", visualTokens: 0, requestedTokens: 0, achievedTokens: 0,
                           prefillMs: .nan, prefillMsRepeats: [], decodeMsPerToken: .nan, endToEndMs: .nan, kvCacheBytes: 0,
                           peakTensorBytes: 0, peakRSSBytes: 0, scoringMs: 0, tflops: .nan, prefillTFLOPs: .nan, flopsNote: nil,
                           correct: nil, answerAgrees: nil, top1Agrees: nil, klDivergence: nil, error: error, notes: [])
    }

    /// Merge maps of the fixed first samples (uncompressed: every patch its own token).
    func drawMergeMaps(_ s: ClassifierSetting, images: [(Int, ClassifierImage)], result r: ClassifierRunResult) throws {
        guard let folder = mergeMapFolder else { return }
        let patches = runner.model.config.patchCount
        for (b, (index, image)) in images.enumerated() where index < BenchKeepMaps.sampleCount {
            let groups = r.tokenGroups?[b] ?? (0..<patches).map { [$0] }
            try BenchKeepMaps.write(try runner.mergeMap(image, groups: groups), folder: folder, sample: index, method: s.method, budget: s.label)
        }
    }

    /// Answers that name no class of the model (they can never count as correct).
    public static func unknownAnswers(_ samples: [BenchSample], labels: [String], classes: Int) -> [String] {
        let names = Set(labels.map { BenchMetrics.normalize($0) })
        return samples.compactMap(\.answer).filter { a in
            !names.contains(BenchMetrics.normalize(a)) && !(Int(a.trimmingCharacters(in: .whitespaces)).map { $0 >= 0 && $0 < classes } ?? false)
        }
    }
}
