import Foundation
import ModelIO
import Models
import Testing
@testable import Evaluation

/// Repository root from this file, so tests run from any directory.
let benchRepoRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent().path

/// A fresh empty folder under the temporary directory.
func benchTempFolder(_ tag: String) -> String {
    let p = (NSTemporaryDirectory() as NSString).appendingPathComponent("tokc-bench-\(tag)-\(UUID().uuidString)")
    try? FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
    return p
}

/// A record with every measured field set, for the store, summary and writer tests.
func benchRecord(method: String, budget: String, sample: Int, prefill: Double, correct: Bool, type: String = "t") -> BenchRecord {
    BenchRecord(key: "\(method)|\(budget)|\(sample)", method: method, budget: budget, sampleID: "s\(sample)", sampleIndex: sample,
                type: type, answer: "yes", prediction: correct ? "yes" : "no", visualTokens: 100, requestedTokens: method == "uncompressed" ? 100 : 25,
                achievedTokens: method == "uncompressed" ? 100 : 25, prefillMs: prefill, prefillMsRepeats: [prefill], decodeMsPerToken: 1,
                endToEndMs: prefill + 5, kvCacheBytes: method == "uncompressed" ? 4000 : 1000, peakTensorBytes: 8000, peakRSSBytes: 1 << 20,
                scoringMs: 0.5, tflops: method == "uncompressed" ? 2 : 1, prefillTFLOPs: method == "uncompressed" ? 2 : 1, flopsNote: nil,
                correct: correct, answerAgrees: correct, top1Agrees: true, klDivergence: 0.01, error: nil, notes: [])
}

@Suite("Bench task parser")
struct BenchTaskTests {
    let base = URL(fileURLWithPath: "/data/task")

    @Test func readsTheBenchFormat() throws {
        let text = """
        {"id": "a", "image": "img/a.png", "question": "Is it red?", "answer": "yes", "type": "colour"}

        {"image": "/abs/b.png", "question": "How many?"}
        """
        let s = try BenchTask.parse(text, name: "t.jsonl", baseDirectory: base)
        #expect(s.count == 2)
        #expect(s[0] == BenchSample(id: "a", imagePath: "/data/task/img/a.png", question: "Is it red?", answer: "yes", type: "colour"))
        #expect(s[1].id == "line-3" && s[1].imagePath == "/abs/b.png" && s[1].answer == nil && s[1].type == "")
    }

    @Test func readsPOPEStyleLines() throws {
        let text = """
        {"question_id": 1, "image": "COCO_val2014_000000310196.jpg", "text": "Is there a snowboard in the image?", "label": "yes", "category": "adversarial"}
        {"question_id": 2, "image": "x.jpg", "text": "Is there a car?", "label": "no"}
        """
        let s = try BenchTask.parse(text, name: "pope.jsonl", baseDirectory: base)
        #expect(s.map(\.id) == ["1", "2"])
        #expect(s[0].question == "Is there a snowboard in the image?" && s[0].answer == "yes" && s[0].type == "adversarial")
        #expect(s[1].answer == "no")
    }

    @Test func badLinesNameTheLine() throws {
        for (text, fragment) in [
            ("{\"image\": \"a.png\", \"question\": \"q\"}\nnot json", "t.jsonl:2: not valid JSON"),
            ("{\"question\": \"q\"}", "t.jsonl:1: missing string field 'image'"),
            ("\n{\"image\": \"a.png\"}", "t.jsonl:2: missing string field 'question'"),
            ("[1, 2]", "t.jsonl:1: expected a JSON object"),
            ("{\"image\": \"a\", \"question\": \"q\", \"id\": \"x\"}\n{\"image\": \"b\", \"question\": \"q\", \"id\": \"x\"}", "t.jsonl:2: id 'x' already used on line 1"),
            ("{\"image\": \"a\", \"question\": \"q\", \"answer\": [1]}", "t.jsonl:1: field 'answer'"),
        ] {
            let e = #expect(throws: BenchError.self) { try BenchTask.parse(text, name: "t.jsonl", baseDirectory: base) }
            #expect(e?.description.contains(fragment) == true, "\(e?.description ?? "") should contain \(fragment)")
        }
    }

