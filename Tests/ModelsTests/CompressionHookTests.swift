import Testing
import Evaluation
import Tensors
import TokenCompression
@testable import Models

/// The lifecycle every in-model hook shares (`CompressionHook`): a report that says no prefill
/// ran, a fresh report per prefill, method-prefixed notes and accumulated scoring time.
@Suite struct CompressionHookTests {
    @Test func reportLifecycle() {
        let hook = CompressionHook(method: "m", policy: .renumber)
        #expect(hook.lastReport().notes == ["m: no prefill ran yet"] && hook.lastReport().positionPolicy == .renumber)
        hook.beginReport(visualBefore: 10, requested: 4, achieved: 10, policy: .renumber)
        hook.note("stage 1")
        hook.noOp("budget covers all")
        let start = hook.scoringStart()
        hook.addScoringTime(since: start)
        let r = hook.lastReport()
        #expect(r.visualTokensBefore == 10 && r.requestedVisualTokens == 4 && r.achievedVisualTokens == 10)
        #expect(r.notes == ["m: stage 1", "m: budget covers all; no-op"] && r.scoringSeconds >= 0)
        hook.beginReport(visualBefore: 5, requested: 1, achieved: 5, policy: .renumber)
        #expect(hook.lastReport().notes.isEmpty && hook.lastReport().visualTokensBefore == 5)
    }

    /// Every in-model method reports through the shared lifecycle before and after a prefill.
    @Test(arguments: MethodCatalog.llavaMethods)
    func everyAdapterSaysNoPrefillRanYetThenReportsTheRun(_ method: String) throws {
        let c = try MethodCatalog.compression(method: method, budget: .count(16), parameters: requiredTestParameters[method] ?? [:])
        #expect(c.report().notes == ["\(method): no prefill ran yet"])
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        _ = try? model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook, visionHook: c.visionHook)
        #expect(!c.report().notes.contains("\(method): no prefill ran yet"))
    }
}
