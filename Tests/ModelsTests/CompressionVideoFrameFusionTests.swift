import Foundation
import Testing
import Evaluation
import Tensors
import TokenCompression
import ModelIO
@testable import Models

/// FrameFusion inside LLaVA-OneVision's decoder, against two references:
/// - transformers (`transformersParity`): a hand-stepped transformers Qwen2 decoder with FrameFusion's
///   rule written again in torch and called where the patched layers of `thu-nics/FrameFusion` call it
///   (`tools/fixtures/make_onevision_video_framefusion_fixture.py`, fixture
///   `Fixtures/compressed-video/framefusion-reference.safetensors`);
/// - FrameFusion's own Swift function applied by hand, call by call, to a decoder stepped here from
///   the model's pieces (layer 0's call on the embeddings, then each layer's unfused attention,
///   residual add, the call with that layer's last-query attention, the MLP on the call's rows).
@Suite struct CompressionVideoFrameFusionTests {
    struct Reference {
        var logits: Tensor
        var rowsPerLayer: [Int]
        var positions: [Int]
        var calls: [CompressionResult]
    }

    /// Hand-stepped prefill with FrameFusion's calls where the authors' layers make them.
    static func reference(model: LlavaModel, embeddings: Tensor, videoSpan: Range<Int>, tokensPerFrame: Int,
                          parameters: FrameFusion.Parameters) throws -> Reference {
        let lm = model.language
        let frameTokens = videoSpan.count - 1
        let types = (0..<embeddings.rows).map { i -> Int in
            videoSpan.contains(i) && i - videoSpan.lowerBound < frameTokens ? (i - videoSpan.lowerBound) % tokensPerFrame : -1
        }
        var state = try FrameFusion.State(patchType: types, patchCount: tokensPerFrame)
        var h = embeddings
        var calls: [CompressionResult] = []
        var rows: [Int] = []
        func call(_ attention: Tensor?) throws {
            guard !(state.finishMerging && state.finishPruning) else { return }
            let r = try FrameFusion.call(hiddenStates: h, attentionLastRow: attention, state: &state, parameters: parameters)
            h = r.hiddenStates
            calls.append(r.compression)
        }
        try call(nil)
        for i in 0..<lm.config.layers {
            rows.append(h.rows)
            let wantsAttention = state.finishMerging && !state.finishPruning
            let (probabilities, attentionOut) = try lm.attentionHalf(layer: i, hidden: h, positions: state.positions)
            let block = lm.layers[i]
            try h.addInPlace(try block.o(attentionOut, store: lm.store))
            var last: Tensor? = nil
            if wantsAttention {
                let heads = probabilities.shape[0], s = h.rows
                var row = Tensor(zeros: [heads, s])
                for head in 0..<heads { for k in 0..<s { row[head, k] = probabilities[flat: (head * s + (s - 1)) * s + k] } }
                last = row
            }
            try call(last)
            let y = try lm.rms(h, block.postNorm)
            let act = try Tensor.swiGLU(gate: try block.gate(y, store: lm.store), up: try block.up(y, store: lm.store))
            try h.addInPlace(try block.down(act, store: lm.store))
        }
        let logits = try lm.lmHeadLogits(try lm.finalNorm(try h.rows((h.rows - 1)..<h.rows))).reshaped([lm.config.vocabSize])
        return Reference(logits: logits, rowsPerLayer: rows, positions: state.positions, calls: calls)
    }

    static func maxAbs(_ a: Tensor, _ b: Tensor) -> Float {
        zip(a.values, b.values).map { abs($0 - $1) }.max() ?? .infinity
    }

    @Test(arguments: [(0.3, 0.6, 0.1), (0.15, 0.0, 0.1), (0.3, 0.99, 0.1), (0.3, 0.97, 0.0), (0.3, 0.9, 0.05)])
    func decoderRunEqualsTheFunctionAppliedByHand(cost: Double, similarity: Double, ratioLowerBound: Double) throws {
        let (model, ids, video, _) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "framefusion", budget: .ratio(cost), parameters: ["similarity": "\(similarity)", "ratio_lower_bound": "\(ratioLowerBound)"])
        #expect(c.videoHook != nil && c.prefillHook != nil && c.visionHook == nil)
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        #expect(p.videoTokens == [73], "FrameFusion leaves the rows spliced into the prompt unchanged")