    @Test func missingFileIsAnError() {
        #expect(throws: BenchError.self) { try BenchTask.load(jsonl: "/nonexistent/task.jsonl") }
    }
}

@Suite("Bench metrics")
struct BenchMetricsTests {
    @Test func klDivergence() throws {
        #expect(try BenchMetrics.klDivergence(reference: [1, 2, 3], candidate: [1, 2, 3]) < 1e-12)
        // Shifting logits does not change the distribution.
        #expect(try BenchMetrics.klDivergence(reference: [1, 2, 3], candidate: [11, 12, 13]) < 1e-12)
        // P = (0.5, 0.5), Q = softmax(0, ln 3) = (0.25, 0.75): KL = 0.5 ln 2 + 0.5 ln(2/3).
        let kl = try BenchMetrics.klDivergence(reference: [0, 0], candidate: [0, Float(log(3.0))])
        #expect(abs(kl - (0.5 * log(2.0) + 0.5 * log(2.0 / 3.0))) < 1e-6)
        #expect(throws: BenchError.self) { try BenchMetrics.klDivergence(reference: [1], candidate: [1, 2]) }
    }

    @Test func top1Agreement() {
        #expect(BenchMetrics.top1Agreement(reference: [0, 5, 1], candidate: [0, 2, 1]))
        #expect(!BenchMetrics.top1Agreement(reference: [0, 5, 1], candidate: [9, 2, 1]))
        #expect(BenchMetrics.argmax([3, 3, 1]) == 0)
    }

    @Test func accuracy() {
        #expect(BenchMetrics.isCorrect(prediction: "  Yes.\n", answer: "yes"))
        #expect(BenchMetrics.isCorrect(prediction: "Triangle", answer: "triangle"))
        #expect(!BenchMetrics.isCorrect(prediction: "a triangle", answer: "triangle"))
        #expect(BenchMetrics.rate([true, false, true, true]) == 0.75)
        #expect(BenchMetrics.rate([]) == nil)

    }

    static func trace(tower: [Int]? = nil, projected: Int = 256, visual: [Int]) -> PrefillTrace {
        PrefillTrace(towerRowsPerTile: [tower ?? Array(repeating: 257, count: 6)], towerLayers: 6, projectedRows: projected,
                     decoderRowsPerLayer: visual.map { $0 + 20 }, decoderVisualRowsPerLayer: visual, insertedRows: 0,
                     positionsRenumbered: false)
    }

    /// FLOPs follow the rows the run traced: fewer decoder rows, a smaller projector input and a
    /// tower shrunk by a merge inside it (MustDrop's window merge) each lower the prefill FLOPs.
    @Test func flopsFollowTheTracedRows() throws {
        let flops = try BenchFlops(configPath: benchRepoRoot + "/builtin/models/llava/config.json")
        func prefill(_ t: PrefillTrace) throws -> Double {
            try flops.compute(trace: t, visual: 256, before: 5, after: 15, decodeTokens: 0, method: "m").prefill
        }
        let none = try prefill(Self.trace(visual: [256, 256, 256, 256]))
        let llm = try prefill(Self.trace(visual: [256, 256, 64, 64]))
        let projector = try prefill(Self.trace(projected: 31, visual: [31, 31, 20, 20]))
        let tower = try prefill(Self.trace(tower: [257, 32, 32, 32, 32, 32], projected: 31, visual: [31, 31, 20, 20]))
        #expect(tower < projector && projector < llm && llm < none)
        // A method that ends with more rows than the image had (PruMerge+'s summary token on a tile it
        // keeps whole) is costed at what it ran, not refused.
        #expect(try prefill(Self.trace(projected: 257, visual: [257, 257, 257, 257])) > none)
        // A trace of another decoder depth is refused, not costed at a wrong schedule.
        #expect(throws: BenchError.self) { try prefill(Self.trace(visual: [256, 256])) }
        // The tower counts per pass only when a tile lost rows inside it.
        #expect(Self.trace(visual: [1]).towerRowsPerPass == nil)
        #expect(Self.trace(tower: [257, 32, 32], visual: [1]).towerRowsPerPass == [257, 32, 32, 32, 32, 32])
    }

