import Foundation
import Models
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
    public var out = "bench-out"
    public var shard = BenchShard.whole
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
        /// Rows run by this call (the rest were already in the folder).
        public var ran: Int
        public var skipped: Int
    }

    public static func run(_ o: BenchOptions, log: (String) -> Void = { _ in }) throws -> Outcome {
        var samples = try BenchTask.load(jsonl: o.task)
        guard !samples.isEmpty else { throw BenchError("task '\(o.task)' has no samples") }
        if let l = o.limit {
            guard l >= 1 else { throw BenchError("--limit must be at least 1") }
            samples = Array(samples.prefix(l))
        }
        let plan = try BenchPlan(methods: o.methods, budgets: o.budgets, sampleCount: samples.count)
        for (m, _) in o.settings.parameters where !plan.methods.contains(m) {
            throw BenchError("parameters given for '\(m)', which is not in the sweep (\(plan.methods.joined(separator: ", ")))")
        }
        // Fail on a bad method parameter before loading anything.
        for m in plan.methods { _ = try ModelCompression.make(method: m, budget: o.budgets[0].budget, parameters: o.settings.parameters(for: m)) }

        var store = try BenchResultStore(folder: o.out)
        let items = plan.items(shard: o.shard)
        let done = store.doneKeys
        let skipped = items.filter { done.contains($0.key) }.count

        let manifest = BenchManifest(
            model: URL(fileURLWithPath: o.model).standardizedFileURL.path,
            weightsSHA256: try BenchManifest.weightHashes(folder: o.model, hash: o.hashWeights),
            task: URL(fileURLWithPath: o.task).standardizedFileURL.path, samples: samples.count, methods: plan.methods,
            parameters: Dictionary(uniqueKeysWithValues: plan.methods.map { ($0, o.settings.parameters(for: $0)) }),
            budgets: plan.budgets.map(\.label), seed: o.settings.seed, maxNewTokens: o.settings.maxNewTokens,
            repeats: o.settings.repeats, warmup: o.settings.warmup, shard: "\(o.shard.index)/\(o.shard.count)",
            machine: BenchManifest.machineDescription(), cores: ProcessInfo.processInfo.activeProcessorCount, threads: o.threads,
            toolkitVersion: o.toolkitVersion, date: BenchManifest.now())
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
        if skipped > 0 { log("resuming: \(skipped) of \(items.count) rows already in \(store.path)") }
        try BenchOutput.writeManifest(manifest, folder: o.out)

        var ran = 0
        if skipped < items.count {
            log("loading \(o.model)")
            let runner = try VLMRunner(folder: o.model)
            let sweep = try BenchSweep(runner: runner, samples: samples, settings: o.settings)
            let bar = o.progress ? BenchProgress(total: items.count - skipped) : nil
            try sweep.run(items, store: &store) { n, _, item in
                ran = n
                bar?.update(done: n, label: "\(item.method) \(item.budget?.label ?? "") \(samples[item.sampleIndex].id)")
            }
        }
        let mine = Set(items.map(\.key))
        let records = store.records.filter { mine.contains($0.key) }
        let md = try BenchOutput.writeAll(records: records, manifests: [manifest], folder: o.out)
        return Outcome(markdown: md, records: records, ran: ran, skipped: skipped)
    }
}
