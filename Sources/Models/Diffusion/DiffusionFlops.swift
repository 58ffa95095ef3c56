import Foundation

/// The one FLOPs convention of the diffusion transformers, shared by the runtime (`tokc generate`,
/// `tokc bench --task diffusion`) and the analytic count (`tokc flops --preset dit-xl-2-256`), so that
/// both give the same number for the same shapes.
///
/// A multiply-add counts 2 FLOPs (DESIGN.md). Counted: every linear layer (projections, MLP, the
/// per-block adaLN modulation of DiT, PixArt-α's caption projection), attention scores and their
/// weighted sums, the patch embedding and the final projection. Not counted: norms, activations,
/// softmax, the timestep sinusoids, the text encoder (T5) and the VAE. Per transformer call and per
/// sample; a guided run has a batch of 2 (conditional and unconditional in one call).
///
/// A cached module costs in proportion to the token rows it really computes (1 computed, 0 reused,
/// forecast or skipped, k/N on a ToCa partial step); PixArt-α's cross-attention keys and values over
/// the caption are counted whenever the module runs at all (ToCa's partial step still projects the
/// whole caption).
public struct DiffusionFlopsShape: Sendable, Equatable {
    public enum Family: String, Sendable, Equatable {
        /// Class-conditional DiT (adaLN-Zero): modules attention, MLP.
        case dit
        /// PixArt-α (adaLN-single, cross-attention to the caption): modules attention, cross-attention, MLP.
        case pixart
    }

    /// What is counted besides the matrix products.
    public enum Convention: String, Sendable, Equatable, CaseIterable {
        /// DESIGN.md: matrix products only (the runtime's convention).
        case design
        /// DiT-ToCa's `--test-FLOPs` counter (docs/flops.md, the spec's F11): also the attention scale
        /// (N·C), softmax (5·h·N·keys), LayerNorms (2·N·C each), GELU (6·N·4C), and the adaLN
        /// modulation as C + 6C² (not 2·6C²). Only for comparing with the ToCa-family papers.
        case tocaCode = "toca-code"
    }

    public var family: Family
    public var convention: Convention = .design
    public var heads: Int = 16
    public var layers: Int
    /// Model width d.
    public var width: Int
    /// Image tokens N per sample.
    public var tokens: Int
    public var patchSize: Int
    public var inChannels: Int
    public var outChannels: Int
    /// PixArt-α: caption embedding width (T5-XXL: 4096) and caption tokens L (the pipeline pads to 120).
    public var captionChannels: Int
    public var captionTokens: Int

    public init(family: Family, layers: Int, width: Int, heads: Int, tokens: Int, patchSize: Int, inChannels: Int, outChannels: Int,
                captionChannels: Int = 0, captionTokens: Int = 0) {
        self.family = family
        self.heads = heads
        self.layers = layers
        self.width = width
        self.tokens = tokens
        self.patchSize = patchSize
        self.inChannels = inChannels
        self.outChannels = outChannels
        self.captionChannels = captionChannels
        self.captionTokens = captionTokens
    }

    /// The modules a caching schedule names for this family, in schedule order.
    public var moduleNames: [String] { family == .dit ? DiTFeatureCache.ditModules : DiTFeatureCache.pixArtModules }

    /// FLOPs per sample of module `index` (in `moduleNames` order) computing `fraction` of its token rows.
    public func moduleFLOPs(_ index: Int, fraction: Double) -> Double {
        let n = Double(tokens), d = Double(width), l = Double(captionTokens)
        guard fraction > 0 else { return 0 }
        let rows = fraction * n
        let elementwise = convention == .tocaCode
        let h = Double(heads)
        switch (family, index) {
        case (_, 0):
            // Q, K, V, O projections of the computed rows; scores and weighted sum of those rows over all N keys.
            let extra = elementwise ? rows * d + 5 * h * rows * n + 2 * rows * d : 0
            return 2 * rows * d * d * 4 + 2 * 2 * rows * n * d + extra
        case (.pixart, 1):
            // Q and O of the computed rows, K and V of the whole caption, scores and weighted sum over L keys.
            let extra = elementwise ? rows * d + 5 * h * rows * l : 0
            return 2 * rows * d * d * 2 + 2 * l * d * d * 2 + 2 * 2 * rows * l * d + extra
        default:
            // MLP d → 4d → d.
            let extra = elementwise ? 6 * rows * 4 * d + 2 * rows * d : 0
            return 2 * 2 * rows * d * 4 * d + extra
        }
    }

