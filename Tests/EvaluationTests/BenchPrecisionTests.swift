import Foundation
import Testing
@testable import Evaluation
import Models
import ModelIO

/// `tokc bench --precisions`: the composition arithmetic on hand-made cells, the option's checks, and
/// a tiny interleaved sweep on the built-in model.
@Suite struct BenchPrecisionTests {
    typealias Cell = BenchCompositionTable.Cell
    typealias Speedups = BenchCompositionTable.Speedups

    @Test func compositionArithmeticByHand() throws {
        // Reference 80% at 10 ms prefill, 2 ms/token decode. int8 alone: 78%, 8 ms, 1 ms.
        // fastv alone: 75%, 5 ms, 1.6 ms. Both: 70%, 5 ms, 0.8 ms.
        let table = BenchCompositionTable(cells: [
            Cell(precision: .f32, method: "uncompressed", budget: "100%", samples: 100, accuracy: 80, prefillMs: 10, decodeMsPerToken: 2),
            Cell(precision: .f32, method: "fastv", budget: "25%", samples: 100, accuracy: 75, prefillMs: 5, decodeMsPerToken: 1.6),
            Cell(precision: .int8, method: "uncompressed", budget: "100%", samples: 100, accuracy: 78, prefillMs: 8, decodeMsPerToken: 1),
            Cell(precision: .int8, method: "fastv", budget: "25%", samples: 100, accuracy: 70, prefillMs: 5, decodeMsPerToken: 0.8),
        ])
        let comps = table.compositions
        #expect(comps.count == 1)
        let c = try #require(comps.first)
        #expect(c.precision == .int8 && c.method == "fastv" && c.budget == "25%")
        #expect(c.accuracyChangeQuantization == -2 && c.accuracyChangeMethod == -5 && c.accuracyChangeSum == -7)
        #expect(c.accuracyChangeBoth == -10 && c.interaction == -3)
        #expect(abs(c.prefill.quantization - 1.25) < 1e-12 && abs(c.prefill.method - 2) < 1e-12)
        #expect(abs(c.prefill.product - 2.5) < 1e-12 && abs(c.prefill.both - 2) < 1e-12 && abs(c.prefill.bothOverProduct - 0.8) < 1e-12)
        #expect(abs(c.decode.product - 2.5) < 1e-12 && abs(c.decode.both - 2.5) < 1e-12 && abs(c.decode.bothOverProduct - 1) < 1e-12)
        let md = table.markdown()
        // Savings adding: prefill 10 − 2 − 5 = 3 ms → 3.33×; decode 2 − 1 − 0.4 = 0.6 ms → 3.33×.
        #expect(abs(c.prefill.additive - 10.0 / 3) < 1e-9 && abs(c.decode.additive - 2 / 0.6) < 1e-9)
        #expect(abs(Speedups(quantization: 2, method: 1.5, both: 1).additive - 6) < 1e-9)  // 1 − ½ − ⅓ of the time left
        #expect(Speedups(quantization: 4, method: 2, both: 1).additive.isNaN)  // 0.25 + 0.5 − 1 < 0: no time left
        #expect(md.contains("| int8 | fastv | 25% | -2.0 | -5.0 | -7.0 | -10.0 | -3.0 | 1.25× × 2.00× = 2.50× | 2.00× | 0.80 | 3.33× | 2.00× × 1.25× = 2.50× | 2.50× | 1.00 | 3.33× |"))
        // 1.96·sqrt(0.8·0.2/100) = 7.8 points: the interaction of 3 points is within it.
        #expect(md.contains("1 of 1 within ±7.8 points"))
        #expect(md.contains("Prefill: measured speedup of both / product of the two alone from 0.80 to 0.80"))
    }

