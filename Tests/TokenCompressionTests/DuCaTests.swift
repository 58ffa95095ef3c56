import Testing
import Tensors
@testable import TokenCompression
import TestSupport

@Suite struct DuCaTests {
    static let settings: [DuCa.Parameters] = [
        DuCa.Parameters(), DuCa.Parameters(freshThreshold: 5),
        DuCa.Parameters(numSteps: 250, freshThreshold: 4, freshRatio: 0.07, ratioSchedule: .constant),
        DuCa.Parameters(numSteps: 20, numLayers: 3, freshThreshold: 4, freshRatio: 0),
    ]

    @Test("the first step is full and nothing reuses an empty cache", arguments: settings)
    func firstStepFullAndNoEmptyReuse(p: DuCa.Parameters) throws {
        let s = try DuCa.schedule(p)
        #expect(s.kinds[0].allSatisfy { $0 == .full })
        #expect(tocaNeverReusesEmpty(s.kinds))
        #expect(s.cacheSchedule.computedFraction < 1)
    }

    @Test func cycleOrderIsFullAggressiveConservative() throws {
        // DiT counts down: with N_t = 3, i ≡ 0 full, i ≡ 2 aggressive, i ≡ 1 conservative.
        let s = try DuCa.schedule(DuCa.Parameters())
        let row = try #require(s.stepIndices.firstIndex(of: 26))
        #expect(s.intervals[row] == 3)
        #expect(s.kinds[row].allSatisfy { $0 == .aggressive })      // 26 % 3 = 2
        #expect(s.kinds[row + 1].allSatisfy { $0 == .partial })     // 25 % 3 = 1
        #expect(s.kinds[row + 2].allSatisfy { $0 == .full })        // 24
        // Quirk F1 with an aggressive remainder: at i = 32 only layer 0 is full.
        let q = try #require(s.stepIndices.firstIndex(of: 32))
        #expect(s.kinds[q][0] == .full && s.kinds[q][1...].allSatisfy { $0 == .aggressive })
    }

    @Test func pixArtCountsUpWithAConstantInterval() throws {
        // S = 7, N0 = 3: s ≡ 0 full, s ≡ 1 conservative, s ≡ 2 aggressive, in every layer.
        var p = DuCa.Parameters.pixart
        p.numSteps = 7
        p.numLayers = 2
        p.numTokens = 16
        let s = try DuCa.schedule(p)
        #expect(s.stepIndices == Array(0..<7))
        let expected: [TokenCacheStepKind] = [.full, .partial, .aggressive, .full, .partial, .aggressive, .full]
        #expect(s.kinds == expected.map { [$0, $0] })
        #expect(s.intervals == Array(repeating: 3, count: 7))
        #expect(s.partialModules == ["cross-attn", "mlp"])
        #expect(s.cacheSchedule.moduleNames == ["attn", "cross-attn", "mlp"])
        #expect(s.cacheSchedule.actions[0][1] == [.compute, .compute, .compute])
        #expect(s.cacheSchedule.actions[2][0] == [.skip, .skip, .skip])
        // Conservative: self-attention reused, cross-attention and MLP partial with ToCa-PixArt's counts.
        #expect(s.cacheSchedule.actions[4][1] == [.reuse, .partial, .partial])
        var t = ToCa.Parameters.pixart
        t.numSteps = 7
        t.freshRatio = 0.75
        for module in ["cross-attn", "mlp"] {
            let r = ToCa.freshRatio(layer: 1, step: 4, module: module, parameters: t)
            #expect(s.moduleFreshCounts[4][1][s.partialModules.firstIndex(of: module)!] == ToCa.freshCount(ratio: r, tokens: 16))
        }
        #expect(s.freshCounts[4][1] == s.moduleFreshCounts[4][1][1])
        // The README setting: 20 steps, N_t stays 3 (ToCa-PixArt's interval schedule would give 4 at s = 0).
        let d = try DuCa.schedule(.pixart)
        #expect(d.intervals.allSatisfy { $0 == 3 })
        #expect(d.kinds.enumerated().allSatisfy { step, row in row.allSatisfy { $0 == [.full, .partial, .aggressive][step % 3] } })
        #expect(try DuCa.Parameters.ratioSchedule(named: "ToCa", model: .pixart) == .pixart)
        #expect(try DuCa.Parameters.ratioSchedule(named: "ToCa") == .ditDDIM50)
        // DiT's ratio schedule does not belong to the PixArt code.
        var bad = DuCa.Parameters.pixart
        bad.ratioSchedule = .ditDDIM50
        #expect(throws: CompressionError.self) { _ = try DuCa.schedule(bad) }
    }

