import Tensors
import TokenCompression

/// Calibration samples of a LLaVA model as FitPrune's offline search sees them
/// (`FitPruneCalibrationModel`): the decoder run layer by layer on each sample's prompt, with the
/// attention probabilities of every row and the cut between a layer's attention and its rest.
///
/// All samples must share the prompt's layout before the image (the search assumes one system
/// length) and the visual-token count; `systemLength` and `imageTokens` say what they are.
public final class FitPruneCalibration: FitPruneCalibrationModel {
    let decoder: DecoderLM
    let embeddings: [Tensor]
    public let systemLength: Int
    public let imageTokens: Int
    private var hidden: [Tensor]
    private var pendingOutput: [Int: Tensor] = [:]

    /// - Parameter prompts: per sample, the prompt ids (one image placeholder) and its image.
    public init(model: LlavaModel, prompts: [(inputIDs: [Int], image: LlavaImage)]) throws {
        guard !prompts.isEmpty else { throw ModelError("fitprune calibration: no samples") }
        decoder = model.language
        var embeddings: [Tensor] = []
        var starts = Set<Int>(), counts = Set<Int>()
        for p in prompts {
            let e = try model.embedPrompt(inputIDs: p.inputIDs, images: [p.image])
            guard e.imageSpans.count == 1 else { throw ModelError("fitprune calibration: each sample needs exactly one image") }
            starts.insert(e.imageSpans[0].lowerBound)
            counts.insert(e.imageSpans[0].count)
            embeddings.append(e.embeddings)
        }
        guard starts.count == 1, counts.count == 1 else {
            throw ModelError("fitprune calibration: the samples' images start at \(starts.sorted()) with \(counts.sorted()) visual tokens; the search needs one layout")
        }
        self.embeddings = embeddings
        hidden = embeddings
        systemLength = starts.first!
        imageTokens = counts.first!
    }

    public var sampleCount: Int { embeddings.count }
    public var layerCount: Int { decoder.config.layers }
    public func sequenceLength(sample: Int) -> Int { embeddings[sample].rows }

    public func unprunedAttention(sample s: Int, visit: (Int, Tensor) throws -> Void) throws {
        var h = embeddings[s]
        let positions = Array(0..<h.rows)
        for l in 0..<layerCount {
            let (p, o) = try decoder.attentionHalf(layer: l, hidden: h, positions: positions)
            try visit(l, p)
            h = try decoder.finishLayer(l, hidden: h, attentionOutput: o, keeping: Array(0..<h.rows))
        }
    }

    public func resetPass() throws {
        hidden = embeddings
        pendingOutput = [:]
    }

    public func attention(sample s: Int, layer: Int, positionIds: [Int]) throws -> Tensor {
        let (p, o) = try decoder.attentionHalf(layer: layer, hidden: hidden[s], positions: positionIds)
        pendingOutput[s] = o
        return p
    }

    public func finishLayer(sample s: Int, layer: Int, keeping kept: [Int]) throws {
        guard let o = pendingOutput.removeValue(forKey: s) else {
            throw ModelError("fitprune calibration: layer \(layer) of sample \(s) finished before its attention ran")
        }
        hidden[s] = try decoder.finishLayer(layer, hidden: hidden[s], attentionOutput: o, keeping: kept)
    }

    /// The search's FLOPs model for this decoder (the script's formulas with this model's sizes).
    public var flopsModel: FitPrune.FLOPsModel {
        FitPrune.FLOPsModel(hidden: decoder.config.hiddenSize, ffn: decoder.config.intermediateSize,
                            layers: decoder.config.layers, imageTokens: imageTokens)
    }
}
