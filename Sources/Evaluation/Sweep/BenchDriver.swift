import Foundation
import Models
import Runtime
import Tensors

/// Everything `tokc bench` takes, resolved.
public struct BenchOptions: Sendable {
    public var model: String
    public var task: String
    /// nil: every runnable method.
    public var methods: [String]?
    public var budgets: [BenchBudget] = BenchBudget.defaults
    public var limit: Int?
    public var settings = BenchSettings()
    /// Whether `budgets` came from the command line (a classifier sweep has no budgets and refuses them).
    public var budgetsGiven = false
    /// Classifier sweeps: images per forward pass.
    public var batchSize = 32
    /// Video samples: frames to sample when the task line gives no `frames` (nil: every frame).
    public var frames: Int?
    public var out = "bench-out"
    public var shard = BenchShard.whole
    /// Also run only the samples whose index i has i mod n == this shard's index (every item of a
    /// sample together, so no part recomputes a sample's uncompressed reference): the interleaving
    /// rounds of `tokc bench --precisions`. Nil: every sample.
    public var sampleShard: BenchShard? = nil
    public var threads = ProcessInfo.processInfo.activeProcessorCount
    public var toolkitVersion = "unknown"
    /// Hash the weights for the manifest (tests turn it off: hashing is slow in debug builds).
    public var hashWeights = true
    /// Show progress on stderr.
    public var progress = true

    public init(model: String, task: String) {
        self.model = model
        self.task = task
    }
}

/// `tokc bench` without the command line: load, sweep (resuming), write the outputs, return the table.
public enum BenchDriver {
    public struct Outcome {
        public var markdown: String
        public var records: [BenchRecord]
        /// Rows this call ran successfully.
        public var ran: Int
        /// Rows this call ran that failed (their `error` says why); a later run retries them.
        public var failed: Int
        /// Rows already in the folder with a successful result (resumed, not run again).
        public var skipped: Int

        /// The closing line of a sweep: "12 rows run, 2 failed, 0 resumed".
        public var countsLine: String { "\(ran) rows run, \(failed) failed, \(skipped) resumed" }

        /// Exit status of `tokc bench`: 0 when every row succeeded (or `keepGoing`), else
        /// `failedRowsExitCode`, so scripts and job arrays can tell a partial sweep from success.
        public func exitStatus(keepGoing: Bool) -> Int32 { failed > 0 && !keepGoing ? BenchDriver.failedRowsExitCode : 0 }
    }

    /// Exit status of a sweep that finished with failed rows (1 stays for errors that stop it).
    public static let failedRowsExitCode: Int32 = 3

    /// Runs the sweep the model folder calls for: a LLaVA sweep (methods × budgets) or, for a ViT/DeiT
    /// image classifier, the classifier sweep (`ClassifierPlan`).
    public static func run(_ o: BenchOptions, log: (String) -> Void = { _ in }) throws -> Outcome {
        let classifier = ClassifierRunner.isClassifier(folder: o.model)
        var samples = try BenchTask.load(jsonl: o.task, requireQuestion: !classifier)
        guard !samples.isEmpty else { throw BenchError("task '\(o.task)' has no samples") }
        if let l = o.limit {
            guard l >= 1 else { throw BenchError("--limit must be at least 1") }
            samples = Array(samples.prefix(l))
        }
        if let f = o.frames, f < 1 { throw BenchError("--frames must be at least 1, got \(f)") }
        let video = samples.contains { $0.videoPath != nil }
        if classifier, video { throw BenchError("task '\(o.task)' has video lines; an image classifier takes images only") }
        if o.frames != nil, !video { throw BenchError("--frames samples the frames of video lines; task '\(o.task)' has none") }
        try checkTaskInputs(samples, task: o.task, frames: o.frames, log: log)
        if classifier { return try runClassifier(o, samples: samples, log: log) }
        let budgets = video && !o.budgetsGiven ? BenchVideo.budgets : o.budgets
        let plan = try BenchPlan(methods: o.methods, budgets: budgets, sampleCount: samples.count, video: video)
        for (m, _) in o.settings.parameters where !plan.methods.contains(m) {
            throw BenchError("parameters given for '\(m)', which is not in the sweep (\(plan.methods.joined(separator: ", ")))")
        }
        // Fail on a bad method parameter before loading anything. On videos, a method of the seed's set
        // that has no way into the model yet is kept: its rows fail with the reason.
        for m in plan.methods {
            do {
                _ = try MethodCatalog.compression(method: m, budget: budgets[0].budget, parameters: o.settings.parameters(for: m))
            } catch ModelCompressionError.unsupportedMethod(let name, let why) where video {
                log("warning: method '\(name)' cannot run in this build (\(why)); its rows will fail")
            }
        }

        let items = plan.items(shard: o.shard).filter { o.sampleShard?.takes($0.sampleIndex) ?? true }
        var manifest = BenchManifest(
            model: URL(fileURLWithPath: o.model).standardizedFileURL.path,
            weightsSHA256: try BenchManifest.weightHashes(folder: o.model, hash: o.hashWeights),
            task: URL(fileURLWithPath: o.task).standardizedFileURL.path, samples: samples.count, methods: plan.methods,
            parameters: Dictionary(uniqueKeysWithValues: plan.methods.map { ($0, o.settings.parameters(for: $0)) }),
            budgets: plan.budgets.map(\.label), seed: o.settings.seed, maxNewTokens: o.settings.maxNewTokens,
            repeats: o.settings.repeats, warmup: o.settings.warmup, shard: "\(o.shard.index)/\(o.shard.count)",
            machine: BenchManifest.machineDescription(), cores: ProcessInfo.processInfo.activeProcessorCount, threads: o.threads,
            toolkitVersion: o.toolkitVersion, date: BenchManifest.now())
        if video {
            manifest.kind = BenchVideo.kind
            manifest.frames = o.frames
        }
        var (store, skipped) = try openStore(o, manifest: manifest, keys: items.map(\.key), log: log)

        var ranRows: [BenchRecord] = []
        if skipped < items.count {
            log("loading \(o.model)")
            let runner = try VLMRunner(folder: o.model)
            // Every video row would fail on a model without a video path: say so once.
            if video, !runner.takesVideo {
                do { _ = try runner.requireVideoPath() } catch { throw BenchError("task '\(o.task)' has video lines: \(error)") }
            }
            let sweep = try BenchSweep(runner: runner, samples: samples, settings: o.settings)
            sweep.keepMapFolder = BenchKeepMaps.folder(in: o.out)
            sweep.frames = o.frames
            let bar = o.progress ? BenchProgress(total: items.count - skipped) : nil
            ranRows = try sweep.run(items, store: &store) { n, _, item in
                bar?.update(done: n, label: "\(item.method) \(item.budget?.label ?? "") \(samples[item.sampleIndex].id)")
            }
        }
        return try finish(o, store: store, keys: items.map(\.key), manifest: manifest, ranRows: ranRows, skipped: skipped)
    }

