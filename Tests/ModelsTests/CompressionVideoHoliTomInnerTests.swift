import Foundation
import Testing
import Evaluation
import Tensors
import TokenCompression
@testable import Models

/// HoliTom's inner merge inside LLaVA-OneVision's decoder (opt-in: `inner_layer`, `inner_ratio`).
/// The reference is NOT transformers: it is `HoliTom.inner` applied by hand, before layer k, to a
/// decoder stepped here from the model's pieces (unfused attention, layer k−1's last-query row).
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

    @Test func innerMergeIsOffUnlessAsked() throws {
        let (model, ids, video, _) = try CompressionVideoTests.pooled()
        let c = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.5))
        let p = try model.prefill(inputIDs: ids, images: [], videos: [video], hook: c.prefillHook, videoHook: c.videoHook)
        #expect(p.decoder.tokensPerLayer.allSatisfy { $0 == p.decoder.tokensPerLayer[0] })
        #expect { _ = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.5), parameters: ["inner_ratio": "0.5"]) } throws: { "\($0)".contains("inner_layer") }
        #expect { _ = try MethodCatalog.compression(method: "holitom", budget: .ratio(0.5), parameters: ["inner_layer": "0"]) } throws: { "\($0)".contains("≥ 1") }
    }
}