    @Test func sha256() {
        #expect(BenchSHA256.hex(of: Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(BenchSHA256.hex(of: Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let long = Data(String(repeating: "a", count: 1000).utf8)
        #expect(BenchSHA256.hex(of: long) == "41edece42d63e8d9bf515a9ba6932e1c20cbc9f5a5d134645adb5db1b9737ea3")
    }
}

@Suite("Bench plan, shards and resume")
struct BenchPlanTests {
    @Test func budgetsAndBaselines() throws {
        #expect(try BenchBudget.parseList("0.5,0.25,0.11") == [.ratio(0.5), .ratio(0.25), .ratio(0.11)])
        #expect(try BenchBudget.parseList("128, 64") == [.count(128), .count(64)])
        #expect(try BenchBudget.parseList("25%").map(\.label) == ["25%"])
        #expect(throws: BenchError.self) { try BenchBudget.parseList("1.5") }
        #expect(throws: BenchError.self) { try BenchBudget.parseList("0") }
        let plan = try BenchPlan(methods: ["fastv"], budgets: [.ratio(0.5)], sampleCount: 2)
        #expect(plan.methods == ["fastv", "random", "pooling"])
        #expect(plan.items.count == 2 * (1 + 3))
        #expect(plan.items[0].method == BenchPlan.uncompressed)
        #expect(throws: BenchError.self) { try BenchPlan(methods: ["nosuch"], budgets: [.ratio(0.5)], sampleCount: 1) }
        let all = try BenchPlan(methods: nil, budgets: BenchBudget.defaults, sampleCount: 1)
        #expect(Set(all.methods).isSuperset(of: ["random", "pooling", "fastv", "dart"]))
    }

    @Test func shardsPartitionTheItems() throws {
        let plan = try BenchPlan(methods: ["fastv", "dart"], budgets: [.ratio(0.5), .count(8)], sampleCount: 3)
        let n = 4
        let shards = try (0..<n).map { plan.items(shard: try BenchShard(index: $0, count: n)) }
        #expect(shards.map(\.count).reduce(0, +) == plan.items.count)
        #expect(Set(shards.flatMap { $0.map(\.key) }) == Set(plan.items.map(\.key)))
        #expect(shards[1].first == plan.items[1] && shards[1].dropFirst().first == plan.items[5])
        #expect(try BenchShard.parse("2/4") == BenchShard(index: 2, count: 4))
        for bad in ["4/4", "x", "1/0", "-1/2"] { #expect(throws: BenchError.self) { try BenchShard.parse(bad) } }
    }

    @Test func storeResumesAndSurvivesATornLine() throws {
        let dir = benchTempFolder("store")
        var store = try BenchResultStore(folder: dir)
        try store.append(benchRecord(method: "uncompressed", budget: "100%", sample: 0, prefill: 10, correct: true))
        try store.append(benchRecord(method: "fastv", budget: "25%", sample: 0, prefill: 6, correct: false))
        // A killed writer leaves half a line.
        let h = FileHandle(forUpdatingAtPath: store.path)!
        h.seekToEndOfFile(); h.write(Data("{\"key\": \"trunc".utf8)); try h.close()
        var again = try BenchResultStore(folder: dir)
        #expect(again.doneKeys == ["uncompressed|100%|0", "fastv|25%|0"])
        #expect(again.droppedTornBytes == "{\"key\": \"trunc".utf8.count)
        #expect(try BenchResultStore(folder: dir).droppedTornBytes == 0)
        try again.append(benchRecord(method: "pooling", budget: "25%", sample: 0, prefill: 5, correct: true))
        #expect(try BenchResultStore(folder: dir).records.count == 3)
    }
}

@Suite("Bench failed rows")
struct BenchFailedRowTests {
    func failed(_ method: String, sample: Int) -> BenchRecord {
        var r = benchRecord(method: method, budget: "25%", sample: sample, prefill: .nan, correct: false)
        r.error = "cannot read image"; r.correct = nil
        return r
    }

