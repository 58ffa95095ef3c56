import Foundation
import ModelIO
import Testing
import Evaluation
import Tensors
import TokenCompression
@testable import Models

/// Compressed prefill against transformers on the same kept indices and position ids
/// (tools/fixtures/make_compressed_fixtures.py): DART and FastV (one cut, original positions) as
/// the issue asks, and PDrop (three cuts, renumbered positions). With `TOKC_WRITE_KEPT=DIR` set,
/// the test instead writes what our runtime keeps to DIR/kept.json, the script's input.
@Suite struct CompressionParityTests {
    static let runs: [(method: String, budget: Int)] = [("dart", 16), ("fastv", 16), ("pdrop", 32)]

    struct Stage: Codable, Equatable {
        var layer: Int
        /// Prompt indices of the rows entering layers ≥ `layer`.
        var kept: [Int]
        var positions: [Int]
    }
    struct Run: Codable, Equatable { var stages: [Stage] }

    /// Forwards to a method's hook and records every cut it makes.
    final class Recorder: PrefillHook {
        let inner: PrefillHook
        var stages: [Stage] = []
        init(_ inner: PrefillHook) { self.inner = inner }
        func attentionRecord(layer: Int) -> AttentionRecord { inner.attentionRecord(layer: layer) }
        func afterPrefill(_ summary: PrefillSummary) throws { try inner.afterPrefill(summary) }
        func cacheCompaction(_ summary: PrefillSummary) throws -> [Int: [Int]] { try inner.cacheCompaction(summary) }
        func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? {
            guard let d = try inner.beforeLayer(layer, state: state) else { return nil }
            let positions = d.positions == .renumber ? Array(d.keptRows.indices) : d.keptRows.map { state.positions[$0] }
            stages.append(Stage(layer: layer, kept: d.keptRows.map { state.originalIndices[$0] }, positions: positions))
            return d
        }
    }

    func ours(_ method: String, budget: Int) throws -> (Run, LlavaPrefillResult, LlavaModel) {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: method, budget: .count(budget))
        let recorder = Recorder(c.prefillHook!)
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: recorder)
        #expect(recorder.stages.last?.kept == c.report().keptIndices)
        return (Run(stages: recorder.stages), p, model)
    }

    @Test func writeKeptWhenAsked() throws {
        guard let dir = ProcessInfo.processInfo.environment["TOKC_WRITE_KEPT"] else { return }
        var all: [String: Run] = [:]
        for r in Self.runs { all[r.method] = try ours(r.method, budget: r.budget).0 }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(all).write(to: URL(fileURLWithPath: dir + "/kept.json"))
    }

    @Test(arguments: runs.map(\.method))
    func compressedLogitsMatchTransformers(_ method: String) throws {
        let folder = CompressionFixture.folder
        let expected = try JSONDecoder().decode([String: Run].self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/kept.json")))
        let reference = try SafetensorsFile(path: folder + "/reference.safetensors")
        let budget = Self.runs.first { $0.method == method }!.budget
        let (run, prefill, model) = try ours(method, budget: budget)
        // The reference pruned exactly what we keep now, and something was pruned.
        #expect(run == expected[method])
        #expect(!run.stages.isEmpty && prefill.cache.tokenCounts.last! < CompressionFixture.promptLength)
        let d = modelsMaxAbs(prefill.logits, try reference.tensor("\(method)_logits"))
        #expect(d <= 1e-4, "\(method): compressed logits differ from transformers by \(d)")
        print("compressed parity \(method): max abs logits difference \(d)")
        let tokens = try model.language.generate(after: prefill.decoder, maxNewTokens: 3, stopTokens: [])
        #expect(tokens == (try reference.integers("\(method)_greedy").map { Int($0) }))
    }
}
