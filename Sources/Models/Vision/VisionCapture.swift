import Tensors

/// Signals a compression method wants from vision encoder layers, declared before the forward
/// pass so that the tower computes only those (the fused attention path otherwise).
///
/// Layer numbers are 0-based encoder layers (`encoder.layers[i]`); negative numbers count from
/// the end (-1 = last layer). The attention of layer `i` is the one that produces
/// `hidden_states[i + 1]` in Hugging Face indexing.
public struct VisionCaptureRequest: Sendable, Equatable {
    /// Attention probabilities or logits of chosen query rows (row 0 is [CLS] for CLIP).
    public var attention: [Int: AttentionRecord]
    /// Layers whose queries, keys and values (after projection, all heads concatenated) are kept.
    public var qkvLayers: Set<Int>

    public init(attention: [Int: AttentionRecord] = [:], qkvLayers: Set<Int> = []) {
        self.attention = attention
        self.qkvLayers = qkvLayers
    }

    public static let none = VisionCaptureRequest()
    public var isEmpty: Bool { attention.isEmpty && qkvLayers.isEmpty }

    /// The same request with layer numbers made non-negative for a tower of `layers` layers.
    func normalized(layers: Int) throws -> VisionCaptureRequest {
        func fix(_ l: Int) throws -> Int {
            let v = l < 0 ? layers + l : l
            guard v >= 0, v < layers else { throw ModelError("vision capture: layer \(l) is out of range for \(layers) layers") }
            return v
        }
        var out = VisionCaptureRequest()
        for (l, r) in attention { out.attention[try fix(l)] = r }
        out.qkvLayers = Set(try qkvLayers.map(fix))
        return out
    }
}

/// What one encoder layer recorded.
public struct VisionLayerCapture: Sendable {
    public var attention: RecordedAttention?
    /// `[tokens, hidden]` each, heads concatenated (`heads × headDim`), before attention.
    public var queries: Tensor?
    public var keys: Tensor?
    public var values: Tensor?
}

/// Output of a vision tower forward pass.
public struct VisionTowerOutput: Sendable {
    /// Requested `hidden_states` entries by non-negative HF index (0 = embeddings after the
    /// CLIP pre-layernorm; i = output of encoder layer i-1), each `[tokens, hidden]`.
    public var hiddenStates: [Int: Tensor]
    /// Final encoder output (post-layernorm applied for SigLIP, as transformers' `last_hidden_state`);
    /// nil when the pass stopped early because no later layer was needed.
    public var lastHiddenState: Tensor?
    /// Captures by non-negative encoder layer index.
    public var captures: [Int: VisionLayerCapture]
    /// Rows entering each encoder layer the pass ran (fewer after a merge inside the tower).
    public var rowsPerLayer: [Int] = []
}