    @Test func aFailedRowIsRetriedAndItsRetryStands() throws {
        let dir = benchTempFolder("retry")
        var store = try BenchResultStore(folder: dir)
        try store.append(failed("fastv", sample: 0))
        #expect(store.doneKeys.isEmpty)
        let retry = benchRecord(method: "fastv", budget: "25%", sample: 0, prefill: 6, correct: true)
        try store.append(retry)
        let reopened = try BenchResultStore(folder: dir)
        #expect(reopened.doneKeys == ["fastv|25%|0"])
        #expect(reopened.latestRecords == [retry])
        #expect(try BenchOutput.merge(folders: [dir]).records == [retry])
    }

    @Test func failedRowsAreMarkedAndCounted() throws {
        let records = [benchRecord(method: "uncompressed", budget: "100%", sample: 0, prefill: 10, correct: true),
                       benchRecord(method: "uncompressed", budget: "100%", sample: 1, prefill: 10, correct: true),
                       failed("fastv", sample: 0), failed("fastv", sample: 1),
                       benchRecord(method: "pooling", budget: "25%", sample: 0, prefill: 5, correct: true), failed("pooling", sample: 1)]
        let rows = BenchSummary.rows(records)
        let md = BenchOutput.markdown(rows)
        #expect(md.contains("FAILED (2 of 2 rows)") && md.contains("100.0% (1 of 2 failed)"))
        #expect(!md.lowercased().contains("nan"))
        let decoder = JSONDecoder()
        decoder.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        let doc = try decoder.decode(BenchOutput.Document.self, from: try BenchOutput.json(rows, manifests: []))
        #expect(doc.rowsSucceeded == 3 && doc.rowsFailed == 3)
    }

    @Test func exitStatusSaysWhetherRowsFailed() {
        let clean = BenchDriver.Outcome(markdown: "", records: [], ran: 4, failed: 0, skipped: 0)
        let partial = BenchDriver.Outcome(markdown: "", records: [], ran: 0, failed: 4, skipped: 0)
        #expect(clean.exitStatus(keepGoing: false) == 0)
        #expect(partial.exitStatus(keepGoing: false) == BenchDriver.failedRowsExitCode)
        #expect(partial.exitStatus(keepGoing: true) == 0)
        #expect(partial.countsLine == "0 rows run, 4 failed, 0 resumed")
    }

    func options(task: String, out: String) -> BenchOptions {
        var o = BenchOptions(model: benchRepoRoot + "/builtin/models/llava", task: task)
        o.methods = ["random"]
        o.budgets = [.ratio(0.25)]
        o.settings.maxNewTokens = 1
        o.settings.repeats = 1
        o.settings.warmup = 0
        o.out = out
        o.hashWeights = false
        o.progress = false
        return o
    }

    @Test func aTaskWithoutOneReadableImageStopsBeforeTheSweep() throws {
        let dir = benchTempFolder("unusable")
        try #"{"image": "missing.png", "question": "q?", "answer": "a"}"#.write(toFile: dir + "/one.jsonl", atomically: true, encoding: .utf8)
        try Data("not a png".utf8).write(to: URL(fileURLWithPath: dir + "/bad.png"))
        try #"{"image": "bad.png", "question": "q?", "answer": "a"}"#.write(toFile: dir + "/bad.jsonl", atomically: true, encoding: .utf8)
        for task in ["one.jsonl", "bad.jsonl"] {
            #expect {
                try BenchDriver.run(options(task: dir + "/" + task, out: dir + "/out-" + task))
            } throws: { ($0 as? BenchError)?.description.contains("unusable") == true }
            // Nothing was run or written: the error came before the sweep.
            #expect(!FileManager.default.fileExists(atPath: dir + "/out-" + task + "/rows.jsonl"))
        }
    }

