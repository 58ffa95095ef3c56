import Testing
import Evaluation
import Tensors
import TokenCompression
@testable import Models

/// Every LLM-side method end to end on the 4-layer fixture: the cut happens at layer K, the caches
/// of layers ≥ K really shrink, system/text rows survive, positions follow the method's policy and
/// decoding continues at max position + 1.
@Suite struct CompressionTests {
    static let llmMethods: [(String, Int)] = [("dart", 20), ("fastv", 16), ("a-score", 16), ("k-norm", 16), ("v-norm", 16), ("random", 16)]

    @Test(arguments: llmMethods)
    func llmSideMethodPrunesAtItsLayer(_ method: String, _ expected: Int) throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: method, budget: .count(16))
        #expect(c.prefillHook != nil && c.visionHook == nil)
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook, visionHook: c.visionHook)
        let r = c.report()
        #expect(r.visualTokensBefore == 64)
        #expect(r.requestedVisualTokens == 16, "\(method): \(r)")
        #expect(r.achievedVisualTokens == expected, "\(method): \(r.notes)")
        let n = CompressionFixture.promptLength, kept = n - 64 + expected
        #expect(p.cache.tokenCounts == [n, n, kept, kept], "\(method)")
        #expect(p.decoder.tokensPerLayer == [n, n, kept, kept])
        #expect(r.keptIndices == p.decoder.keptOriginalIndices)
        // System and text rows are never dropped; visual rows are a subset of the image span.
        let keptSet = Set(r.keptIndices)
        #expect((0..<4).allSatisfy(keptSet.contains) && (68..<76).allSatisfy(keptSet.contains))
        #expect(r.keptIndices.filter { CompressionFixture.imageRange.contains($0) }.count == expected)
        // Original positions are kept (gaps remain).
        #expect(r.positionPolicy == .keepOriginal)
        #expect(p.decoder.positions == r.keptIndices)
        #expect(p.cache.nextPosition == n)
        #expect(r.scoringSeconds >= 0)
        var logits = p.logits
        for step in 0..<2 {
            logits = try model.decodeStep(token: DecoderLM.argmax(logits), cache: p.cache)
            #expect(p.cache.tokenCounts == [n + step + 1, n + step + 1, kept + step + 1, kept + step + 1])
        }
        #expect(p.cache.nextPosition == n + 2)
        #expect(logits.values.allSatisfy { $0.isFinite })
    }

    @Test(arguments: ["dart", "fastv", "a-score", "k-norm", "v-norm", "random"])
    func budgetCoveringEveryVisualTokenIsAnExplicitNoOp(_ method: String) throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: method, budget: .count(64))
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook)
        let r = c.report()
        #expect(p.cache.tokenCounts == [76, 76, 76, 76])
        #expect(r.achievedVisualTokens == 64 && r.keptIndices == Array(0..<76))
        #expect(r.notes.contains { $0.contains("no-op") }, "\(method): \(r.notes)")
    }

    @Test func ratioBudgetAndLayerParameter() throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: "fastv", budget: .ratio(0.25), parameters: ["layer": "3"])
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook)
        #expect(p.cache.tokenCounts == [76, 76, 76, 28])
        #expect(c.report().achievedVisualTokens == 16)
    }

    @Test func shallowModelIsAnExplicitNoOp() throws {
        // The tiny LLaVA fixture has 2 decoder layers: layer K = 2 is never reached.
        let model = try LlavaModel.load(folder: modelsFixture("llava"))
        let ref = try ModelsReference("llava")
        let c = try MethodCatalog.compression(method: "fastv", budget: .count(1))
        let p = try model.prefill(inputIDs: try ref.ints("input_ids"), pixelValues: try ref.tensor("pixel_values").reshaped([3, 28, 28]),
                                  hook: c.prefillHook)
        #expect(modelsMaxAbs(p.logits, try ref.tensor("logits")) < 1e-4)
        #expect(c.report().notes.contains { $0.contains("never reached") })
    }

    @Test func badRequestsThrow() throws {
        #expect(throws: ModelCompressionError.self) { try MethodCatalog.compression(method: "no-such-method", budget: .count(1)) }
        #expect(throws: ModelCompressionError.self) { try MethodCatalog.compression(method: "fastv", budget: .count(1), parameters: ["bogus": "1"]) }
        #expect(throws: CompressionError.self) { try MethodCatalog.compression(method: "fastv", budget: .count(1), parameters: ["layer": "x"]) }
        #expect(throws: (any Error).self) { try MethodCatalog.compression(method: "dart", budget: .count(1), parameters: ["layer": "0"]) }
        #expect(throws: (any Error).self) { try MethodCatalog.compression(method: "fastv", budget: .ratio(1.5)) }
    }

    @Test func dartTruncationIsTheClosestReachableCount() {
        #expect(DARTCompression.truncation(forTarget: 132, pivotImage: 4, pivotText: 4) == 128)
        #expect(DARTCompression.truncation(forTarget: 128, pivotImage: 4, pivotText: 4) == 128)
        #expect(DARTCompression.truncation(forTarget: 16, pivotImage: 4, pivotText: 4) == 16)
        #expect(DARTCompression.truncation(forTarget: 15, pivotImage: 4, pivotText: 4) == 8)
        #expect(DARTCompression.truncation(forTarget: 17, pivotImage: 4, pivotText: 4) == 16)
        #expect(DARTCompression.truncation(forTarget: 2, pivotImage: 4, pivotText: 4) == 0)
    }
}

