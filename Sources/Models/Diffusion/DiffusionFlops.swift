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
        /// The ToCa authors' own `test_FLOPs` counters, only for comparing with the ToCa-family papers.
        /// DiT: DiT-ToCa's `--test-FLOPs` (docs/flops.md, the spec's F11) — also the attention scale
        /// (N·C), softmax (5·h·N·keys), LayerNorms (2·N·C each), GELU (6·N·4C), and the adaLN
        /// modulation as C + 6C² (not 2·6C²). PixArt-α: their PixArt counter, quirks included
        /// (`pixArtCounterBlockFLOPs`): per call rather than per sample, since the batch enters squared.
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

    /// True when this shape counts as the ToCa authors' PixArt-α counter does (per call, not per sample).
    public var usesPixArtAuthorsCounter: Bool { family == .pixart && convention == .tocaCode }

    /// FLOPs per sample of module `index` (in `moduleNames` order) computing `fraction` of its token rows,
    /// in the design convention or DiT-ToCa's counter. PixArt-α under `toca-code` is not a per-sample
    /// sum (the authors' counter squares the batch), so there this is the design count and the calls
    /// use `pixArtCounterBlockFLOPs` instead.
    public func moduleFLOPs(_ index: Int, fraction: Double) -> Double {
        let n = Double(tokens), d = Double(width), l = Double(captionTokens)
        guard fraction > 0 else { return 0 }
        let rows = fraction * n
        let elementwise = convention == .tocaCode && family == .dit
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
    /// 0 for PixArt-α under `toca-code`: the authors' counter counts nothing outside the blocks.
    public var fixedFLOPsPerCall: Double {
        guard !usesPixArtAuthorsCounter else { return 0 }
        let n = Double(tokens), d = Double(width), p2 = Double(patchSize * patchSize), l = Double(captionTokens)
        let embed = 2 * n * d * Double(inChannels) * p2 + 2 * n * d * p2 * Double(outChannels)
        switch family {
        case .dit: return Double(layers) * blockModulationFLOPs + embed + 2 * d * 2 * d
        case .pixart: return embed + 2 * l * d * Double(captionChannels) + 2 * l * d * d
        }
    }

    /// One uncached transformer call on `batch` samples.
    public func callFLOPs(batch: Int) -> Double {
        if usesPixArtAuthorsCounter {
            let full = Array(repeating: 1.0, count: moduleNames.count)
            return Double(layers) * pixArtCounterBlockFLOPs(batch: batch, fractions: full, skipped: false)
        }
        let modules = (0..<moduleNames.count).reduce(0.0) { $0 + moduleFLOPs($1, fraction: 1) }
        return Double(batch) * (fixedFLOPsPerCall + Double(layers) * modules)
    }

    /// One call with `fractions[layer][module]` of each module's rows computed; `skipped[layer]` marks
    /// the blocks that do not run at all (DuCa's aggressive steps), which only the PixArt-α authors'
    /// counter tells apart from a block whose modules are all reused (nil: none skipped).
    public func callFLOPs(batch: Int, fractions: [[Double]], skipped: [Bool]? = nil) -> Double {
        if usesPixArtAuthorsCounter {
            return fractions.enumerated().reduce(0.0) { sum, layer in
                let skip = skipped.map { layer.offset < $0.count && $0[layer.offset] } ?? false
                return sum + pixArtCounterBlockFLOPs(batch: batch, fractions: layer.element, skipped: skip)
            }
        }
        let modules = fractions.reduce(0.0) { sum, layer in
            sum + layer.enumerated().reduce(0.0) { $0 + moduleFLOPs($1.offset, fraction: $1.element) }
        }
        return Double(batch) * (fixedFLOPsPerCall + modules)
    }

    /// A whole sampling run: `fractions[call][layer][module]` (nil: every call uncached, `calls` of them).
    public func runFLOPs(batch: Int, calls: Int, fractions: [[[Double]]]?) -> Double {
        runFLOPs(callBatches: Array(repeating: batch, count: fractions?.count ?? calls), fractions: fractions)
    }

    /// A run whose calls have their own batch (T-GATE drops the unconditional half after its gate);
    /// `skippedBlocks[call][layer]` as in `callFLOPs(batch:fractions:skipped:)`.
    public func runFLOPs(callBatches: [Int], fractions: [[[Double]]]?, skippedBlocks: [[Bool]]? = nil) -> Double {
        guard let fractions else { return callBatches.reduce(0.0) { $0 + callFLOPs(batch: $1) } }
        return zip(fractions, callBatches).enumerated().reduce(0.0) { sum, call in
            let skipped = skippedBlocks.flatMap { call.offset < $0.count ? $0[call.offset] : nil }
            return sum + callFLOPs(batch: call.element.1, fractions: call.element.0, skipped: skipped)
        }
    }
}

