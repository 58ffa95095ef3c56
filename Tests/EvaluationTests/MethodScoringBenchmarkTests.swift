import Testing
import TokenCompression
@testable import Evaluation

/// Every builder of `tokc bench-methods` runs once at a tiny size (d = 64, 4 heads) on both
/// paths (one 12×12 image, and a NeXT-style base + 2×2 crops of 6×6) without crashing: each row
/// has a timing with an achieved count, or a reported error.
@Suite struct MethodScoringBenchmarkTests {
    static let tinyShapes = [MethodBenchmarkShape(visualTokens: 144, width: 64, heads: 4),
                             MethodBenchmarkShape(visualTokens: 180, width: 64, heads: 4)]

    @Test func everyImageVLMMethodIsListed() {
        let registered = Set(MethodCatalog.infos.filter { $0.domain == .imageVLM }.map(\.name))
        #expect(Set(MethodScoringBenchmark.methods) == registered)
        #expect(registered.count >= 17)
    }

    @Test(arguments: tinyShapes)
    func everyMethodGivesATimingOrAnError(shape: MethodBenchmarkShape) {
        for method in MethodScoringBenchmark.methods {
            let rows = MethodScoringBenchmark.measure(method: method, shape: shape, warmups: 0, repeats: 1)
            #expect(!rows.isEmpty, "\(method): no row")
            for row in rows {
                if let error = row.error {
                    #expect(row.milliseconds.isEmpty && !error.isEmpty, "\(row.label): error row with a number")
                } else {
                    #expect(row.milliseconds.count == 1, "\(row.label): no timing")
                    #expect((row.kept ?? -1) >= 0, "\(row.label): no achieved count")
                }
            }
        }
    }

    @Test func builtInputsAreReusedNotRegeneratedInsideTiming() throws {
        // Multi-stage methods replay their dry-run inputs; a regeneration would turn into an error row.
        for method in ["sparsevlm", "pdrop", "mustdrop", "ficoco_v"] {
            for row in MethodScoringBenchmark.measure(method: method, shape: Self.tinyShapes[0], warmups: 1, repeats: 2) {
                #expect(row.error == nil, "\(row.label): \(row.error ?? "")")
            }
        }
    }

    @Test func unknownMethodAndOddSizesAreReportedNotTrapped() {
        let unknown = MethodScoringBenchmark.measure(method: "nope", shape: Self.tinyShapes[0], repeats: 1)
        #expect(unknown.count == 1 && unknown[0].error != nil)
        // 150 visual tokens: neither a square grid nor 5 square partitions.
        let odd = MethodBenchmarkShape(visualTokens: 150, width: 64, heads: 4)
        #expect(MethodScoringBenchmark.measure(method: "fastervlm", shape: odd, warmups: 0, repeats: 1)[0].error != nil)
        #expect(MethodScoringBenchmark.measure(method: "fastv", shape: odd, warmups: 0, repeats: 1)[0].error == nil)
    }
}
