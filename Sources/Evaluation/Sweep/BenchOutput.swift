import Foundation

/// Where a sweep ran and with what, so a table can be traced back to weights, code and machine.
public struct BenchManifest: Sendable, Codable, Equatable {
    public var model: String
    /// `file name → SHA-256` of each `*.safetensors` file of the model folder.
    public var weightsSHA256: [String: String]
    public var task: String
    public var samples: Int
    public var methods: [String]
    public var parameters: [String: [String: String]]
    public var budgets: [String]
    public var seed: Int
    public var maxNewTokens: Int
    public var repeats: Int
    public var warmup: Int
    public var shard: String
    public var machine: String
    public var cores: Int
    public var threads: Int
    public var toolkitVersion: String
    public var date: String
    /// "classifier" for a ViT classifier sweep (its table, plots and report differ); nil: a LLaVA sweep.
    public var kind: String? = nil
    /// Classifier sweeps: images per forward pass (throughput is measured at this batch size).
    public var batchSize: Int? = nil
    /// Video sweeps: `--frames` (frames sampled from a video whose task line gives none; nil: all).
    public var frames: Int? = nil

    public static let classifierKind = "classifier"
    public var isClassifier: Bool { kind == Self.classifierKind }
    /// A sweep over video prompts (`BenchVideo`): its table leads with the seed's video columns.
    public var isVideo: Bool { kind == BenchVideo.kind }

    /// `uname -srm`-like text from `utsname`.
    public static func machineDescription() -> String {
        var u = utsname()
        uname(&u)
        func field<T>(_ t: T) -> String {
            withUnsafeBytes(of: t) { raw in String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self) }
        }
        return "\(field(u.sysname)) \(field(u.release)) \(field(u.machine)) (\(field(u.nodename)))"
    }

    /// Hashes the folder's safetensors files (nil-hash text when `hash` is false, e.g. in tests).
    public static func weightHashes(folder: String, hash: Bool = true) throws -> [String: String] {
        let files = ((try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
        var out: [String: String] = [:]
        for f in files {
            out[f] = hash ? try BenchSHA256.hex(ofFile: (folder as NSString).appendingPathComponent(f)) : "not computed"
        }
        return out
    }

    /// Why rows already in an output folder, written under `previous`, cannot be resumed under this
    /// manifest (empty: they can). Rows are keyed by method, budget and sample index alone, so rows
    /// from other weights, another task or other decoding settings would otherwise mix silently into
    /// one table. Methods, budgets, `--limit`, shards, repeats and threads may change between runs.
    public func resumeConflicts(with previous: BenchManifest) -> [String] {
        var out: [String] = []
        if model != previous.model { out.append("model \(previous.model) → \(model)") }
        let hashed = { (h: [String: String]) in !h.values.contains("not computed") }
        if hashed(weightsSHA256) && hashed(previous.weightsSHA256) && weightsSHA256 != previous.weightsSHA256 {
            out.append("the weights changed (SHA-256 of the safetensors files differs)")
        }
        if task != previous.task { out.append("task \(previous.task) → \(task)") }
        if seed != previous.seed { out.append("seed \(previous.seed) → \(seed)") }
        if maxNewTokens != previous.maxNewTokens { out.append("max new tokens \(previous.maxNewTokens) → \(maxNewTokens)") }
        if kind != previous.kind { out.append("sweep kind \(previous.kind ?? "llava") → \(kind ?? "llava")") }
        if frames != previous.frames { out.append("--frames \(previous.frames.map(String.init) ?? "all") → \(frames.map(String.init) ?? "all")") }
        if batchSize != previous.batchSize { out.append("batch size \(previous.batchSize.map(String.init) ?? "–") → \(batchSize.map(String.init) ?? "–")") }
        for m in methods.sorted() {
            if let old = previous.parameters[m], let new = parameters[m], old != new {
                let text = { (p: [String: String]) in p.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ",") }
                out.append("\(m) parameters \(text(old)) → \(text(new))")
            }
        }
        return out
    }

    public static func now() -> String {
        let f = ISO8601DateFormatter()
        return f.string(from: Date())
    }
}