// MARK: - PixArt-α in the ToCa authors' counter

extension DiffusionFlopsShape {
    /// One PixArt-α block of one call on a batch of `batch` (2 with guidance), counted as the ToCa/DuCa
    /// authors' PixArt-α `test_FLOPs` counter does (DuCa-PixArt-alpha, which ToCa's maintainers point to
    /// for the paper's PixArt numbers), so that our schedules can be compared with their tables.
    ///
    /// `fractions` are the block's modules (attention, cross-attention, MLP) as our schedules give them:
    /// 1 computed, 0 reused, k/N on a ToCa partial step. Their counter knows three block types; they map:
    /// - skipped (`skipped`, DuCa's aggressive step): nothing.
    /// - every module 0 (FORA, or any whole-block reuse): the adaLN term alone.
    /// - otherwise (a full step, or a ToCa step): LayerNorms and adaLN, then each module on its own rows.
    ///   A ToCa step is a block whose self-attention is reused while another module computes rows;
    ///   there the cross-attention still projects the whole caption even when its own fresh rows are 0
    ///   (our ToCa/DuCa schedules mark such a module "reuse", their code runs it on 0 rows).
    /// Not told apart: a ToCa step on which every partial module got 0 fresh rows reads as a FORA step
    /// (their code would add the LayerNorms and the caption K/V).
    ///
    /// Quirks of their counter, kept on purpose: the adaLN term B·C + 6·B·C² is counted in every block
    /// although PixArt-α computes its modulation once per call; the cross-attention flattens the batch
    /// into one query sequence of B·n rows and one caption sequence of B·L rows and counts the full
    /// product (the code masks it block-diagonally), adds 1 per score, and charges the output projection
    /// on B·(B·n) rows (the batch twice). Nothing outside the blocks is counted (`fixedFLOPsPerCall` 0).
    public func pixArtCounterBlockFLOPs(batch: Int, fractions: [Double], skipped: Bool) -> Double {
        guard !skipped else { return 0 }
        let b = Double(batch), c = Double(width)
        let adaLN = b * c + 6 * b * c * c
        guard fractions.contains(where: { $0 > 0 }) else { return adaLN }
        let share = { (i: Int) in i < fractions.count ? fractions[i] : 0 }
        let n = Double(tokens)
        let norms = 2 * b * n * c
        let toCaStep = share(0) == 0
        let attention = share(0) > 0 ? pixArtCounterSelfAttention(batch: batch, rows: share(0) * n) : 0
        let cross = share(1) > 0 || toCaStep ? pixArtCounterCrossAttention(batch: batch, rows: share(1) * n) : 0
        let mlp = share(2) > 0 ? pixArtCounterMLP(batch: batch, rows: share(2) * n) : 0
        return norms + adaLN + attention + cross + mlp
    }

    /// Self-attention of `rows` query rows per sample over all N keys: QKV, scale, QKᵀ, softmax (5 per
    /// score), AV, output projection (their counter has only rows = N; no PixArt schedule of ours
    /// computes a share of the self-attention).
    func pixArtCounterSelfAttention(batch: Int, rows: Double) -> Double {
        let b = Double(batch), n = Double(tokens), c = Double(width), h = Double(heads), hd = c / h
        return b * rows * c * 3 * c * 2 + b * h * rows * hd + b * h * rows * n * hd * 2 + b * h * rows * n * 5
            + b * h * rows * n * hd * 2 + b * rows * c * c * 2
    }

    /// Cross-attention of `rows` query rows per sample: N0 = B·rows queries against N1 = B·L caption rows.
    func pixArtCounterCrossAttention(batch: Int, rows: Double) -> Double {
        let b = Double(batch), c = Double(width), h = Double(heads), hd = c / h
        let n0 = b * rows, n1 = b * Double(captionTokens)
        return n0 * c * c * 2 + n1 * c * c * 2 * 2 + h * n0 * hd + h * n0 * n1 + h * n0 * n1 * hd * 2 + h * n0 * n1 * 5
            + h * n0 * n1 * hd * 2 + b * n0 * c * c * 2
    }

    /// MLP C → 4C → C on `rows` rows per sample, GELU at 6 per element.
    func pixArtCounterMLP(batch: Int, rows: Double) -> Double {
        let b = Double(batch), c = Double(width)
        return b * rows * c * 4 * c * 2 + b * rows * 4 * c * c * 2 + b * rows * 4 * c * 6
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
