import Testing
import Tensors
@testable import TokenCompression
import TestSupport

/// True when, per layer, no partial/aggressive step comes before that layer's first full step.
func tocaNeverReusesEmpty(_ kinds: [[TokenCacheStepKind]]) -> Bool {
    guard let layers = kinds.first?.count else { return true }
    for l in 0..<layers {
        var filled = false
        for row in kinds {
            if row[l] == .full { filled = true } else if !filled { return false }
        }
    }
    return true
}

/// A cache after a DiT full step of `layer`: random attention maps, MLP outputs, ages 0.
func tocaFilledCache(_ rng: inout TestRandom, batch: Int, tokens n: Int, width: Int, layer: Int) throws -> TokenFeatureCache {
    var cache = TokenFeatureCache()
    try ToCa.storeFullStep(layer: layer, moduleOutputs: ["attn": (0..<batch).map { _ in rng.tensor([n, width]) },
                                                        "mlp": (0..<batch).map { _ in rng.tensor([n, width]) }],
                           attentionMap: (0..<batch).map { _ in rng.softmaxRows(n, n, logitScale: 3, logits: .signed) }, cache: &cache)
    return cache
}

@Suite struct ToCaTests {
    static let settings: [ToCa.Parameters] = [
        ToCa.Parameters(), .ditDDIM50, .pixart,
        ToCa.Parameters(numSteps: 50, freshThreshold: 3, freshRatio: 0, ratioSchedule: .ditDDIM50),
        ToCa.Parameters(numSteps: 37, numLayers: 5, freshThreshold: 6, ratioSchedule: .linear),
    ]

    @Test("the first step is full in every layer", arguments: settings)
    func firstStepIsFull(p: ToCa.Parameters) throws {
        let s = try ToCa.schedule(p)
        #expect(s.kinds[0].allSatisfy { $0 == .full })
        #expect(s.stepIndices[0] == (p.model == .dit ? p.numSteps - 1 : 0))
        #expect(s.cacheSchedule.actions[0].allSatisfy { $0.allSatisfy { $0 == .compute } })
    }

    @Test("no layer takes a partial step before its cache was filled", arguments: settings)
    func neverReusesEmptyCache(p: ToCa.Parameters) throws {
        let s = try ToCa.schedule(p)
        #expect(tocaNeverReusesEmpty(s.kinds))
        #expect(s.cacheSchedule.computedFraction < 1)
    }

    @Test func reproducesIntraStepIntervalChange() throws {
        // Quirk F1 (DDIM-50, N0 = 3): at i = 45 layer 0 is full and sets N_t = 4, so layers 1… are partial.
        let s = try ToCa.schedule(.ditDDIM50)
        let row = try #require(s.stepIndices.firstIndex(of: 45))
        #expect(s.kinds[row][0] == .full)
        #expect(s.kinds[row][1...].allSatisfy { $0 == .partial })
    }

    @Test func foraModeHasConstantIntervalAndNoFreshTokens() throws {
        let s = try ToCa.schedule(ToCa.Parameters(numSteps: 50, freshThreshold: 3, freshRatio: 0, ratioSchedule: .ditDDIM50))
        #expect(s.intervals.allSatisfy { $0 == 3 })
        #expect(s.freshCounts.allSatisfy { $0.allSatisfy { $0.allSatisfy { $0 == 0 } } })
    }