    /// The classifier sweep: uncompressed, ToMe r, EViT keep rates, Sparse-Tuning (with its adapters),
    /// at `o.batchSize` images per forward pass.
    static func runClassifier(_ o: BenchOptions, samples: [BenchSample], log: (String) -> Void) throws -> Outcome {
        guard !o.budgetsGiven else {
            throw BenchError("--budgets applies to LLaVA models; a classifier sweep varies each method's own parameter (e.g. --param tome.r=4,8 --param evit.keep_rate=0.7)")
        }
        let config = try ViTClassifierConfig.load(folder: o.model)
        let shape = ViTModelShape(config)
        let plan = try ClassifierPlan(methods: o.methods, parameters: o.settings.parameters, shape: shape,
                                      sampleCount: samples.count, batchSize: o.batchSize)
        let unknown = ClassifierSweep.unknownAnswers(samples, labels: config.labels, classes: config.labels.count)
        if !unknown.isEmpty, !config.labels.isEmpty {
            log("warning: \(unknown.count) of \(samples.count) answers name no class of the model (e.g. '\(unknown[0])'); they count as wrong")
        }
        let keys = plan.keys(shard: o.shard)
        var given: [String: [String: String]] = [:]
        for m in plan.methods where m != BenchPlan.uncompressed { given[m] = o.settings.parameters[m] ?? [:] }
        var manifest = BenchManifest(
            model: URL(fileURLWithPath: o.model).standardizedFileURL.path,
            weightsSHA256: try BenchManifest.weightHashes(folder: o.model, hash: o.hashWeights),
            task: URL(fileURLWithPath: o.task).standardizedFileURL.path, samples: samples.count,
            methods: plan.methods.filter { $0 != BenchPlan.uncompressed }, parameters: given,
            budgets: plan.labels.filter { $0 != ClassifierSetting.uncompressed.label }, seed: o.settings.seed, maxNewTokens: 0,
            repeats: o.settings.repeats, warmup: o.settings.warmup, shard: "\(o.shard.index)/\(o.shard.count)",
            machine: BenchManifest.machineDescription(), cores: ProcessInfo.processInfo.activeProcessorCount, threads: o.threads,
            toolkitVersion: o.toolkitVersion, date: BenchManifest.now())
        manifest.kind = BenchManifest.classifierKind
        manifest.batchSize = o.batchSize
        var (store, skipped) = try openStore(o, manifest: manifest, keys: keys, log: log)
        var ranRows: [BenchRecord] = []
        if skipped < keys.count {
            log("loading \(o.model)")
            let runner = try ClassifierRunner(folder: o.model)
            for n in runner.loadNotes { log("note: \(n)") }
            // A method's own head for another number of classes would fail every row of it.
            for s in plan.settings where s.method != BenchPlan.uncompressed {
                try runner.check(try MethodCatalog.vitCompression(method: s.method, parameters: s.parameters, shape: runner.shape))
            }
            // Preprocessing that misses the model's fixed size would fail every row: stop on the first image.
            if let first = samples.first(where: { FileManager.default.isReadableFile(atPath: $0.imagePath) }) {
                do { _ = try runner.prepare(path: first.imagePath) } catch let e as ClassifierRunError where e.message.contains("fixed-size") {
                    throw BenchError("\(e)")
                } catch {}
            }
            let sweep = try ClassifierSweep(runner: runner, samples: samples, plan: plan, settings: o.settings)
            sweep.mergeMapFolder = BenchKeepMaps.folder(in: o.out)
            var bar: BenchProgress?
            ranRows = try sweep.run(shard: o.shard, store: &store) { n, total, label in
                if bar == nil, o.progress { bar = BenchProgress(total: total) }
                bar?.update(done: n, label: label)
            }
        }
        return try finish(o, store: store, keys: keys, manifest: manifest, ranRows: ranRows, skipped: skipped)
    }