    @Test func rowsOfAMissingImageFailAndARerunRetriesThem() throws {
        let dir = benchTempFolder("partial")
        let images = benchRepoRoot + "/builtin/tasks/scenes/images/"
        try FileManager.default.copyItem(atPath: images + "sample-00001.png", toPath: dir + "/a.png")
        try """
        {"id": "a", "image": "a.png", "question": "Is there a green star?", "answer": "yes"}
        {"id": "b", "image": "b.png", "question": "Is there a green star?", "answer": "yes"}
        """.write(toFile: dir + "/task.jsonl", atomically: true, encoding: .utf8)
        let o = options(task: dir + "/task.jsonl", out: dir + "/out")
        var warnings: [String] = []
        let first = try BenchDriver.run(o) { warnings.append($0) }
        // uncompressed, random and pooling for each of the two samples; b's three fail.
        #expect(first.ran == 3 && first.failed == 3 && first.skipped == 0)
        #expect(first.exitStatus(keepGoing: false) != 0)
        #expect(warnings.contains { $0.contains("1 of 2 task images cannot be read") })
        #expect(first.markdown.contains("(1 of 2 failed)"))
        try FileManager.default.copyItem(atPath: images + "sample-00001.png", toPath: dir + "/b.png")
        let second = try BenchDriver.run(o)
        #expect(second.ran == 3 && second.failed == 0 && second.skipped == 3)
        #expect(second.records.count == 6 && second.records.allSatisfy { $0.error == nil })
        #expect(second.exitStatus(keepGoing: false) == 0)
    }
}

@Suite("Bench outputs")
struct BenchOutputTests {
    func records(samples: Range<Int>) -> [BenchRecord] {
        samples.flatMap { s in [
            benchRecord(method: "uncompressed", budget: "100%", sample: s, prefill: 10, correct: true),
            benchRecord(method: "fastv", budget: "25%", sample: s, prefill: 8, correct: s % 2 == 0),
            benchRecord(method: "pooling", budget: "25%", sample: s, prefill: 5, correct: true, type: "u"),
        ] }
    }

    @Test func summaryReductionsAndShortfallNote() throws {
        let rows = BenchSummary.rows(records(samples: 0..<4))
        #expect(rows.map(\.method) == ["uncompressed", "fastv", "pooling"])
        let fastv = rows[1]
        #expect(fastv.accuracy == 50 && fastv.samples == 4)
        #expect(abs(fastv.kvReduction - 75) < 1e-9 && abs(fastv.tflopsReduction - 50) < 1e-9)
        #expect(abs(fastv.measuredSpeedup - 1.25) < 1e-9 && abs(fastv.predictedSpeedup - 2) < 1e-9)
        #expect(fastv.notes.contains { $0.contains("FLOPs-predicted gain") && $0.contains("attention-probability") })
        #expect(rows[2].accuracyByType == ["u": 100])
        let md = BenchOutput.markdown(rows)
        #expect(md.contains("| fastv | 25% |") && md.contains("↓75%") && md.contains("1.25× / 2.00×"))
        let csv = BenchOutput.csv(rows)
        #expect(csv.split(separator: "\n").count == 4)
    }

    @Test func notesCollapsePerSampleNumbers() {
        let n = BenchSummary.collapse(["kept 26 tokens", "kept 2 tokens", "shared", "other 1"], excluding: ["shared"])
        #expect(n == ["kept 26 tokens (numbers vary by sample; first shown)", "other 1"])
    }

    @Test func resumeRefusesRowsOfAnotherRun() {
        let base = BenchManifest(model: "/m", weightsSHA256: ["model.safetensors": "aa"], task: "/t", samples: 4, methods: ["fastv"],
                                 parameters: ["fastv": ["k": "2"]], budgets: ["25%"], seed: 0, maxNewTokens: 2, repeats: 1, warmup: 0,
                                 shard: "0/1", machine: "x", cores: 1, threads: 1, toolkitVersion: "test", date: "d")
        var more = base
        more.methods = ["fastv", "pooling"]
        more.budgets = ["50%", "25%"]
        more.samples = 2
        more.repeats = 3
        more.date = "e"
        #expect(more.resumeConflicts(with: base).isEmpty)
        var weights = base
        weights.weightsSHA256 = ["model.safetensors": "bb"]
        #expect(weights.resumeConflicts(with: base).first?.contains("weights changed") == true)
        var unhashed = weights
        unhashed.weightsSHA256 = ["model.safetensors": "not computed"]
        #expect(unhashed.resumeConflicts(with: base).isEmpty)
        var params = base
        params.parameters = ["fastv": ["k": "3"]]
        params.seed = 1
        #expect(params.resumeConflicts(with: base).count == 2)
    }