extension CompressionTests {
    /// FastV and A-Score ask for one attention row (the last prompt row) of layer K−1 only; the
    /// attention-free methods never ask, so every layer keeps the fused path.
    @Test func attentionIsRecordedOnlyWhereDeclared() throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        for method in ["fastv", "a-score", "dart", "k-norm", "v-norm", "random"] {
            let c = try MethodCatalog.compression(method: method, budget: .count(16))
            let spy = CompressionRecordSpy(c.prefillHook!)
            _ = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: spy)
            let expected: [AttentionRecord] = ["fastv", "a-score"].contains(method)
                ? [.none, .probabilities(rows: [75]), .none, .none] : [.none, .none, .none, .none]
            #expect(spy.records == expected, "\(method)")
        }
    }
}

/// Records what a hook asked each layer to record.
final class CompressionRecordSpy: PrefillHook {
    let inner: PrefillHook
    var records: [AttentionRecord] = []
    init(_ inner: PrefillHook) { self.inner = inner }
    func attentionRecord(layer: Int) -> AttentionRecord {
        let r = inner.attentionRecord(layer: layer)
        records.append(r)
        return r
    }
    func beforeLayer(_ layer: Int, state: PrefillState) throws -> PruneDecision? { try inner.beforeLayer(layer, state: state) }
    func afterPrefill(_ summary: PrefillSummary) throws { try inner.afterPrefill(summary) }
}

extension CompressionTests {
    @Test func everyBuilderIsARegisteredMethod() throws {
        #expect(MethodCatalog.llavaMethods.count == 18)
        for name in MethodCatalog.llavaMethods {
            #expect(MethodCatalog.info(named: name) != nil, "\(name)")
            let c = try MethodCatalog.compression(method: name.uppercased(), budget: .ratio(0.5), parameters: requiredTestParameters[name] ?? [:])
            #expect(c.info.name == name)
            let vision: Set = ["fastervlm", "hired", "visionzip", "prumerge", "prumerge_plus", "pooling", "globalcom2", "ficoco_v"]
            #expect((c.visionHook != nil) == (vision.contains(name) || name == "mustdrop"), "\(name)")
            #expect((c.prefillHook != nil) == !vision.contains(name), "\(name)")
        }
    }

    /// Every in-model method refuses a parameter it does not read, naming the ones it accepts.
    @Test func unknownParametersAreRefusedWithTheAcceptedOnes() throws {
        for name in MethodCatalog.llavaMethods {
            let accepted = try #require(MethodCatalog.entry(named: name)?.adapter?.parameters)
            do {
                _ = try MethodCatalog.compression(method: name, budget: .ratio(0.5), parameters: ["no_such_parameter": "1"])
                Issue.record("\(name) accepted an unknown parameter")
            } catch let e as ModelCompressionError {
                let text = "\(e)"
                #expect(text.contains("no_such_parameter") && text.contains(accepted.isEmpty ? "accepted: none" : "accepted: \(accepted.sorted().joined(separator: ", "))"), "\(text)")
            }
        }
        #expect(MethodCatalog.entry(named: "FASTV")?.adapter?.parameters == ["layer"] && MethodCatalog.entry(named: "tome")?.adapter?.parameters == nil)
    }
}
