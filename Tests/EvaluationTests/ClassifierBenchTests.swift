import Foundation
import ModelIO
import Models
import Runtime
import Tensors
import Testing
import TokenCompression
@testable import Evaluation

/// A tiny classifier task on the ViT fixture: PNGs of various sizes in a temporary folder, answers the
/// uncompressed model's own top-1 (so its accuracy is known) except one wrong answer.
struct ClassifierBenchTask {
    let folder: String
    let task: String
    let adapters: String
    let model = benchRepoRoot + "/Tests/Fixtures/models/vit"
    static let count = 5

    init() throws {
        folder = benchTempFolder("cls-task")
        let sizes = [(32, 32), (40, 30), (64, 20), (33, 47), (50, 50)]
        var lines: [String] = []
        let runner = try ClassifierRunner(folder: benchRepoRoot + "/Tests/Fixtures/models/vit")
        var rng = SplitMix64(seed: 11)
        for (i, (w, h)) in sizes.enumerated() {
            let pixels = (0..<(w * h * 3)).map { _ in UInt8(rng.next() % 256) }
            let image = try RGBImage(width: w, height: h, pixels: pixels)
            let path = folder + "/img\(i).png"
            try image.writePNG(path: path)
            let top = try runner.classify([try runner.prepare(image)]).predictions[0][0].label
            let answer = i == 4 ? (top == "LABEL_0" ? "LABEL_1" : "LABEL_0") : top
            lines.append(#"{"id": "c\#(i)", "image": "img\#(i).png", "answer": "\#(answer)", "type": "\#(i % 2 == 0 ? "even" : "odd")"}"#)
        }
        task = folder + "/task.jsonl"
        try Data((lines.joined(separator: "\n") + "\n").utf8).write(to: URL(fileURLWithPath: task))
        adapters = folder + "/adapters.safetensors"
        var w = SafetensorsWriter()
        for i in 0..<3 {
            for (n, ws, bs) in [("w1", [8, 32], [8]), ("w2", [4, 8], [4]), ("w3", [8, 4], [8]), ("w4", [8, 12], [8]), ("w5", [32, 8], [32])] {
                let wt = try Tensor(shape: ws, values: (0..<ws.reduce(1, *)).map { _ in rng.uniform() * 0.4 - 0.2 })
                let bt = try Tensor(shape: bs, values: (0..<bs.reduce(1, *)).map { _ in rng.uniform() * 0.4 - 0.2 })
                try w.add("blocks.\(i).adapter.\(n).weight", wt)
                try w.add("blocks.\(i).adapter.\(n).bias", bt)
            }
        }
        try w.write(to: adapters)
    }

    func options(out: String) -> BenchOptions {
        var o = BenchOptions(model: model, task: task)
        o.out = out
        o.hashWeights = false
        o.progress = false
        o.batchSize = 2
        o.settings.parameters = ["sparse_tuning": ["adapters": adapters]]
        return o
    }
}

@Suite struct ClassifierBenchTests {
    /// The whole sweep on the fixture: every setting's rows, the table, its files, and a resume.
    @Test func tinySweepProducesRowsAndATable() throws {
        let t = try ClassifierBenchTask()
        let out = benchTempFolder("cls-out")
        let o = t.options(out: out)
        var log: [String] = []
        let outcome = try BenchDriver.run(o) { log.append($0) }
        // uncompressed + ToMe r = 2, 4, 8, 12, 16 + EViT 0.9, 0.7, 0.5 + Sparse-Tuning, for 5 images.
        #expect(outcome.records.count == 10 * ClassifierBenchTask.count && outcome.failed == 0 && outcome.skipped == 0)
        #expect(outcome.records.allSatisfy { $0.batchSize == ($0.sampleIndex == 4 ? 1 : 2) && $0.error == nil })
        let md = outcome.markdown
        for fragment in ["| Method | Setting | Tokens per block (in→…→out) | GFLOPs/img (↓%) | Images/s @ batch 2 (×)",
                         "| uncompressed | – | 17→17→17→17 |", "| tome | r=2 | 17→15→13→11 |", "| tome | r=16 | 17→9→5→3 |",
                         "| evit | keep_rate=0.7 | 17→17→14→12 |", "| sparse_tuning | keep_rate=0.7 | 17→17→14→12 |",
                         "tome @ r=16: tome: r = 16 clamped at blocks 0, 1, 2 to 8, 4, 2"] {
            #expect(md.contains(fragment), "missing: \(fragment)\n\(md)")
        }
        let rows = BenchSummary.rows(outcome.records, classifier: true)
        let base = try #require(rows.first { $0.method == "uncompressed" })
        #expect(base.accuracy == 80 && base.top1Agreement == 100 && base.tokensPerBlock == [17, 17, 17, 17])
        #expect(base.throughput > 0 && base.tflops > 0 && base.peakTensorBytes > 0)
        let r8 = try #require(rows.first { $0.method == "tome" && $0.budget == "r=8" })
        // GFLOPs follow the traced tokens: fewer rows, fewer FLOPs, by the analytic count.
        #expect(r8.tflops < base.tflops && r8.tflopsReduction > 30)
        let config = try ViTClassifierConfig.load(folder: t.model)
        let expected = try ViTFlops.perImage(config: config, classes: 10, rowsEnteringBlock: [17, 9, 5], rowsEnteringMLP: [9, 5, 3])
        #expect(abs(r8.tflops * 1e12 - expected) < 1)
        let sparse = try #require(rows.first { $0.method == "sparse_tuning" })
        let evit = try #require(rows.first { $0.method == "evit" && $0.budget == "keep_rate=0.7" })
        #expect(sparse.tflops > evit.tflops, "the adapters' FLOPs are counted")
        // Files: CSV with the classifier columns, JSON with the manifest's kind, the plot against images/s, the report.
        let csv = try String(contentsOfFile: out + "/results.csv", encoding: .utf8)
        #expect(csv.hasPrefix("method,setting,samples,errors,tokens_in,tokens_out,tokens_per_block,gflops_per_image"))
        #expect(csv.split(separator: "\n").count == 11)
        let manifest = try #require(BenchOutput.readManifest(folder: out))
        #expect(manifest.isClassifier && manifest.batchSize == 2 && manifest.methods == ["tome", "evit", "sparse_tuning"])
        #expect(try String(contentsOfFile: out + "/pareto.svg", encoding: .utf8).contains("images/s"))
        let html = try String(contentsOfFile: out + "/report.html", encoding: .utf8)
        #expect(html.contains("Which patches became one token") && html.contains("Throughput, cost and accuracy"))
        let maps = BenchKeepMaps.collect(folders: [out])
        #expect(maps.count == 10 * 3 && maps.contains { $0.method == "tome" && $0.budget == "r=8" && $0.sample == 0 })

        // Resume: nothing runs again; another batch size is another run.
        let again = try BenchDriver.run(o)
        #expect(again.ran == 0 && again.skipped == 50 && again.records.count == 50)
        var other = o
        other.batchSize = 4
        #expect { try BenchDriver.run(other) } throws: { "\($0)".contains("batch size 2 → 4") }
        // tokc report re-renders the classifier table from the folder.
        let merged = try BenchOutput.merge(folders: [out])
        #expect(try BenchOutput.writeAll(records: merged.records, manifests: merged.manifests, folder: benchTempFolder("cls-report")) == md)
    }