    @Test func bitmapFontCoversThePlotsText() {
        for name in MethodCatalog.inModelMethods + BenchPareto.Axis.allCases.map(\.rawValue) + ["uncompressed", "accuracy (%)",
                                                        "answer agreement with uncompressed (%)", "0123456789.-"] {
            #expect(BenchBitmapFont.covers(name), "\(name)")
        }
        #expect(!BenchBitmapFont.covers("é") && BenchBitmapFont.glyph("é") == BenchBitmapFont.glyph("?"))
        #expect(BenchBitmapFont.glyphs.values.allSatisfy { (7...8).contains($0.count) && $0.allSatisfy { $0.count == 5 } })
        var pixels: [(Int, Int)] = []
        BenchBitmapFont.draw("1", x: 10, y: 20) { pixels.append(($0, $1)) }
        #expect(pixels.count == 10 && pixels.allSatisfy { (10..<15).contains($0.0) && (20..<27).contains($0.1) })
        var vertical: [(Int, Int)] = []
        BenchBitmapFont.draw("1", x: 10, y: 20, vertical: true) { vertical.append(($0, $1)) }
        #expect(vertical.count == 10 && vertical.allSatisfy { (10..<17).contains($0.0) && (16...20).contains($0.1) })
    }

    @Test func plotsAreWritten() throws {
        let dir = benchTempFolder("plot")
        let manifest = BenchManifest(model: "m", weightsSHA256: [:], task: "t", samples: 4, methods: ["fastv", "pooling"], parameters: [:],
                                     budgets: ["25%"], seed: 0, maxNewTokens: 2, repeats: 1, warmup: 0, shard: "0/1",
                                     machine: BenchManifest.machineDescription(), cores: 1, threads: 1, toolkitVersion: "test", date: BenchManifest.now())
        try BenchOutput.writeAll(records: records(samples: 0..<4), manifests: [manifest], folder: dir)
        let svg = try String(contentsOfFile: dir + "/pareto.svg", encoding: .utf8)
        #expect(svg.hasPrefix("<svg") && svg.contains("<polyline") && svg.contains("fastv"))
        let png = try RGBImage.load(path: dir + "/pareto.png")
        #expect(png.width == 720 && png.height == 480)
        #expect(png.pixels.contains { $0 != 255 })
        // The first legend entry's name is drawn in black right of its colour line (x 582, baseline 42).
        func inked(x: Range<Int>, y: Range<Int>) -> Int {
            var count = 0
            for r in y {
                for c in x {
                    let i = (r * 720 + c) * 3
                    if png.pixels[i] == 0, png.pixels[i + 1] == 0, png.pixels[i + 2] == 0 { count += 1 }
                }
            }
            return count
        }
        #expect(inked(x: 582..<(582 + BenchBitmapFont.width("fastv")), y: 35..<42) > 20)
        #expect(inked(x: 640..<700, y: 35..<42) == 0)
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/results.json"))) as? [String: Any]
        #expect((json?["rows"] as? [Any])?.count == 3 && (json?["manifest"] as? [Any])?.count == 1)
    }

