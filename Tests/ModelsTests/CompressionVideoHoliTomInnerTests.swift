import Foundation
import Testing
import Evaluation
import Tensors
import TokenCompression
import ModelIO
@testable import Models

/// HoliTom's inner merge inside LLaVA-OneVision's decoder (opt-in: `inner_layer`, `inner_ratio`), against
/// - transformers (`transformersParity`): the rule re-written in torch, applied before layer k of a
///   hand-stepped transformers decoder on the whole video (the outer stage a no-op at ratio 1), from
///   `tools/fixtures/make_onevision_video_framefusion_fixture.py`;
/// - `HoliTom.inner` applied by hand, before layer k, to a decoder stepped here from the model's
///   pieces (unfused attention, layer k−1's last-query row), after the outer stage at ratio 0.5.
@Suite struct CompressionVideoHoliTomInnerTests {
    @Test(arguments: [(1, 0.5), (2, 0.5), (3, 0.25)])
    func innerMergeEqualsTheFunctionAppliedByHand(layer k: Int, ratio: Double) throws {
        let (model, ids, video, _) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.5),
                                              parameters: ["inner_layer": "\(k)", "inner_ratio": "\(ratio)"])
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        let notes = c.report().notes  // read before embedPrompt runs the video hook again (a new report)
        let e = try model.embedPrompt(inputIDs: ids, images: [], videos: [video], videoHook: c.videoHook)
        let span = try #require(e.visualSpans.first)
        let lm = model.language
        var h = e.embeddings
        var pos = Array(0..<h.rows)
        var rows: [Int] = []
        var lastRow: Tensor? = nil
        var innerResult: HoliTom.InnerResult? = nil
        for i in 0..<lm.config.layers {
            if i == k, let attention = lastRow {
                let layout = try TokenLayout(imageStart: span.lowerBound, imageCount: span.count, totalCount: h.rows)
                let r = try HoliTom.inner(hiddenStates: h, attentionLastRow: attention, layout: layout,
                                          parameters: .init(innerLayer: k, innerRemoveRatio: ratio))
                h = r.hiddenStates
                pos = r.compression.kept.map { pos[$0] }
                innerResult = r
            }
            rows.append(h.rows)
            let (probabilities, attentionOut) = try lm.attentionHalf(layer: i, hidden: h, positions: pos)
            if i == k - 1 {
                let heads = probabilities.shape[0], s = h.rows
                var row = Tensor(zeros: [heads, s])
                for head in 0..<heads { for key in 0..<s { row[head, key] = probabilities[flat: (head * s + (s - 1)) * s + key] } }
                lastRow = row
            }
            h = try lm.finishLayer(i, hidden: h, attentionOutput: attentionOut, keeping: Array(0..<h.rows))
        }
        let logits = try lm.lmHeadLogits(try lm.finalNorm(try h.rows((h.rows - 1)..<h.rows))).reshaped([lm.config.vocabSize])
        let r = try #require(innerResult)
        #expect(!r.mergedSources.isEmpty, "the merge folded something")
        #expect(p.decoder.tokensPerLayer == rows, "\(p.decoder.tokensPerLayer) vs \(rows)")
        #expect(p.decoder.tokensPerLayer[k] == p.decoder.tokensPerLayer[0] - r.mergedSources.count)
        #expect(p.decoder.positions == pos, "original positions kept")
        #expect(p.cache.tokenCounts == rows)
        let diff = CompressionVideoFrameFusionTests.maxAbs(p.logits, logits)
        #expect(diff < 1e-4, "max |Δlogit| \(diff)")
        #expect(notes.contains { $0.contains("inner merge at layer \(k)") }, "\(notes)")
    }

    @Test(arguments: [("holitom_inner_k2", 2, 0.5), ("holitom_inner_k1", 1, 0.25)])
    func transformersParity(_ name: String, layer k: Int, ratio: Double) throws {
        let reference = try SafetensorsFile(path: URL(fileURLWithPath: VideoCompressionFixture.folder).deletingLastPathComponent()
            .appendingPathComponent("framefusion-reference.safetensors").path)
        let model = try VideoCompressionFixture.model()
        let (ids, video) = try VideoCompressionFixture.inputs()
        let c = try MethodCatalog.compression(method: "holitom", budget: .ratio(1), parameters: ["inner_layer": "\(k)", "inner_ratio": "\(ratio)"])
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        #expect(p.videoTokens == [73], "the outer stage is a no-op at ratio 1")
        try CompressionVideoFrameFusionTests.expectMatchesReference(p, model: model, reference: reference, name: name)
    }

    @Test func innerMergeIsOffUnlessAsked() throws {
        let (model, ids, video, _) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.5))
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        #expect(p.decoder.tokensPerLayer.allSatisfy { $0 == p.decoder.tokensPerLayer[0] })
        #expect { _ = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.5), parameters: ["inner_ratio": "0.5"]) } throws: { "\($0)".contains("inner_layer") }
        #expect { _ = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.5), parameters: ["inner_layer": "0"]) } throws: { "\($0)".contains("≥ 1") }
    }
}
