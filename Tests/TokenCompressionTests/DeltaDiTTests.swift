import Testing
@testable import TokenCompression

/// Δ-DiT's rule (no official code): its plan against the rule written out independently here.
@Suite struct DeltaDiTTests {
    /// The rule in closed form: full at the first K calls and then every N-th call after the last of
    /// them; cached calls skip the last N_c blocks before the boundary and the first N_c from it on.
    static func expected(calls: Int, layers: Int, interval n: Int, boundary b: Int, blocks nc: Int, first k: Int) -> [[CacheAction]] {
        (0..<calls).map { c in
            let full = c < k || (c - (k - 1)) % n == 0
            return (0..<layers).map { l in
                if full { return .compute }
                let skipped = c < b ? l >= layers - nc : l < nc
                return skipped ? .reuse : .compute
            }
        }
    }

    @Test(arguments: [(20, 28, 3, 10, 14, 1), (10, 4, 2, 3, 1, 1), (50, 12, 4, 30, 5, 3), (7, 3, 1, 2, 2, 1), (9, 6, 5, 0, 3, 2), (9, 6, 3, 9, 4, 1)])
    func planFollowsTheRule(calls: Int, layers: Int, interval: Int, boundary: Int, blocks: Int, first: Int) throws {
        let p = try DeltaDiT.Parameters(interval: interval, boundary: boundary, cachedBlocks: blocks, firstEnhance: first)
        let schedule = try DeltaDiT.schedule(calls: calls, layers: layers, parameters: p)
        let want = Self.expected(calls: calls, layers: layers, interval: interval, boundary: boundary, blocks: blocks, first: first)
        #expect(schedule.moduleNames == ["block"])
        #expect(schedule.actions.map { $0.map { $0[0] } } == want)
        let plans = try DeltaDiT.plan(calls: calls, layers: layers, parameters: p)
        #expect(plans.map(\.group) == (0..<calls).map { $0 < boundary ? .rear : .front })
    }

    @Test func defaultsAreHalfTheCallsAndHalfTheBlocks() throws {
        let p = try DeltaDiT.Parameters()
        #expect(p.interval == 3 && p.firstEnhance == 1)
        #expect(try p.resolved(calls: 20, layers: 28) == (boundary: 10, cachedBlocks: 14))
        #expect(try p.resolved(calls: 5, layers: 1 + 1) == (boundary: 2, cachedBlocks: 1))
        // Interval 1: every call full, nothing skipped.
        let all = try DeltaDiT.schedule(calls: 8, layers: 4, parameters: try DeltaDiT.Parameters(interval: 1))
        #expect(all.computedFraction == 1)
    }

    @Test func badSettingsThrow() throws {
        #expect(throws: CompressionError.self) { try DeltaDiT.Parameters(interval: 0) }
        #expect(throws: CompressionError.self) { try DeltaDiT.Parameters(boundary: -1) }
        #expect(throws: CompressionError.self) { try DeltaDiT.Parameters(cachedBlocks: 0) }
        #expect(throws: CompressionError.self) { try DeltaDiT.Parameters(firstEnhance: 0) }
        // A group as deep as the model would leave nothing running on cached calls.
        #expect(throws: CompressionError.self) { try DeltaDiT.plan(calls: 4, layers: 2, parameters: try DeltaDiT.Parameters(cachedBlocks: 2)) }
        #expect(throws: CompressionError.self) { try DeltaDiT.plan(calls: 4, layers: 1, parameters: try DeltaDiT.Parameters()) }
    }
}
