/// The four places where tokens pile up; methods are listed and compared within a domain.
public enum Domain: String, Sendable, CaseIterable, Codable {
    case vit = "ViT"
    case imageVLM = "image VLM"
    case videoLLM = "video LLM"
    case diffusion = "diffusion"
}

/// What a method's strategy does with the tokens it does not keep as they are.
public enum Family: String, Sendable, CaseIterable, Codable {
    /// Drops tokens (keeps a subset).
    case prune
    /// Fuses tokens into fewer tokens (averages, weighted sums, cluster centres).
    case merge
    /// Reuses features computed at an earlier step instead of recomputing them.
    case cache
    /// Predicts features from earlier steps (e.g. Taylor expansion) instead of computing them.
    case forecast
}

/// A signal a method reads from the model. The runtime computes only what was declared.
public enum Signal: String, Sendable, CaseIterable, Codable {
    case hiddenStates = "hidden states"
    case normalizedHiddenStates = "normalized hidden states"
    case queries = "queries"
    case keys = "keys (after RoPE)"
    case values = "values"
    case attentionProbabilities = "attention probabilities (requested rows)"
    case attentionLogits = "pre-softmax attention logits"
    case clsAttention = "[CLS] attention"
    case tokenLayout = "token layout (system/image/text spans, crops, grid)"
    case frameLayout = "frame layout (frames × tokens)"
    case timestep = "timestep / step index"
    case moduleOutputs = "module outputs of earlier steps"
    case textEmbeddings = "text embeddings"
}

/// Where in the model a method acts.
public enum Placement: Sendable, Equatable, CustomStringConvertible {
    case visionLayer(Int)
    case visionLayers([Int])
    case beforeProjector
    case llmLayer(Int)
    case llmLayers([Int])
    case decodeStep
    case everyDiffusionStep
    case multiple([Placement])

    public var description: String {
        switch self {
        case .visionLayer(let l): return "vision layer \(l)"
        case .visionLayers(let ls): return "vision layers \(ls.map(String.init).joined(separator: ","))"
        case .beforeProjector: return "before the projector"
        case .llmLayer(let l): return "LLM layer \(l)"
        case .llmLayers(let ls): return "LLM layers \(ls.map(String.init).joined(separator: ","))"
        case .decodeStep: return "each decoding step"
        case .everyDiffusionStep: return "each diffusion step (per layer/module)"
        case .multiple(let ps): return ps.map(\.description).joined(separator: " + ")
        }
    }
}

/// What `tokc methods` shows for a method, and what the runtime needs to know to plug it in.
public struct MethodInfo: Sendable {
    /// Registry name (lower case, as in conformance case folders).
    public let name: String
    public let displayName: String
    public let domain: Domain
    public let families: [Family]
    public let placement: Placement
    public let signals: [Signal]
    /// True when the method needs explicit attention probabilities or logits, i.e. it cannot run
    /// on a fused (FlashAttention-style) kernel as is.
    public let needsAttentionProbabilities: Bool
    public let paper: String
    public let repository: String
    /// One line on what the method does.
    public let summary: String

    public init(name: String, displayName: String, domain: Domain, families: [Family], placement: Placement,
                signals: [Signal], needsAttentionProbabilities: Bool, paper: String, repository: String, summary: String) {
        self.name = name
        self.displayName = displayName
        self.domain = domain
        self.families = families
        self.placement = placement
        self.signals = signals
        self.needsAttentionProbabilities = needsAttentionProbabilities
        self.paper = paper
        self.repository = repository
        self.summary = summary
    }
}