    @Test func openSoraStartsWithThreeFullSteps() throws {
        let s = try DuCa.openSoraSchedule()
        for step in 0..<3 { #expect(s.kinds[step].allSatisfy { $0.allSatisfy { $0 == .full } }) }
        #expect(s.allAggressive[5] == [true, true])
        #expect(s.cacheSchedule.actions[4][0] == [.reuse, .reuse, .partial])
    }

    @Test func aggressiveStepNeedsAStoredOutput() throws {
        var cache = TokenFeatureCache()
        let p = DuCa.Parameters(numLayers: 4)
        #expect(throws: CompressionError.self) { _ = try DuCa.aggressiveStep(parameters: p, cache: &cache) }
        var rng = TestRandom(3)
        let out = [rng.tensor([16, 8])]
        try DuCa.storeLastBlockOutput(out, parameters: p, cache: &cache)
        #expect(try DuCa.aggressiveStep(parameters: p, cache: &cache)[0].values == out[0].values)
    }

    @Test func valueNormScorePrefersSmallValues() throws {
        // Token 0 has the smallest value norms in every head, token 3 the largest.
        let v = try Tensor(shape: [2, 4, 2], values: [0.1, 0, 0.5, 0, 0.7, 0, 2, 0,
                                                      0, 0.2, 0, 0.4, 0, 0.9, 0, 3])
        let score = try DuCa.valueNormScore(valueNorms: try DuCa.valueNorms(values: v))
        #expect(Selection.argsort(score, descending: true) == [0, 1, 2, 3])
    }

    @Test func kvNormCutFreshIsDeterministicAndValid() throws {
        func once() throws -> ToCa.FreshSelection {
            var rng = TestRandom(21)
            var cache = TokenFeatureCache()
            try cache.store([rng.tensor([4, 64, 8]), rng.tensor([4, 64, 8])].map { try DuCa.valueNorms(values: $0) },
                            at: .init(layer: 2, module: DuCa.valueNormModule))
            try cache.store([rng.tensor([64, 8]), rng.tensor([64, 8])], at: .init(layer: 2, module: "mlp"))
            var p = DuCa.Parameters(scoreType: .kvNorm)
            p.ratioSchedule = .constant
            p.freshRatio = 0.2
            return try DuCa.cutFresh(tokens: [rng.tensor([64, 8]), rng.tensor([64, 8])], cache: &cache, step: 20,
                                     layer: 2, parameters: p)
        }
        let a = try once(), b = try once()
        #expect(a.freshIndices == b.freshIndices)
        #expect(a.count == 12 && a.freshIndices.allSatisfy { Set($0).count == 12 })
    }

    @Test func badParametersThrow() {
        #expect(throws: CompressionError.self) { _ = try DuCa.Parameters(freshThreshold: 0).validated() }
        #expect(throws: CompressionError.self) { _ = try DuCa.Parameters(openSoraIntervals: [3, 3]).validated() }
        #expect(throws: CompressionError.self) { _ = try DuCa.Parameters.ratioSchedule(named: "ToCa-ddpm") }
        #expect(throws: CompressionError.self) { _ = try DuCa.schedule(.openSora) }
    }
}