    @Test func cellsTakeMediansAndQuartilesOfTheRowsTimes() throws {
        let records = try [40.0, 10.0, 20.0, 30.0, 1000.0].enumerated().map { i, ms in
            var r = try JSONDecoder().decode(BenchRecord.self, from: Data(#"{"key":"k\#(i)","method":"fastv","budget":"25%","sampleID":"s","sampleIndex":\#(i),"type":"","prediction":"","visualTokens":1,"requestedTokens":1,"achievedTokens":1,"prefillMs":0,"prefillMsRepeats":[],"decodeMsPerToken":0,"endToEndMs":0,"kvCacheBytes":0,"peakTensorBytes":0,"peakRSSBytes":0,"scoringMs":0,"tflops":0,"prefillTFLOPs":0,"notes":[]}"#.utf8))
            r.prefillMs = ms
            r.decodeMsPerToken = ms / 10
            return r
        }
        let row = try #require(BenchSummary.rows(records).first)
        let cell = BenchCompositionTable.Cell(precision: .int8, row: row, records: records)
        #expect(cell.prefillMs == 30 && cell.prefillQuartiles == [20, 40])  // the 1000 ms spike moves neither
        #expect(cell.decodeMsPerToken == 3 && cell.decodeQuartiles == [2, 4])
        #expect(Statistics.quantile([1, 2, 3, 4], 0.5) == 2.5 && Statistics.quantile([], 0.5).isNaN)
    }

    @Test func aMissingReferenceGivesNoComposition() {
        let table = BenchCompositionTable(cells: [
            Cell(precision: .int8, method: "uncompressed", budget: "100%", samples: 1, accuracy: 1, prefillMs: 1, decodeMsPerToken: 1),
        ])
        #expect(table.compositions.isEmpty)
        #expect(table.markdown().contains("No composition"))
    }

    @Test func precisionListChecks() throws {
        #expect(try BenchPrecision.parseList("f32,int8,int4") == [.f32, .int8, .int4])
        #expect(try BenchPrecision.parseList(" int4 , F32 ") == [.int4, .f32])
        for bad in ["f32", "int8,int4", "f32,int3", "f32,int8,int8", ""] {
            #expect(throws: BenchError.self, "\(bad)") { try BenchPrecision.parseList(bad) }
        }
    }

    /// Two rounds at f32 and int4 on the built-in model: every row runs once, each precision's folder
    /// holds the whole sweep, and the F32 copy answers exactly as the stored F16 model does (widening
    /// F16 to F32 is exact, so a difference would mean the copy or the sweep changed something).
    @Test func tinyInterleavedSweepOnTheBuiltinModel() throws {
        let out = benchTempFolder("precisions")
        var o = BenchOptions(model: benchRepoRoot + "/builtin/models/llava", task: benchRepoRoot + "/builtin/tasks/scenes/sample.jsonl")
        o.methods = ["fastv"]
        o.budgets = [.ratio(0.25)]
        o.limit = 2
        o.settings.maxNewTokens = 2
        o.out = out
        o.hashWeights = false
        o.progress = false
        var logs: [String] = []
        let outcome = try BenchPrecisionDriver.run(o, precisions: [.f32, .int4], rounds: 2) { logs.append($0) }
        // uncompressed, fastv, random, pooling × 2 samples × 2 precisions, each run once.
        #expect(outcome.ran == 16 && outcome.failed == 0 && outcome.skipped == 0)
        #expect(logs.contains("round 2/2: int4"))
        // A round runs whole samples: the first round's four rows are all of sample 0.
        let f32Rows = try BenchResultStore(folder: out + "/f32").records
        #expect(f32Rows.prefix(4).allSatisfy { $0.sampleIndex == 0 } && f32Rows.count == 8)
        for p in [BenchPrecision.f32, .int4] {
            #expect(outcome.sweeps[p]?.records.count == 8)
            #expect(FileManager.default.fileExists(atPath: out + "/\(p.rawValue)/report.html"))
        }
        let int4 = WeightStore(checkpoint: try Checkpoint(path: out + "/models/int4"))
        #expect(try int4.info("language_model.model.layers.0.mlp.up_proj.weight").quantization == .int4)
        #expect(try int4.info("language_model.model.embed_tokens.weight").dtype == .F16)
        #expect(outcome.table.compositions.map(\.method).sorted() == ["fastv", "pooling", "random"])
        #expect(outcome.markdown.contains("| int4 | fastv | 25% |"))
        #expect(FileManager.default.fileExists(atPath: out + "/precisions.md") && FileManager.default.fileExists(atPath: out + "/precisions.json"))

        var plain = o
        plain.out = out + "/plain"
        let reference = try BenchDriver.run(plain)
        let f32 = try #require(outcome.sweeps[.f32])
        for r in reference.records {
            let twin = try #require(f32.records.first { $0.key == r.key })
            #expect(twin.prediction == r.prediction && twin.achievedTokens == r.achievedTokens, "\(r.key)")
        }
        // A second call resumes every row instead of running it again.
        let again = try BenchPrecisionDriver.run(o, precisions: [.f32, .int4], rounds: 2)
        #expect(again.ran == 0 && again.skipped == 16)
    }

    @Test func refusesAShard() throws {
        var o = BenchOptions(model: benchRepoRoot + "/builtin/models/llava", task: benchRepoRoot + "/builtin/tasks/scenes/sample.jsonl")
        o.shard = try BenchShard(index: 0, count: 2)
        #expect(throws: BenchError.self) { try BenchPrecisionDriver.run(o, precisions: [.f32, .int8]) }
    }
}
