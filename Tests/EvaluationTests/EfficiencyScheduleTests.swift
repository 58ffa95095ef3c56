import Foundation
import Testing
import TokenCompression
@testable import Evaluation

/// Per-method schedules against methods/lvlm.md §0.5 (LLaVA-1.5-7B, N = 576, 32 layers).
@Suite struct EfficiencyScheduleTests {
    static let efficiencyContext = MethodSchedules.Context(visual: 576, llmLayers: 32)

    static func efficiencyPlan(_ m: String, _ keep: Int? = nil) throws -> [Int] {
        try MethodSchedules.plan(method: m, keep: keep, context: efficiencyContext).llmVisual
    }

    static func runs(_ pairs: [(Int, Int)]) -> [Int] { pairs.flatMap { Array(repeating: $0.0, count: $0.1) } }

    /// FitPrune's shipped tables: the 60 % one by default (576 → 127), the closest table for a keep.
    @Test func fitPruneFollowsTheShippedTables() throws {
        let s = try Self.efficiencyPlan("fitprune")
        #expect(s.count == 32 && s.first == 576 && s[1] == 562 && s.last == 127)
        #expect(abs(Double(s.reduce(0, +)) / 32 - 245.0) < 0.05)
        #expect(try Self.efficiencyPlan("fitprune", 40).last == 576 - FitPrune.shippedSchemes[90]!.reduce(0, +))
        #expect(throws: FlopsError.self) {
            try MethodSchedules.plan(method: "fitprune", keep: nil, context: .init(visual: 256, llmLayers: 4))
        }
    }

    @Test func dartKeeps4Plus8FloorMOver8() throws {
        #expect(try Self.efficiencyPlan("dart", 192) == Self.runs([(576, 2), (196, 30)]))
        #expect(try Self.efficiencyPlan("dart", 128) == Self.runs([(576, 2), (132, 30)]))
        #expect(try Self.efficiencyPlan("dart", 64) == Self.runs([(576, 2), (68, 30)]))
        #expect(try Self.efficiencyPlan("dart") == Self.runs([(576, 2), (132, 30)]))
    }

    @Test func fastVCutsAtLayer2() throws {
        #expect(try Self.efficiencyPlan("fastv") == Self.runs([(576, 2), (288, 30)]))
        #expect(try Self.efficiencyPlan("fastv", 64) == Self.runs([(576, 2), (64, 30)]))
    }

    @Test func sparseVLMOfficialSchedules() throws {
        #expect(try Self.efficiencyPlan("sparsevlm", 192) == Self.runs([(576, 3), (309, 4), (204, 9), (113, 16)]))
        #expect(try Self.efficiencyPlan("sparsevlm", 128) == Self.runs([(576, 3), (312, 4), (117, 9), (39, 16)]))
        #expect(try Self.efficiencyPlan("sparsevlm", 64) == Self.runs([(576, 3), (82, 4), (32, 9), (18, 16)]))
        #expect(throws: FlopsError.self) { try Self.efficiencyPlan("sparsevlm", 100) }
    }

    @Test func pdropStages() throws {
        let s = try Self.efficiencyPlan("pdrop")
        #expect(s == Self.runs([(576, 8), (288, 8), (144, 8), (72, 8)]))
        #expect(Double(s.reduce(0, +)) / 32 == 270)
        // A budget solves λ: the layer average lands at or just under it.
        let b = try MethodSchedules.plan(method: "pdrop", keep: 192, context: Self.efficiencyContext)
        #expect(b.averageVisual <= 192 && b.averageVisual > 188)
        #expect(b.llmVisual.prefix(8).allSatisfy { $0 == 576 })
        // Layers 0–7 at 576 bound the average below by 144: a smaller budget is an error.
        #expect(throws: FlopsError.self) { try Self.efficiencyPlan("pdrop", 128) }
    }

    @Test func visionSideFromLayerZero() throws {
        #expect(try Self.efficiencyPlan("fastervlm", 58) == Array(repeating: 58, count: 32))
        #expect(try Self.efficiencyPlan("hired") == Array(repeating: 115, count: 32))  // int(576·0.2)
        #expect(try Self.efficiencyPlan("visionzip", 192) == Array(repeating: 192, count: 32))
        #expect(try Self.efficiencyPlan("ficoco_v") == Array(repeating: 114, count: 32))
        #expect(try Self.efficiencyPlan("pooling") == Array(repeating: 144, count: 32))
        #expect(try Self.efficiencyPlan("prumerge", 32) == Array(repeating: 32, count: 32))
        #expect(throws: FlopsError.self) { try Self.efficiencyPlan("prumerge") }
        #expect(try Self.efficiencyPlan("random", 128) == Self.runs([(576, 2), (128, 30)]))
    }

    /// AnyRes: per-image rules multiply by passes; DART switches to its NeXT branch.
    @Test func anyResRules() throws {
        let next = MethodSchedules.Context(visual: 2880, llmLayers: 32)
        #expect(try MethodSchedules.plan(method: "fastervlm", keep: 144, context: next).llmVisual.first == 720)
        // NeXT DART: 4 + 8·⌊min(320, 2876)/8⌋ = 324.
        #expect(try MethodSchedules.plan(method: "dart", keep: nil, context: next).llmVisual.last == 324)
    }

    @Test func unknownMethodListsSupported() {
        do {
            _ = try Self.efficiencyPlan("nosuch")
            Issue.record("no error")
        } catch let e as FlopsError {
            #expect(e.description.contains("fastv") && e.description.contains("sparsevlm"))
        } catch { Issue.record("wrong error \(error)") }
        #expect(throws: FlopsError.self) { try Self.efficiencyPlan("mustdrop", 64) }
    }

    @Test func customSchedules() throws {
        #expect(try VisualTokenPlan.parseSchedule("576x2,288x30", layers: 32) == Self.runs([(576, 2), (288, 30)]))
        #expect(try VisualTokenPlan.parseSchedule("576×2 + 288×30", layers: 32) == Self.runs([(576, 2), (288, 30)]))
        #expect(throws: FlopsError.self) { try VisualTokenPlan.parseSchedule("576x2", layers: 32) }
        #expect(throws: FlopsError.self) { try VisualTokenPlan.parseSchedule("abc", layers: 1) }
    }
}