        let e = try model.embedPrompt(inputIDs: ids, images: [], videos: [video])
        let span = try #require(e.visualSpans.first)
        let ref = try Self.reference(model: model, embeddings: e.embeddings, videoSpan: span, tokensPerFrame: 9,
                                     parameters: .init(cost: cost, similarityLowerBound: similarity, ratioLowerBound: ratioLowerBound))
        // Rows after each call, per the method's schedule: every layer ran on what the last call left.
        #expect(p.decoder.tokensPerLayer == ref.rowsPerLayer, "\(p.decoder.tokensPerLayer) vs \(ref.rowsPerLayer)")
        #expect(p.decoder.positions == ref.positions)
        let diff = Self.maxAbs(p.logits, ref.logits)
        #expect(diff < 1e-4, "max |Δlogit| \(diff)")
        #expect(DecoderLM.argmax(p.logits) == DecoderLM.argmax(ref.logits))
        // Caches: each layer cached the rows it ran on (the layer's own cut comes after its attention).
        #expect(p.cache.tokenCounts == ref.rowsPerLayer)
        #expect(p.cache.nextPosition == (ref.positions.max() ?? 0) + 1)
        // Report: 72 frame tokens before; achieved = frame rows that reached the MLP of the last layer.
        let r = c.report()
        let finalFrameRows = p.decoder.keptOriginalIndices.filter { span.contains($0) && $0 != span.upperBound - 1 }.count
        #expect(r.visualTokensBefore == 72 && r.achievedVisualTokens == finalFrameRows && r.positionPolicy == .keepOriginal)
        #expect(r.requestedVisualTokens <= 72 && r.requestedVisualTokens >= 0)
        // Original positions: survivors keep their prompt index (OneVision's positions are 0..<n).
        #expect(p.decoder.positions == p.decoder.keptOriginalIndices)
        #expect(p.decoder.keptOriginalIndices.contains(span.upperBound - 1), "the newline is never merged or pruned")
        if ref.positions.count < e.embeddings.rows {
            #expect(finalFrameRows < 72, "\(r.notes)")
        }
        // Greedy decoding continues after the merged prefill.
        let tokens = try model.language.generate(after: p.decoder, maxNewTokens: 3, stopTokens: [])
        #expect(tokens.count == 3)
    }

    /// The settings of the fixture script (name: cost, S_th, ratio lower bound).
    static let settings: [String: (Double, Double, Double)] = [
        "budget": (0.3, 0.6, 0.1), "prune0": (0.3, 0.99, 0.1), "merging": (0.3, 0.97, 0.0), "mixed": (0.3, 0.9, 0.05),
    ]

    @Test(arguments: ["budget", "prune0", "merging", "mixed"])
    func transformersParity(_ name: String) throws {
        let (cost, similarity, lowerBound) = try #require(Self.settings[name])
        let reference = try SafetensorsFile(path: URL(fileURLWithPath: VideoCompressionFixture.folder).deletingLastPathComponent()
            .appendingPathComponent("framefusion-reference.safetensors").path)
        let model = try VideoCompressionFixture.model()
        let (ids, video) = try VideoCompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: "framefusion", budget: .ratio(cost),
                                              parameters: ["similarity": "\(similarity)", "ratio_lower_bound": "\(lowerBound)"])
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        try Self.expectMatchesReference(p, model: model, reference: reference, name: name)
    }

    /// The rows, kept indices and positions of every layer, the prefill logits, three greedy decode steps on
    /// the caches the compressed prefill left (each layer holds the rows that entered it) and their tokens,
    /// all against the transformers run `name` in the fixture file.
    static func expectMatchesReference(_ p: LlavaPrefillResult, model: LlavaModel, reference: SafetensorsFile, name: String) throws {
        #expect(p.decoder.tokensPerLayer == (try reference.integers("\(name)_rows_per_layer")).map { Int($0) })
        #expect(p.decoder.keptOriginalIndices == (try reference.integers("\(name)_kept")).map { Int($0) })
        #expect(p.decoder.positions == (try reference.integers("\(name)_positions")).map { Int($0) })
        let diff = maxAbs(p.logits, try reference.tensor("\(name)_logits"))
        #expect(diff < 2e-5, "\(name): max |Δlogit| \(diff)")
        let steps = try reference.tensor("\(name)_step_logits")
        var tokens: [Int] = [], logits = p.logits
        for step in 0..<3 {
            let t = DecoderLM.argmax(logits)
            tokens.append(t)
            logits = try model.language.decodeStep(token: t, cache: p.cache)
            let d = maxAbs(logits, try steps.rows(step..<(step + 1)).reshaped([logits.count]))
            #expect(d < 2e-5, "\(name) step \(step): max |Δlogit| \(d)")
        }
        #expect(tokens == (try reference.integers("\(name)_greedy")).map { Int($0) })
    }

    @Test func mergingActuallyHappensOnTheFixture() throws {
        // With S_th = 0 most same-cell pairs are candidates: the first call must merge rows.
        let (model, ids, video, _) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "framefusion", budget: .ratio(0.5), parameters: ["similarity": "0"])
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        #expect(p.decoder.tokensPerLayer[0] < p.expandedInputIDs.count, "\(p.decoder.tokensPerLayer) \(c.report().notes)")
        #expect(c.report().achievedVisualTokens < 72)
    }

    @Test func refusesBadSettingsAndImagePrompts() throws {
        #expect { _ = try MethodCatalog.compression(method: "framefusion", budget: .ratio(0.3), parameters: ["cost": "1.5"]) } throws: { "\($0)".contains("cost") }
        #expect { _ = try MethodCatalog.compression(method: "framefusion", budget: .ratio(0.3), parameters: ["similarity": "2"]) } throws: { "\($0)".contains("similarityLowerBound") }
        // Without a video (no layout reached the hook) the decoder hook is an explicit no-op.
        let (model, ids, video, _) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "framefusion", budget: .ratio(0.3))
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook)
        #expect(c.report().notes.contains { $0.contains("no-op") })
        #expect(p.decoder.tokensPerLayer.allSatisfy { $0 == p.decoder.tokensPerLayer[0] })
    }
}