/// Markdown, CSV and JSON renderings of the summary rows.
public enum BenchOutput {
    static func f(_ v: Double, _ digits: Int = 1) -> String { v.isFinite ? String(format: "%.\(digits)f", v) : "–" }
    /// A reduction as "↓20%", an increase as "↑5%", no change as "0%".
    static func pct(_ v: Double) -> String {
        guard v.isFinite else { return "–" }
        let r = v.rounded()
        return r == 0 ? "0%" : r > 0 ? String(format: "↓%.0f%%", r) : String(format: "↑%.0f%%", -r)
    }
    static func mib(_ b: Double) -> String { b.isFinite ? String(format: "%.2f MiB", b / 1_048_576) : "–" }
    static func opt(_ v: Double?, _ suffix: String = "%", _ digits: Int = 1) -> String { v.map { f($0, digits) + suffix } ?? "–" }

    /// The seed paper's table: one row per method and budget, reductions against uncompressed.
    public static func markdown(_ rows: [BenchSummaryRow]) -> String {
        var s = "| Method | Budget | Tokens (req/got) | TFLOPs (↓%) | Peak mem (↓%) | KV cache (↓%) | Prefill ms (↓%) | Decode ms/tok | Throughput (×) | Scoring ms | Speedup meas./FLOPs | Answer agree | Top-1 agree | KL | Accuracy |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let tflops = r.tflops.isFinite ? String(format: "%.4g", r.tflops) : "–"
            s += "| \(r.method) | \(r.budget) | \(f(r.requestedTokens, 0))/\(f(r.achievedTokens, 1))"
            s += " | \(tflops) (\(pct(r.tflopsReduction))) | \(mib(r.peakTensorBytes)) (\(pct(r.peakMemoryReduction)))"
            s += " | \(mib(r.kvCacheBytes)) (\(pct(r.kvReduction))) | \(f(r.prefillMs)) (\(pct(r.prefillReduction)))"
            s += " | \(f(r.decodeMsPerToken, 2)) | \(f(r.throughput, 2))/s (\(f(r.throughputGain, 2))×) | \(f(r.scoringMs, 2))"
            s += " | \(f(r.measuredSpeedup, 2))× / \(f(r.predictedSpeedup, 2))× | \(opt(r.answerAgreement)) | \(opt(r.top1Agreement))"
            s += " | \(r.meanKL.map { String(format: "%.4f", $0) } ?? "–") | \(accuracyCell(r)) |\n"
        }
        return s + typesAndNotes(rows)
    }

    /// The seed's video table first (LLM generation latency, total latency, peak memory, throughput,
    /// accuracy and its change), then the columns every sweep has.
    public static func videoMarkdown(_ rows: [BenchSummaryRow]) -> String {
        var s = "| Method | Budget | Frames | Tokens (req/got) | LLM gen. ms (↓%) | Total ms (↓%) | Peak mem (↓%) | Throughput (×) | Accuracy | Δ acc. (pts) "
        s += "| TFLOPs (↓%) | KV cache (↓%) | Prefill ms (↓%) | Speedup meas./FLOPs | Top-1 agree | KL |\n"
        s += "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        for r in rows {
            let tflops = r.tflops.isFinite ? String(format: "%.4g", r.tflops) : "–"
            let reduced = { (v: Double?, red: Double?) in v.map { "\(f($0)) (\(pct(red ?? .nan)))" } ?? "–" }
            s += "| \(r.method) | \(r.budget) | \(r.frames.map { f($0, 0) } ?? "–") | \(f(r.requestedTokens, 0))/\(f(r.achievedTokens, 1))"
            s += " | \(reduced(r.llmMs, r.llmReduction)) | \(reduced(r.totalMs, r.totalReduction))"
            s += " | \(mib(r.peakTensorBytes)) (\(pct(r.peakMemoryReduction))) | \(f(r.throughput, 2))/s (\(f(r.throughputGain, 2))×)"
            s += " | \(accuracyCell(r)) | \(r.accuracyChange.map { String(format: "%+.1f", $0) } ?? "–")"
            s += " | \(tflops) (\(pct(r.tflopsReduction))) | \(mib(r.kvCacheBytes)) (\(pct(r.kvReduction))) | \(f(r.prefillMs)) (\(pct(r.prefillReduction)))"
            s += " | \(f(r.measuredSpeedup, 2))× / \(f(r.predictedSpeedup, 2))× | \(opt(r.top1Agreement))"
            s += " | \(r.meanKL.map { String(format: "%.4f", $0) } ?? "–") |\n"
        }
        return s + typesAndNotes(rows)
    }

    /// Accuracy by question type and the notes, under either table.
    static func typesAndNotes(_ rows: [BenchSummaryRow]) -> String {
        var s = ""
        let types = Set(rows.flatMap { $0.accuracyByType.keys }).sorted()
        if !types.isEmpty {
            // Visual-row positions beside the types: position questions can hinge on them.
            s += "\nAccuracy by question type (%):\n\n| Method | Budget | Visual-row positions | " + types.joined(separator: " | ") + " |\n"
            s += "|---|---|---|" + types.map { _ in "---|" }.joined() + "\n"
            for r in rows {
                s += "| \(r.method) | \(r.budget) | \(r.positions) | " + types.map { opt(r.accuracyByType[$0], "") }.joined(separator: " | ") + " |\n"
            }
        }
        let noted = rows.filter { !$0.notes.isEmpty }
        if !noted.isEmpty {
            s += "\nNotes:\n"
            for r in noted { for n in r.notes { s += "- \(r.method) @ \(r.budget): \(n)\n" } }
        }
        return s
    }

    /// Accuracy, with failed rows marked rather than averaged away: "87.2%", "87.2% (2 of 10 failed)",
    /// or "FAILED (10 of 10 rows)" when no row of the method and budget ran.
    static func accuracyCell(_ r: BenchSummaryRow) -> String {
        guard r.errors > 0 else { return opt(r.accuracy) }
        let total = r.samples + r.errors
        if r.samples == 0 { return "FAILED (\(r.errors) of \(total) rows)" }
        return "\(opt(r.accuracy)) (\(r.errors) of \(total) failed)"
    }

    static let csvColumns = ["method", "budget", "samples", "errors", "requested_tokens", "achieved_tokens", "tflops", "tflops_reduction_pct",
                             "peak_tensor_bytes", "peak_memory_reduction_pct", "peak_rss_bytes", "kv_cache_bytes", "kv_reduction_pct",
                             "prefill_ms", "prefill_reduction_pct", "decode_ms_per_token", "throughput_samples_per_s", "throughput_gain",
                             "scoring_ms", "measured_prefill_speedup", "flops_predicted_speedup", "speedup_efficiency",
                             "answer_agreement_pct", "top1_agreement_pct", "mean_kl", "accuracy_pct", "accuracy_by_type", "positions",
                             "frames", "llm_generation_ms", "llm_reduction_pct", "total_latency_ms", "total_reduction_pct",
                             "accuracy_change_pts", "notes"]

    static func csvField(_ s: String) -> String {
        s.contains(",") || s.contains("\"") || s.contains("\n") ? "\"" + s.replacingOccurrences(of: "\"", with: "\"\"") + "\"" : s
    }

    public static func csv(_ rows: [BenchSummaryRow]) -> String {
        var out = csvColumns.joined(separator: ",") + "\n"
        func n(_ v: Double) -> String { v.isFinite ? String(format: "%.6g", v) : "" }
        func o(_ v: Double?) -> String { v.map(n) ?? "" }
        for r in rows {
            let types = r.accuracyByType.keys.sorted().map { "\($0)=\(n(r.accuracyByType[$0]!))" }.joined(separator: ";")
            let fields = [r.method, r.budget, "\(r.samples)", "\(r.errors)", n(r.requestedTokens), n(r.achievedTokens), n(r.tflops),
                          n(r.tflopsReduction), n(r.peakTensorBytes), n(r.peakMemoryReduction), n(r.peakRSSBytes), n(r.kvCacheBytes),
                          n(r.kvReduction), n(r.prefillMs), n(r.prefillReduction), n(r.decodeMsPerToken), n(r.throughput),
                          n(r.throughputGain), n(r.scoringMs), n(r.measuredSpeedup), n(r.predictedSpeedup), n(r.speedupEfficiency),
                          o(r.answerAgreement), o(r.top1Agreement), o(r.meanKL), o(r.accuracy), types, r.positions,
                          o(r.frames), o(r.llmMs), o(r.llmReduction), o(r.totalMs), o(r.totalReduction), o(r.accuracyChange),
                          r.notes.joined(separator: " | ")]
            out += fields.map(csvField).joined(separator: ",") + "\n"
        }
        return out
    }

    public struct Document: Codable {
        public var manifest: [BenchManifest]
        /// Runs (method × budget × sample) in the table: those that produced a result and those
        /// that failed, so a reader of the file alone can tell a partial sweep from a whole one.
        public var rowsSucceeded: Int
        public var rowsFailed: Int
        public var rows: [BenchSummaryRow]
    }

    public static func json(_ rows: [BenchSummaryRow], manifests: [BenchManifest]) throws -> Data {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        return try enc.encode(Document(manifest: manifests, rowsSucceeded: rows.reduce(0) { $0 + $1.samples },
                                       rowsFailed: rows.reduce(0) { $0 + $1.errors }, rows: rows))
    }

    /// Writes `results.csv`, `results.json`, `pareto.svg`, `pareto.png` and `report.html` (with
    /// `keepMaps` inlined) into `folder`; returns the Markdown table. A classifier sweep (its manifest's
    /// `kind`) gets the classifier table and CSV and accuracy against images/s in the plot.
    @discardableResult
    public static func writeAll(records: [BenchRecord], manifests: [BenchManifest], folder: String,
                                keepMaps: [BenchKeepMaps.Entry] = []) throws -> String {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        let classifier = manifests.first?.isClassifier ?? false
        let rows = BenchSummary.rows(records, methods: manifests.first?.methods, budgets: manifests.first?.budgets, classifier: classifier)
        func path(_ n: String) -> String { (folder as NSString).appendingPathComponent(n) }
        do {
            try Data((classifier ? classifierCSV(rows) : csv(rows)).utf8).write(to: URL(fileURLWithPath: path("results.csv")), options: .atomic)
            try json(rows, manifests: manifests).write(to: URL(fileURLWithPath: path("results.json")), options: .atomic)
            let video = manifests.first?.isVideo ?? false
            let plot = BenchPareto(rows: rows, axis: classifier ? .imagesPerSecond : video ? .llmMs : .prefillMs)
            try Data(plot.svg().utf8).write(to: URL(fileURLWithPath: path("pareto.svg")), options: .atomic)
            try plot.png().writePNG(path: path("pareto.png"))
            try Data(BenchHTMLReport.render(rows: rows, records: records, manifests: manifests, keepMaps: keepMaps).utf8)
                .write(to: URL(fileURLWithPath: path("report.html")), options: .atomic)
        } catch let e as BenchError { throw e } catch {
            throw BenchError("cannot write results into '\(folder)': \(error)")
        }
        if classifier { return classifierMarkdown(rows, batchSize: manifests.first?.batchSize) }
        return manifests.first?.isVideo == true ? videoMarkdown(rows) : markdown(rows)
    }

    /// Copies `folder/report.html` to `path` (`--html PATH`).
    public static func copyReport(from folder: String, to path: String) throws {
        let source = (folder as NSString).appendingPathComponent("report.html")
        guard let data = FileManager.default.contents(atPath: source) else { throw BenchError("no report.html in '\(folder)'") }
        do { try data.write(to: URL(fileURLWithPath: path), options: .atomic) } catch { throw BenchError("cannot write the HTML report to '\(path)': \(error)") }
    }

    /// Saves the manifest of one run (`manifest.json`), read back by `tokc report`.
    public static func writeManifest(_ m: BenchManifest, folder: String) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try enc.encode(m).write(to: URL(fileURLWithPath: (folder as NSString).appendingPathComponent("manifest.json")), options: .atomic)
    }

    public static func readManifest(folder: String) -> BenchManifest? {
        guard let d = FileManager.default.contents(atPath: (folder as NSString).appendingPathComponent("manifest.json")) else { return nil }
        return try? JSONDecoder().decode(BenchManifest.self, from: d)
    }

    /// Merges shard folders: within a folder each key's latest row (a retry replaces its failure),
    /// across folders the first folder's row wins; manifests of every folder.
    public static func merge(folders: [String]) throws -> (records: [BenchRecord], manifests: [BenchManifest]) {
        var seen = Set<String>()
        var records: [BenchRecord] = []
        var manifests: [BenchManifest] = []
        for f in folders {
            let p = (f as NSString).appendingPathComponent("rows.jsonl")
            guard FileManager.default.fileExists(atPath: p) else { throw BenchError("'\(f)' has no rows.jsonl (not a tokc bench output folder)") }
            for r in BenchResultStore.latest(try BenchResultStore.read(p)) where seen.insert(r.key).inserted { records.append(r) }
            if let m = readManifest(folder: f) { manifests.append(m) }
        }
        // Row order comes from the manifests' method and budget lists (see `BenchSummary.rows`).
        return (records, manifests)
    }
}
