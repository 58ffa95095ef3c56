import Foundation
import ModelIO
import Testing
import Tensors
import TokenCompression
@testable import Models

/// DART and FastV against transformers on the same kept indices and position ids
/// (tools/fixtures/make_compressed_fixtures.py). With `TOKC_WRITE_KEPT=DIR` set, the test instead
/// writes what our runtime keeps to DIR/kept.json, the script's input.
@Suite struct CompressionParityTests {
    static let runs: [(method: String, budget: Int)] = [("dart", 16), ("fastv", 16)]

    struct Kept: Codable, Equatable {
        var layer: Int
        var kept: [Int]
        var positions: [Int]
    }

    func ours(_ method: String, budget: Int) throws -> (Kept, LlavaPrefillResult, LlavaModel) {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try ModelCompression.make(method: method, budget: .count(budget))
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook)
        return (Kept(layer: 2, kept: c.report().keptIndices, positions: p.decoder.positions), p, model)
    }

    @Test func writeKeptWhenAsked() throws {
        guard let dir = ProcessInfo.processInfo.environment["TOKC_WRITE_KEPT"] else { return }
        var all: [String: Kept] = [:]
        for r in Self.runs { all[r.method] = try ours(r.method, budget: r.budget).0 }
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        try encoder.encode(all).write(to: URL(fileURLWithPath: dir + "/kept.json"))
    }

    @Test(arguments: runs.map(\.method))
    func compressedLogitsMatchTransformers(_ method: String) throws {
        let folder = CompressionFixture.folder
        let expected = try JSONDecoder().decode([String: Kept].self, from: Data(contentsOf: URL(fileURLWithPath: folder + "/kept.json")))
        let reference = try SafetensorsFile(path: folder + "/reference.safetensors")
        let budget = Self.runs.first { $0.method == method }!.budget
        let (kept, prefill, model) = try ours(method, budget: budget)
        // The reference pruned exactly what we keep now.
        #expect(kept == expected[method])
        let d = modelsMaxAbs(prefill.logits, try reference.tensor("\(method)_logits"))
        #expect(d <= 1e-4, "\(method): compressed logits differ from transformers by \(d)")
        print("compressed parity \(method): max abs logits difference \(d)")
        let tokens = try model.language.generate(after: prefill.decoder, maxNewTokens: 3, stopTokens: [])
        #expect(tokens == (try reference.integers("\(method)_greedy").map { Int($0) }))
    }
}