    /// DiT's per-block adaLN modulation linear (d → 6d) per sample; PixArt-α: 0 (its modulation is one
    /// shared table, computed once per call).
    public var blockModulationFLOPs: Double {
        guard family == .dit else { return 0 }
        let d = Double(width)
        return convention == .tocaCode ? d + 6 * d * d : 2 * d * 6 * d
    }

    /// One whole block per sample: every module computed, plus its modulation (what a step cache that
    /// skips the block does not spend).
    public var blockFLOPs: Double {
        (0..<moduleNames.count).reduce(blockModulationFLOPs) { $0 + moduleFLOPs($1, fraction: 1) }
    }

    /// FLOPs per sample and call outside the cached modules: DiT's per-block adaLN modulation (d → 6d),
    /// the patch embedding, the final projection, DiT's timestep MLP, PixArt-α's caption projection.
    public var fixedFLOPsPerCall: Double {
        let n = Double(tokens), d = Double(width), p2 = Double(patchSize * patchSize), l = Double(captionTokens)
        let embed = 2 * n * d * Double(inChannels) * p2 + 2 * n * d * p2 * Double(outChannels)
        switch family {
        case .dit: return Double(layers) * blockModulationFLOPs + embed + 2 * d * 2 * d
        case .pixart: return embed + 2 * l * d * Double(captionChannels) + 2 * l * d * d
        }
    }

    /// One uncached transformer call on `batch` samples.
    public func callFLOPs(batch: Int) -> Double {
        let modules = (0..<moduleNames.count).reduce(0.0) { $0 + moduleFLOPs($1, fraction: 1) }
        return Double(batch) * (fixedFLOPsPerCall + Double(layers) * modules)
    }

    /// One call with `fractions[layer][module]` of each module's rows computed.
    public func callFLOPs(batch: Int, fractions: [[Double]]) -> Double {
        let modules = fractions.reduce(0.0) { sum, layer in
            sum + layer.enumerated().reduce(0.0) { $0 + moduleFLOPs($1.offset, fraction: $1.element) }
        }
        return Double(batch) * (fixedFLOPsPerCall + modules)
    }

    /// A whole sampling run: `fractions[call][layer][module]` (nil: every call uncached, `calls` of them).
    public func runFLOPs(batch: Int, calls: Int, fractions: [[[Double]]]?) -> Double {
        runFLOPs(callBatches: Array(repeating: batch, count: fractions?.count ?? calls), fractions: fractions)
    }

    /// A run whose calls have their own batch (T-GATE drops the unconditional half after its gate).
    public func runFLOPs(callBatches: [Int], fractions: [[[Double]]]?) -> Double {
        guard let fractions else { return callBatches.reduce(0.0) { $0 + callFLOPs(batch: $1) } }
        return zip(fractions, callBatches).reduce(0.0) { $0 + callFLOPs(batch: $1.1, fractions: $1.0) }
    }
}

extension DiTConfig {
    /// This model's shapes in the diffusion FLOPs convention.
    public var flopsShape: DiffusionFlopsShape {
        DiffusionFlopsShape(family: .dit, layers: layers, width: width, heads: heads, tokens: tokenCount, patchSize: patchSize,
                            inChannels: inChannels, outChannels: outChannels)
    }
}

extension PixArtConfig {
    /// This model's shapes in the diffusion FLOPs convention, for captions of `captionTokens` tokens.
    public func flopsShape(captionTokens: Int) -> DiffusionFlopsShape {
        DiffusionFlopsShape(family: .pixart, layers: layers, width: width, heads: heads, tokens: tokenCount, patchSize: patchSize,
                            inChannels: inChannels, outChannels: outChannels, captionChannels: captionChannels,
                            captionTokens: captionTokens)
    }
}