    /// Opens the output folder's rows, refuses rows of a different run, writes the manifest; returns the
    /// store and how many of `keys` it already holds.
    static func openStore(_ o: BenchOptions, manifest: BenchManifest, keys: [String], log: (String) -> Void) throws -> (BenchResultStore, Int) {
        let store = try BenchResultStore(folder: o.out)
        if store.droppedTornBytes > 0 {
            log("note: \(store.path) ended in an unfinished line (\(store.droppedTornBytes) bytes, a killed run); it was discarded and that row runs again")
        }
        let done = store.doneKeys
        let skipped = keys.filter { done.contains($0) }.count
        if !store.records.isEmpty {
            if let previous = BenchOutput.readManifest(folder: o.out) {
                let conflicts = manifest.resumeConflicts(with: previous)
                guard conflicts.isEmpty else {
                    throw BenchError("'\(o.out)' holds \(store.records.count) rows of a different run (\(conflicts.joined(separator: "; "))); "
                        + "resuming would mix them into this table: give another --out or delete the folder")
                }
            } else {
                log("warning: '\(o.out)' holds \(store.records.count) rows but no readable manifest.json; they are resumed unchecked (weights, task and settings cannot be compared)")
            }
        }
        if skipped > 0 { log("resuming: \(skipped) of \(keys.count) rows already in \(store.path)") }
        try BenchOutput.writeManifest(manifest, folder: o.out)
        return (store, skipped)
    }

    /// Writes the outputs of the rows of `keys` and counts what this call ran.
    static func finish(_ o: BenchOptions, store: BenchResultStore, keys: [String], manifest: BenchManifest, ranRows: [BenchRecord],
                       skipped: Int) throws -> Outcome {
        let mine = Set(keys)
        let records = store.latestRecords.filter { mine.contains($0.key) }
        let md = try BenchOutput.writeAll(records: records, manifests: [manifest], folder: o.out,
                                          keepMaps: BenchKeepMaps.collect(folders: [o.out]))
        let failed = ranRows.filter { $0.error != nil }.count
        return Outcome(markdown: md, records: records, ran: ranRows.count - failed, failed: failed, skipped: skipped)
    }

    /// Stops a sweep whose task cannot produce a single row: when no sample's image (or video)
    /// decodes, every row would fail one by one. Inputs are tried in order until one decodes (one
    /// decode on a good task); missing files and folders are counted up front and reported, since
    /// their rows will fail.
    static func checkTaskInputs(_ samples: [BenchSample], task: String, frames: Int? = nil, log: (String) -> Void) throws {
        let fm = FileManager.default
        let exists = { (s: BenchSample) in s.videoPath.map { fm.fileExists(atPath: $0) } ?? fm.isReadableFile(atPath: s.imagePath) }
        let missing = samples.filter { !exists($0) }
        let what = samples.allSatisfy { $0.videoPath != nil } ? "videos" : samples.contains { $0.videoPath != nil } ? "images and videos" : "images"
        var lastError = ""
        var decodable = false
        for s in samples where exists(s) {
            do {
                if let v = s.videoPath { _ = try VLMRunner.loadVideo(path: v, frames: s.frames ?? frames) } else { _ = try VLMRunner.loadImage(path: s.imagePath) }
                decodable = true
                break
            } catch { lastError = "\(error)" }
        }
        guard decodable else {
            let why = missing.count == samples.count
                ? "none of its \(samples.count) \(what) can be read (first: '\(samples[0].inputPath)')"
                : "none of its \(samples.count) \(what) decodes (\(missing.count) missing; last error: \(lastError))"
            throw BenchError("task '\(task)' is unusable: \(why)")
        }
        if !missing.isEmpty {
            let list = missing.prefix(3).map { "'\($0.inputPath)'" }.joined(separator: ", ")
            log("warning: \(missing.count) of \(samples.count) task \(what) cannot be read (\(list)\(missing.count > 3 ? ", …" : "")); their rows will fail")
        }
    }
}