    @Test func reportMergesShards() throws {
        let a = benchTempFolder("shardA"), b = benchTempFolder("shardB"), out = benchTempFolder("merged")
        let all = records(samples: 0..<3)
        var sa = try BenchResultStore(folder: a), sb = try BenchResultStore(folder: b)
        for (i, r) in all.enumerated() { if i % 2 == 0 { try sa.append(r) } else { try sb.append(r) } }
        try sb.append(all[0])  // a duplicate across shards counts once
        let merged = try BenchOutput.merge(folders: [a, b])
        #expect(merged.records.count == all.count)
        let md = try BenchOutput.writeAll(records: merged.records, manifests: merged.manifests, folder: out)
        #expect(md.contains("| uncompressed | 100% |") && md.contains("| pooling | 25% |"))
        #expect(BenchSummary.rows(merged.records).first { $0.method == "fastv" }?.samples == 3)
        #expect(throws: BenchError.self) { try BenchOutput.merge(folders: [benchTempFolder("empty")]) }
    }

    @Test func progressLines() {
        let p = BenchProgress(total: 4, isTerminal: false, write: { _ in })
        #expect(p.line(done: 2, label: "fastv").hasPrefix("[2/4]  50%"))
        let t = BenchProgress(total: 4, isTerminal: true, write: { _ in })
        #expect(t.line(done: 1, label: "x").contains("ETA"))
    }
}

@Suite("Bench end to end")
struct BenchEndToEndTests {
    @Test func tinySweepOnTheBuiltinModelResumes() throws {
        let out = benchTempFolder("e2e")
        var o = BenchOptions(model: benchRepoRoot + "/builtin/models/llava", task: benchRepoRoot + "/builtin/tasks/scenes/sample.jsonl")
        o.methods = ["random", "pooling"]
        o.budgets = [.ratio(0.25)]
        o.limit = 1
        o.settings.maxNewTokens = 2
        o.settings.repeats = 1
        o.settings.warmup = 0
        o.out = out
        o.hashWeights = false
        o.progress = false
        let first = try BenchDriver.run(o)
        #expect(first.ran == 3 && first.skipped == 0)
        #expect(first.records.allSatisfy { $0.error == nil })
        let pooling = try #require(first.records.first { $0.method == "pooling" })
        #expect(pooling.visualTokens == 256 && pooling.achievedTokens == 64 && pooling.kvCacheBytes > 0)
        #expect(pooling.tflops > 0 && pooling.klDivergence != nil && pooling.top1Agrees != nil && pooling.correct != nil)
        let base = try #require(first.records.first { $0.method == "uncompressed" })
        #expect(base.klDivergence == 0 && base.answerAgrees == true && pooling.tflops < base.tflops)
        #expect(first.markdown.contains("| pooling | 25% |"))
        // Image rows record the LLM's share and the total from the image file too; no frames.
        for r in first.records {
            let llm = try #require(r.llmMs), total = try #require(r.totalMs)
            #expect(r.frames == nil && llm > 0 && llm <= r.endToEndMs && r.endToEndMs <= total, "\(r.key)")
        }
        // Pooling splices fewer rows in (renumbered); random drops rows inside the LLM (original positions).
        #expect(pooling.positionsRenumbered == true && base.positionsRenumbered == false)
        #expect(first.records.first { $0.method == "random" }?.positionsRenumbered == false)
        #expect(first.markdown.contains("| pooling | 25% | renumbered |") && first.markdown.contains("| random | 25% | original |"))
        for f in ["rows.jsonl", "results.csv", "results.json", "manifest.json", "pareto.svg", "pareto.png", "report.html",
                  "keepmaps/s0__pooling__25pct.png", "keepmaps/s0__uncompressed__100pct.png"] {
            #expect(FileManager.default.fileExists(atPath: out + "/" + f), "\(f) missing")
        }
        let second = try BenchDriver.run(o)
        #expect(second.ran == 0 && second.skipped == 3 && second.records.count == 3)
        // Rows of other decoding settings are not resumed into the same table.
        var changed = o
        changed.settings.maxNewTokens = 3
        #expect(throws: BenchError.self) { try BenchDriver.run(changed) }
        // Without a readable manifest the rows resume, with a warning.
        try "{".write(toFile: out + "/manifest.json", atomically: true, encoding: .utf8)
        var logged: [String] = []
        let third = try BenchDriver.run(o) { logged.append($0) }
        #expect(third.skipped == 3 && logged.contains { $0.contains("no readable manifest.json") })
    }
}