    /// A list replaces a method's default values; other parameters apply to each setting.
    @Test func sweepParametersAndMethods() throws {
        let shape = ViTModelShape(layers: 12, width: 768, heads: 12, patchesPerSide: 14, classTokens: 1)
        let plan = try ClassifierPlan(methods: ["tome"], parameters: ["tome": ["r": "4,8", "schedule": "decreasing"]], shape: shape,
                                      sampleCount: 7, batchSize: 3)
        #expect(plan.settings.map(\.label) == ["100%", "r=4 decreasing", "r=8 decreasing"])
        #expect(plan.batches == [0..<3, 3..<6, 6..<7])
        #expect(plan.keys(shard: try BenchShard(index: 1, count: 2)) == ["uncompressed|100%|3", "uncompressed|100%|4", "uncompressed|100%|5",
                                                                         "tome|r=4 decreasing|3", "tome|r=4 decreasing|4", "tome|r=4 decreasing|5",
                                                                         "tome|r=8 decreasing|3", "tome|r=8 decreasing|4", "tome|r=8 decreasing|5"])
        // Default: ToMe and EViT; Sparse-Tuning only with its adapters.
        let defaults = try ClassifierPlan(methods: nil, parameters: [:], shape: shape, sampleCount: 1, batchSize: 32)
        #expect(defaults.methods == ["uncompressed", "tome", "evit"] && defaults.settings.count == 9)
        for (methods, params, fragment) in [
            (["fastv"], [String: [String: String]](), "cannot run inside a ViT classifier (it runs in LLaVA models)"),
            (["sparse_tuning"], [:], "adapters=PATH"),
            (["tome"], ["evit": ["keep_rate": "0.5"]], "parameters given for 'evit'"),
            (["tome"], ["tome": ["r": "4,4"]], "listed twice"),
            (["evit"], ["evit": ["keep_rate": "1.5"]], "keep_rate=1.5"),
        ] {
            #expect { try ClassifierPlan(methods: methods, parameters: params, shape: shape, sampleCount: 1, batchSize: 2) } throws: {
                "\($0)".contains(fragment)
            }
        }
        #expect(throws: BenchError.self) { try ClassifierPlan(methods: nil, parameters: [:], shape: shape, sampleCount: 1, batchSize: 0) }
    }

    /// Bad input stops the sweep before it starts, with the reason; a bad image fails only its rows.
    @Test func badInputs() throws {
        let t = try ClassifierBenchTask()
        var o = t.options(out: benchTempFolder("cls-bad"))
        o.budgetsGiven = true
        #expect { try BenchDriver.run(o) } throws: { "\($0)".contains("--budgets applies to LLaVA models") }
        // An adapters file for another width.
        let wide = t.folder + "/wide.safetensors"
        var w = SafetensorsWriter()
        for i in 0..<3 { for n in ["w1", "w2", "w3", "w4", "w5"] { try w.add("blocks.\(i).adapter.\(n).weight", Tensor(zeros: [8, 48])); try w.add("blocks.\(i).adapter.\(n).bias", Tensor(zeros: [8])) } }
        try w.write(to: wide)
        o = t.options(out: benchTempFolder("cls-bad"))
        o.settings.parameters = ["sparse_tuning": ["adapters": wide]]
        #expect { try BenchDriver.run(o) } throws: { "\($0)".contains("the model's hidden_size is 32") }
        // Preprocessing that misses the fixed size.
        let folder = benchTempFolder("cls-model")
        for f in ["config.json", "model.safetensors"] { try FileManager.default.copyItem(atPath: t.model + "/" + f, toPath: folder + "/" + f) }
        try Data(#"{"image_processor_type": "ViTImageProcessor", "size": {"height": 40, "width": 40}}"#.utf8).write(to: URL(fileURLWithPath: folder + "/preprocessor_config.json"))
        o = BenchOptions(model: folder, task: t.task)
        o.out = benchTempFolder("cls-bad"); o.hashWeights = false; o.progress = false
        #expect { try BenchDriver.run(o) } throws: { "\($0)".contains("fixed-size") && "\($0)".contains("[3, 40, 40]") }
        // A task line whose image is missing: its rows fail, the rest run.
        let broken = t.folder + "/broken.jsonl"
        try Data((try String(contentsOfFile: t.task, encoding: .utf8) + #"{"id": "gone", "image": "missing.png", "answer": "LABEL_0"}"# + "\n").utf8)
            .write(to: URL(fileURLWithPath: broken))
        o = BenchOptions(model: t.model, task: broken)
        o.out = benchTempFolder("cls-bad"); o.hashWeights = false; o.progress = false; o.batchSize = 4
        o.methods = ["tome"]
        o.settings.parameters = ["tome": ["r": "4"]]
        let outcome = try BenchDriver.run(o)
        #expect(outcome.failed == 2 && outcome.ran == 10)
        #expect(outcome.records.filter { $0.error != nil }.allSatisfy { $0.sampleID == "gone" && $0.error!.contains("does not exist") })
        #expect(outcome.exitStatus(keepGoing: false) == BenchDriver.failedRowsExitCode)
        // Answers that name no class are said up front.
        let unknown = t.folder + "/unknown.jsonl"
        try Data(#"{"image": "img0.png", "answer": "cat"}"#.utf8).write(to: URL(fileURLWithPath: unknown))
        o = BenchOptions(model: t.model, task: unknown)
        o.out = benchTempFolder("cls-bad"); o.hashWeights = false; o.progress = false; o.methods = ["tome"]
        var log: [String] = []
        _ = try BenchDriver.run(o) { log.append($0) }
        #expect(log.contains { $0.contains("1 of 1 answers name no class of the model (e.g. 'cat')") })
    }
}

@Suite struct ViTFlopsTests {
    /// DeiT-S at 224 (197 tokens, width 384, 12 blocks): 4.6 GMACs uncompressed and, with EViT's fused
    /// pruning at blocks 3, 6, 9 (the block's MLP already on the kept rows), the EViT README's GMACs for
    /// keep rates 0.9…0.5 (4.0, 3.5, 3.0, 2.6, 2.3). We count a multiply-add as 2 FLOPs.
    @Test func deitSMatchesTheEViTReadme() throws {
        let c = try ViTClassifierConfig(head: .vit, hiddenSize: 384, intermediateSize: 1536, layers: 12, heads: 6, imageSize: 224, patchSize: 16)
        func gmacs(_ entering: [Int], _ mlp: [Int]) throws -> Double {
            try ViTFlops.perImage(config: c, classes: 1000, rowsEnteringBlock: entering, rowsEnteringMLP: mlp) / 2e9
        }
        #expect(abs(try gmacs(Array(repeating: 197, count: 12), Array(repeating: 197, count: 12)) - 4.6) < 0.05)
        for (keep, readme) in [(0.9, 4.0), (0.8, 3.5), (0.7, 3.0), (0.6, 2.6), (0.5, 2.3)] {
            let counts = EViT.tokenCounts(initialTokens: 197, pruningBlocks: 3, parameters: .init(keepRate: keep))
            var entering: [Int] = [], mlp: [Int] = []
            var stage = 0
            for b in 0..<12 {
                entering.append(counts[stage])
                if [3, 6, 9].contains(b) { stage += 1 }
                mlp.append(counts[stage])
            }
            #expect(abs(try gmacs(entering, mlp) - readme) < 0.05, "keep \(keep)")
        }
        #expect(throws: BenchError.self) { try ViTFlops.perImage(config: c, classes: 10, rowsEnteringBlock: [197], rowsEnteringMLP: [197]) }
    }
}