    @Test func reuseOfAnEmptyCacheThrows() throws {
        var cache = TokenFeatureCache()
        let slot = TokenFeatureCache.Slot(layer: 0, module: "mlp")
        #expect(throws: CompressionError.self) { _ = try cache.read(slot) }
        #expect(throws: CompressionError.self) { try cache.scatter([Tensor(zeros: [0, 4])], at: [[]], into: slot) }
        var rng = TestRandom(1)
        // Partial step without any full step: no attention map, no ages.
        #expect(throws: CompressionError.self) {
            _ = try ToCa.cutFresh(tokens: [rng.tensor([16, 4])], cache: &cache, step: 10, layer: 0, module: "mlp",
                                  parameters: .ditDDIM50)
        }
    }

    @Test func freshSelectionIsUniqueCountedAndAgesTheRest() throws {
        var rng = TestRandom(7)
        let n = 64, layer = 2
        var cache = try tocaFilledCache(&rng, batch: 2, tokens: n, width: 8, layer: layer)
        let tokens = [rng.tensor([n, 8]), rng.tensor([n, 8])]
        var p = ToCa.Parameters.ditDDIM50
        p.ratioSchedule = .constant
        p.freshRatio = 0.25
        let sel = try ToCa.cutFresh(tokens: tokens, cache: &cache, step: 10, layer: layer, module: "mlp", parameters: p)
        #expect(sel.count == 16)
        for b in 0..<2 {
            #expect(Set(sel.freshIndices[b]).count == sel.count)
            // Descending final score.
            let s = sel.freshIndices[b].map { sel.scoreBonus[b][$0] }
            #expect(s == s.sorted(by: >))
            for i in 0..<n { #expect(sel.agesAfter[b][i] == (sel.freshIndices[b].contains(i) ? 0 : 1)) }
            #expect(sel.freshTokens[b].values == (try tokens[b].gatherRows(sel.freshIndices[b])).values)
        }
        #expect(try cache.ages(.init(layer: layer, module: "mlp")) == sel.agesAfter)
    }

    @Test func partialStepRefreshesOnlyFreshRows() throws {
        var rng = TestRandom(11)
        let n = 16
        var cache = try tocaFilledCache(&rng, batch: 1, tokens: n, width: 4, layer: 0)
        let before = try cache.peek(.init(layer: 0, module: "mlp"))[0]
        var p = ToCa.Parameters.ditDDIM50
        p.ratioSchedule = .constant
        p.freshRatio = 0.5
        let (sel, out) = try ToCa.partialStep(tokens: [rng.tensor([n, 4])], cache: &cache, step: 3, layer: 0, module: "mlp",
                                              parameters: p, compute: { $0.map { _ in 42 } })
        for i in 0..<n {
            let expected = sel.freshIndices[0].contains(i) ? [Float](repeating: 42, count: 4) : before.row(i)
            #expect(out[0].row(i) == expected)
        }
    }

    @Test func deterministic() throws {
        func once() throws -> ToCa.FreshSelection {
            var rng = TestRandom(99)
            var cache = try tocaFilledCache(&rng, batch: 2, tokens: 36, width: 4, layer: 1)
            return try ToCa.cutFresh(tokens: [rng.tensor([36, 4]), rng.tensor([36, 4])], cache: &cache, step: 20,
                                     layer: 1, module: "mlp", parameters: .ditDDIM50)
        }
        let a = try once(), b = try once()
        #expect(a.freshIndices == b.freshIndices && a.scoreBonus == b.scoreBonus)
        #expect(try ToCa.schedule(.pixart).kinds == ToCa.schedule(.pixart).kinds)
    }

    @Test func spatialBonusBoostsOneTokenPerBlock() throws {
        var rng = TestRandom(5)
        let score = (0..<64).map { _ in rng.uniform() }
        let out = try ToCa.spatialBonus(score, ratio: 0.6, gridSize: 2)
        let boosted = (0..<64).filter { out[$0] != score[$0] }
        #expect(boosted.count == 16)
        #expect(throws: CompressionError.self) { _ = try ToCa.spatialBonus(Array(score.prefix(60)), ratio: 0.6, gridSize: 2) }
        #expect(throws: CompressionError.self) { _ = try ToCa.spatialBonus(Array(score.prefix(36)), ratio: 0.4, gridSize: 4) }
    }

    @Test func badParametersThrow() {
        #expect(throws: CompressionError.self) { _ = try ToCa.Parameters(freshThreshold: 0).validated() }
        #expect(throws: CompressionError.self) { _ = try ToCa.Parameters(freshRatio: 1.5).validated() }
        #expect(throws: CompressionError.self) { _ = try ToCa.Parameters(ratioSchedule: .pixart).validated() }
        #expect(throws: CompressionError.self) { _ = try ToCa.RatioSchedule.named("ToCa", model: .dit) }
        var cache = TokenFeatureCache()
        #expect(throws: CompressionError.self) {
            _ = try ToCa.cutFresh(tokens: [], cache: &cache, step: 0, layer: 0, module: "attn", parameters: ToCa.Parameters())
        }
    }
}
