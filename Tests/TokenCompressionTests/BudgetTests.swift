import Testing
@testable import TokenCompression

/// `Budget.resolve` is the one rule every adapter and the runtime use for "does this budget compress".
@Suite struct BudgetTests {
    @Test func resolvesToKeepOrAnExplicitNoOp() throws {
        #expect(try Budget.count(64).resolve(over: 256) == .keep(64))
        #expect(try Budget.ratio(0.25).resolve(over: 256) == .keep(64))
        // Asking for everything (or more) is a no-op that keeps the request as the user gave it.
        let more = try Budget.count(300).resolve(over: 256)
        #expect(more.requested == 300)
        guard case .noOp(_, let why) = more else { Issue.record("expected a no-op"); return }
        #expect(why == "budget 300 tokens asks for 300 ≥ 256 visual tokens")
        #expect(try Budget.ratio(1).resolve(over: 256) == .noOp(requested: 256, reason: "budget 100.0% asks for 256 ≥ 256 visual tokens"))
        #expect(try Budget.ratio(0.999).resolve(over: 256).requested == 256)
        #expect(throws: CompressionError.self) { try Budget.ratio(1.5).resolve(over: 256) }
        #expect(throws: CompressionError.self) { try Budget.count(-1).resolve(over: 256) }
    }

    @Test func splitsOverParts() throws {
        #expect(try Budget.count(10).split(over: [576, 576, 576]) == [4, 3, 3])
        #expect(try Budget.count(2).split(over: [576, 576, 576]) == [1, 1, 1])
        #expect(try Budget.ratio(0.25).split(over: [576, 100]) == [144, 25])
    }
}
