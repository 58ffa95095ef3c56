import Foundation
import Testing
import ModelIO
import Models
import Runtime
import TokenCompression
@testable import Evaluation

/// `tokc bench --task diffusion` end to end on the tiny random DiT (accuracy is meaningless there; the
/// machinery is not): rows, speedups against the FLOPs convention, fidelity against the uncached twin,
/// the written table, CSV, JSON and grid, and the refusals.
@Suite struct BenchDiffusionTests {
    static let fixtures = URL(fileURLWithPath: benchRepoRoot).appendingPathComponent("Tests/Fixtures/models")

    static func options(out: String) -> BenchDiffusion.Options {
        var o = BenchDiffusion.Options(model: fixtures.appendingPathComponent("dit-tiny").path,
                                       classifier: benchRepoRoot + "/" + BenchDiffusion.builtinClassifier,
                                       realTask: benchRepoRoot + "/" + BenchDiffusion.builtinRealTask)
        o.samples = 3
        o.steps = 4
        o.realLimit = 6
        o.out = out
        return o
    }

    /// The sampler's factory for the test: FORA and ToCa (DiT) as `tokc generate` builds them.
    static func factory(_ spec: BenchDiffusion.MethodSpec, _ context: BenchDiffusion.SamplerContext) throws -> BenchDiffusion.SamplerMethod {
        .init(caching: try caching(spec, context.steps, context.layers, context.tokens), settings: spec.description)
    }

    static func caching(_ spec: BenchDiffusion.MethodSpec, _ steps: Int, _ layers: Int, _ tokens: Int) throws -> DiTCaching {
        switch spec.name {
        case "fora":
            return DiTCaching(method: "fora", schedule: try FORA.schedule(FORA.Parameters(numSteps: steps, interval: spec.interval ?? 3, numLayers: layers)))
        case "toca":
            var p = ToCa.Parameters()
            p.numSteps = steps
            p.numLayers = layers
            p.numTokens = tokens
            p.freshThreshold = spec.interval ?? 2
            return DiTCaching(method: "toca", schedule: try ToCa.schedule(p).cacheSchedule, toca: p)
        default: throw BenchError("no such method '\(spec.name)'")
        }
    }

    @Test func runsEndToEndWithTwoMethods() throws {
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("bench-diffusion-\(UUID().uuidString)").path
        defer { try? FileManager.default.removeItem(atPath: out) }
        let o = Self.options(out: out)
        let r = try BenchDiffusion.run(o, candidates: ["fora", "toca", "nope"], caching: Self.factory, log: { _ in })
        #expect(r.rows.map(\.name) == ["uncached", "fewer steps", "fora", "toca"])
        #expect(r.rows.allSatisfy { $0.error == nil })
        #expect(r.notes.contains { $0.hasPrefix("nope: not runnable") })
        #expect(r.realImages == 6)
        let base = r.rows[0]
        #expect(base.psnr == nil && base.ssim == nil && base.predictedSpeedup == 1)
        // Fewer steps: 2 of 4 calls, exactly half the FLOPs.
        #expect(r.rows[1].steps == 2 && abs(r.rows[1].predictedSpeedup - 2) < 1e-12)
        // FORA N = 3 over 4 calls: the predicted speedup is the analytic count's.
        let shape = try DiTPipeline(folder: o.model).transformer.config.flopsShape
        let fora = try Self.caching(.init(name: "fora"), 4, shape.layers, shape.tokens)
        let analytic = try DiffusionFlopsReport.count(DiffusionFlopsRequest(
            model: "dit-tiny", shape: shape, steps: 4, guidance: o.guidance,
            fractions: try DiffusionFlopsRequest.fractions(schedule: fora.schedule, freshTokens: nil, tokens: shape.tokens)))
        #expect(abs(r.rows[2].predictedSpeedup - analytic.uncachedTotal / analytic.total) < 1e-9)
        for row in r.rows.dropFirst() {
            #expect(row.psnr.map { $0.isFinite && $0 > 0 } == true)
            #expect(row.ssim.map { $0 > -1 && $0 < 1 } == true)
        }
        for row in r.rows {
            #expect(row.accuracy >= 0 && row.accuracy <= 1)
            #expect(row.frechet.isFinite && row.frechet > 0)
            #expect(row.samplingSeconds > 0 && row.tflops > 0)
        }

        try BenchDiffusionOutput.write(r, to: out)
        let csv = try String(contentsOfFile: out + "/results.csv", encoding: .utf8).split(separator: "\n")
        #expect(csv.count == 5 && csv[0] == Substring(BenchDiffusionOutput.csvHeader))
        let md = try String(contentsOfFile: out + "/diffusion.md", encoding: .utf8)
        #expect(md.contains("| toca |") && md.contains("stand-in for FID"))
        let json = try JSONSerialization.jsonObject(with: try Data(contentsOf: URL(fileURLWithPath: out + "/results.json"))) as? [String: Any]
        #expect((json?["rows"] as? [Any])?.count == 4)
        let grid = try RGBImage.load(path: out + "/grid.png")
        let (w, h) = (base.images[0].width, base.images[0].height)
        let scale = max(1, (64 + max(w, h) - 1) / max(w, h))
        #expect(grid.width == 4 * (w * scale + 2) + 2)  // one column per row of the table
        #expect(grid.height == 3 * (h * scale + 2) + 2)  // one row per sample
    }

    @Test func explicitMethodThatCannotRunIsAFailedRow() throws {
        var o = Self.options(out: "unused")
        o.samples = 2
        o.steps = 2
        o.methods = [.init(name: "nope")]
        let r = try BenchDiffusion.run(o, candidates: [], caching: Self.factory, log: { _ in })
        #expect(r.rows.last?.name == "nope" && r.rows.last?.error?.contains("no such method") == true)
        #expect(r.outcome.failed == 1)
    }

    @Test func badInputIsRefused() throws {
        var o = Self.options(out: "unused")
        o.samples = 1
        #expect(throws: BenchError.self) { try BenchDiffusion.run(o, candidates: [], caching: Self.factory, log: { _ in }) }
        o = Self.options(out: "unused")
        o.model = Self.fixtures.appendingPathComponent("pixart-tiny").path
        #expect(throws: BenchError.self) { try BenchDiffusion.run(o, candidates: [], caching: Self.factory, log: { _ in }) }
        o = Self.options(out: "unused")
        o.realTask = "/nonexistent/test.jsonl"
        #expect(throws: BenchError.self) { try BenchDiffusion.run(o, candidates: [], caching: Self.factory, log: { _ in }) }
    }
}
