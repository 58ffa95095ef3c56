import Foundation
import Models
import Runtime
import Testing
@testable import Evaluation

/// `tokc fitprune-fit` on the built-in model: schemes per ratio, more removal for a larger ratio,
/// and a file that the in-model adapter reads back.
@Suite struct FitPruneFittingTests {
    @Test func fitsSchemesThatTheAdapterReads() throws {
        let runner = try VLMRunner(folder: benchRepoRoot + "/builtin/models/llava")
        let samples = Array(try BenchTask.load(jsonl: benchRepoRoot + "/builtin/tasks/scenes/val.jsonl").prefix(2))
        let file = try FitPruneFitting.fit(runner: runner, samples: samples, ratios: [0.5, 0.89], taskName: "val")
        let a = try #require(file.schemes["0.5"]), b = try #require(file.schemes["0.89"])
        #expect(a.count == 4 && b.count == 4 && a.reduce(0, +) < b.reduce(0, +) && b.reduce(0, +) <= 256)
        let path = NSTemporaryDirectory() + "fit-\(UUID().uuidString).json"
        try file.write(path: path)
        #expect(try FitPruneSchemeFile.read(path: path).schemesByRatio()[0.89] == b)
        #expect(throws: BenchError.self) { try FitPruneFitting.fit(runner: runner, samples: samples, ratios: [1.5], taskName: "val") }
        #expect(throws: BenchError.self) { try FitPruneFitting.fit(runner: runner, samples: [], ratios: [0.5], taskName: "val") }
    }
}
