import Foundation
import Testing
import Tensors
import TokenCompression
@testable import Models

/// FitPrune inside the decoder against the same rule stepped by hand, layer by layer, exactly as the
/// authors' code cuts rows (after a layer's attention, before its MLP).
@Suite struct CompressionFitPruneTests {
    @Test func inModelRunEqualsTheRuleSteppedByHand() throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let scheme = [10, 8, 6, 0]
        let c = try FitPruneCompression.adapter.make(budget: .count(16), parameters: ["scheme": scheme.map(String.init).joined(separator: ",")])
        let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook, visionHook: c.visionHook)

        let e = try model.embedPrompt(inputIDs: ids, images: [.single(pixels)])
        let span = try #require(e.imageSpans.first)
        var h = e.embeddings
        var positions = Array(0..<h.rows), original = Array(0..<h.rows)
        var left = span.count
        for l in 0..<model.language.config.layers {
            let (probabilities, output) = try model.language.attentionHalf(layer: l, hidden: h, positions: positions)
            var kept = Array(0..<h.rows)
            if scheme[l] > 0 {
                let r = try FitPrune.prune(attention: probabilities, positionIds: positions, imageCount: left,
                                           deleteCount: scheme[l], systemLength: span.lowerBound)
                kept = r.compression.kept
                positions = r.positionIds
                left = r.imageCountAfter
            }
            original = kept.map { original[$0] }
            h = try model.language.finishLayer(l, hidden: h, attentionOutput: output, keeping: kept)
        }
        let logits = try model.language.lmHeadLogits(try model.language.finalNorm(try h.rows((h.rows - 1)..<h.rows)))
        #expect(p.decoder.keptOriginalIndices == original)
        #expect(p.decoder.positions == positions)
        #expect(zip(p.logits.values, logits.values).allSatisfy { abs($0 - $1) <= 1e-4 })
        // Rows leave after layers 0, 1, 2; positions keep their gaps; the trace and the report agree.
        #expect(p.trace.decoderVisualRowsPerLayer == [64, 54, 46, 40] && !p.trace.positionsRenumbered)
        #expect(c.report().achievedVisualTokens == 40 && c.report().positionPolicy == .keepOriginal)
    }

    @Test func schemesComeFromAListAFileOrTheAuthorsTables() throws {
        #expect { try FitPruneCompression.adapter.make(budget: .count(16)) } throws: { "\($0)".contains("needs its delete scheme") }
        #expect(throws: ModelCompressionError.self) { try FitPruneCompression.adapter.make(budget: .count(16), parameters: ["scheme": "1", "table": "60"]) }
        #expect(throws: CompressionError.self) { try FitPruneCompression.adapter.make(budget: .count(16), parameters: ["table": "65"]) }
        #expect(throws: CompressionError.self) { try FitPruneCompression.adapter.make(budget: .count(16), parameters: ["scheme": "1,x"]) }
        // The authors' 32-layer table does not fit the 4-layer fixture: refused at the prefill, saying why.
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let table = try FitPruneCompression.adapter.make(budget: .count(16), parameters: ["table": "60"])
        #expect { try model.prefill(inputIDs: ids, pixelValues: pixels, hook: table.prefillHook) } throws: { "\($0)".contains("32 layers, the decoder 4") }
        // A scheme file: the scheme whose reduction is closest to 1 − kept fraction.
        let path = NSTemporaryDirectory() + "fitprune-\(UUID().uuidString).json"
        try FitPruneSchemeFile(schemes: ["0.5": [32, 0, 0, 0], "0.75": [48, 0, 0, 0]], model: "m", task: "t", samples: 2,
                               alpha: [:], lastStepMetBudget: [:]).write(path: path)
        for (budget, left) in [(Budget.ratio(0.5), 32), (.ratio(0.25), 16), (.count(20), 16)] {
            let c = try FitPruneCompression.adapter.make(budget: budget, parameters: ["scheme": "@" + path])
            let p = try model.prefill(inputIDs: ids, pixelValues: pixels, hook: c.prefillHook)
            #expect(p.trace.decoderVisualRowsPerLayer.last == left, "\(budget)")
        }
        try "{}".write(toFile: path, atomically: true, encoding: .utf8)
        #expect(throws: ModelCompressionError.self) { try FitPruneCompression.adapter.make(budget: .count(16), parameters: ["scheme": "@" + path]) }
    }

    /// The offline search on the fixture's decoder: a scheme per layer that removes tokens.
    @Test func calibrationFitsASchemeOnTheModel() throws {
        let model = try CompressionFixture.model()
        let (ids, pixels) = try CompressionFixture.inputs()
        let calibration = try FitPruneCalibration(model: model, prompts: [(ids, .single(pixels)), (ids, .single(pixels))])
        #expect(calibration.systemLength == 4 && calibration.imageTokens == 64)
        let result = try FitPrune.fit(model: calibration, parameters: .init(reductionRatio: 0.5, systemLength: calibration.systemLength,
                                                                          imageTokens: calibration.imageTokens, flops: calibration.flopsModel))
        #expect(result.scheme.count == 4 && result.scheme.reduce(0, +) > 0 && result.scheme.reduce(0, +) <= 64)
        #expect(result.steps.count == 7)
    }
}
