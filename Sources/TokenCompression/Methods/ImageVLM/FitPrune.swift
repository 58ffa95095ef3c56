import Foundation
import Tensors

/// FitPrune: per-layer visual-token removal counts fitted offline, applied with a head-max
/// cross·self attention score at inference (Ye et al., AAAI 2025).
///
/// The released code has two independent parts, reproduced here with their quirks:
/// - **Inference** (`prune`, the "# fitprune" block of the LLaVA-1.5 `LlamaAttention.forward`):
///   at prefill layer `l`, with `left` visual tokens at `[35, 35 + left)`, A = the attention
///   probabilities' MAX over heads, `cross[j] = Σ_text rows A[i, 35+j]` (a plain sum),
///   `self[j] = Σ_image rows A[i, 35+j] / left`, score = cross·self; the `deleteScheme[l]`
///   smallest scores leave the sequence right after layer `l`'s attention (they were still
///   queries and keys there). Positions keep their original values (gaps).
/// - **Fitting** (`fitLayer`, `fit`: `statistical_analysis.py`): a binary search over the share
///   α of attention mass a layer may lose, each step a full pass over calibration samples and
///   layers that removes, per sample, the INTERSECTION of the bottom-by-cross and bottom-by-self
///   sets (not the product ranking used at inference), until a LLaMA-7B FLOPs forecast meets the
///   budget. The scheme is the per-layer removal summed over samples and floor-divided by their
///   number; the script prints the LAST step's scheme.
///
/// Everything here is a pure function of attention probabilities and the token layout; the
/// offline search drives a model only through `FitPruneCalibrationModel`, which the caller
/// implements.
public struct FitPrune: Sendable {
    public static let info = MethodInfo(
        name: "fitprune", displayName: "FitPrune", domain: .imageVLM, families: [.prune],
        placement: .llmLayers(Array(0..<32)),
        signals: [.attentionProbabilities, .tokenLayout], needsAttentionProbabilities: true,
        paper: "Fit and Prune: Fast and Training-free Visual Token Pruning for Multi-modal Large Language Models (AAAI 2025, arXiv 2409.10197)",
        repository: "ywh187/FitPrune",
        summary: "Offline-fitted per-layer removal counts (binary search over retained attention mass α under a FLOPs budget); each prefill layer drops its count of visual tokens with the smallest head-max cross·self attention, positions kept")

    /// Tokens before the image span in LLaVA-1.5 prompts; hard-coded `35` throughout the code.
    public static let defaultSystemLength = 35

    // MARK: - Shipped schemes

    /// The `delete_scheme` tables shipped in the LLaVA-1.5 `modeling_llama.py` (fitted by the
    /// authors on LLaVA-1.5-7B), keyed by the integer percent `config.reduction_ratio`: visual
    /// tokens removed at each of the 32 decoder layers. Only these keys exist; any other value
    /// leaves `delete_scheme` unbound in the code (it crashes).
    public static let shippedSchemes: [Int: [Int]] = [
        0: [Int](repeating: 0, count: 32),
        10: [0, 0, 1, 2, 1, 0, 1, 4, 5, 5, 11, 4, 2, 2, 0, 0, 1, 1, 2, 4, 2, 10, 1, 1, 1, 2, 1, 1, 0, 1, 0, 0],
        20: [0, 0, 3, 3, 1, 1, 4, 16, 14, 15, 24, 4, 2, 3, 2, 0, 6, 0, 5, 13, 4, 19, 2, 1, 1, 1, 1, 1, 2, 1, 0, 0],
        30: [0, 0, 7, 6, 4, 5, 16, 40, 24, 21, 24, 4, 2, 3, 4, 0, 16, 0, 11, 26, 6, 32, 3, 1, 0, 1, 2, 2, 4, 0, 0, 0],
        40: [0, 1, 21, 13, 14, 11, 41, 53, 29, 15, 14, 5, 1, 4, 5, 1, 26, 1, 13, 28, 6, 27, 2, 1, 0, 0, 1, 1, 2, 0, 0, 0],
        50: [3, 7, 49, 24, 29, 17, 59, 41, 26, 8, 10, 6, 2, 5, 7, 2, 30, 3, 13, 27, 5, 23, 2, 1, 0, 0, 1, 1, 2, 0, 0, 0],
        55: [6, 17, 69, 31, 34, 19, 59, 30, 23, 6, 8, 7, 2, 5, 8, 2, 29, 4, 12, 25, 4, 19, 2, 1, 0, 0, 1, 0, 1, 0, 0, 0],
        60: [14, 33, 89, 36, 36, 20, 55, 21, 18, 4, 7, 5, 2, 5, 7, 4, 26, 5, 11, 24, 4, 18, 2, 1, 0, 0, 1, 0, 1, 0, 0, 0],
        70: [48, 79, 118, 41, 33, 17, 36, 9, 9, 2, 3, 2, 1, 3, 4, 8, 18, 7, 8, 20, 4, 13, 2, 1, 0, 0, 1, 0, 1, 0, 0, 0],
        80: [128, 127, 118, 35, 26, 8, 13, 3, 2, 1, 0, 0, 0, 2, 1, 8, 7, 8, 5, 11, 2, 6, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0],
        90: [262, 153, 80, 19, 13, 1, 2, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 1, 2, 0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0],
    ]

    /// The shipped table for `percent`; other percents throw (the code leaves the table unbound).
    public static func shippedScheme(reductionPercent percent: Int) throws -> [Int] {
        guard let scheme = shippedSchemes[percent] else {
            throw CompressionError.unsupportedSetting("FitPrune ships delete_scheme tables for reduction_ratio \(shippedSchemes.keys.sorted()) (integer percent); \(percent) has none (the code's delete_scheme is unbound)")
        }
        return scheme
    }

    // MARK: - Parameters

    public struct Parameters: Sendable, Equatable {
        /// Visual tokens removed after each decoder layer's attention (`delete_scheme[layer]`);
        /// a layer beyond the list removes nothing. Default: the shipped 60 % table (the
        /// authors' evaluation scripts' `reduction_ratio 60`).
        public var deleteScheme: [Int]
        /// Tokens before the image span (`35`, LLaVA-1.5's system prompt, hard-coded).
        public var systemLength: Int

        public init(deleteScheme: [Int] = FitPrune.shippedSchemes[60]!, systemLength: Int = FitPrune.defaultSystemLength) {
            self.deleteScheme = deleteScheme
            self.systemLength = systemLength
        }

        /// The shipped table of an integer percent (0, 10, …, 50, 55, 60, 70, 80, 90).
        public init(reductionPercent: Int, systemLength: Int = FitPrune.defaultSystemLength) throws {
            self.init(deleteScheme: try FitPrune.shippedScheme(reductionPercent: reductionPercent), systemLength: systemLength)
        }

        public func validate() throws {
            if let bad = deleteScheme.firstIndex(where: { $0 < 0 }) {
                throw CompressionError.invalidParameter("FitPrune delete_scheme[\(bad)] = \(deleteScheme[bad]) is negative")
            }
            guard systemLength >= 0 else {
                throw CompressionError.invalidParameter("FitPrune system length \(systemLength) is negative")
            }
        }

        /// Removal count of `layer` (0 beyond the table).
        public func deleteCount(layer: Int) -> Int {
            deleteScheme.indices.contains(layer) ? deleteScheme[layer] : 0
        }

        /// Visual tokens entering each of `layers` layers from `initial` (the cut happens inside
        /// a layer, after its attention, so layer `l` still attends over the count before its cut).
        public func schedule(layers: Int, initial: Int) -> TokenSchedule {
            var left = initial
            return TokenSchedule(tokensPerLayer: (0..<max(0, layers)).map { l in
                defer { left = max(0, left - deleteCount(layer: l)) }
                return left
            })
        }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    // MARK: - Inference

    /// One prefill layer's decision.
    public struct LayerResult: Sendable {
        /// Kept rows of the layer's input (ascending); original positions kept.
        public var compression: CompressionResult
        /// Removed rows of the layer's input, ascending (`systemLength + j` for visual token `j`).
        public var deleted: [Int]
        /// Position ids after the layer: the incoming ids at the kept rows (gaps kept).
        public var positionIds: [Int]
        /// Per visual token: text-row sum of the head-max attention (empty when no score was computed).
        public var cross: [Float]
        /// Per visual token: image-row sum of the head-max attention divided by `left`.
        public var selfAttention: [Float]
        /// `cross · self`, ranked ascending.
        public var scores: [Float]
        /// Visual tokens left after the layer (`left_vtoken_num`).
        public var imageCountAfter: Int
    }

    /// Layer `layer` with the configured scheme (see `prune(attention:positionIds:imageCount:deleteCount:systemLength:)`).
    public func prune(layer: Int, attention: Tensor, positionIds: [Int], imageCount: Int) throws -> LayerResult {
        guard layer >= 0 else { throw CompressionError.invalidParameter("FitPrune layer \(layer) is negative") }
        return try Self.prune(attention: attention, positionIds: positionIds, imageCount: imageCount,
                              deleteCount: parameters.deleteCount(layer: layer), systemLength: parameters.systemLength)
    }

    /// The inference rule at one prefill layer.
    /// - Parameters:
    ///   - attention: `[heads, n, n]` post-softmax attention probabilities of the layer on its input.
    ///   - positionIds: the `n` position ids of the layer's input.
    ///   - imageCount: visual tokens `left` in the input, at `[systemLength, systemLength + left)`.
    ///   - deleteCount: `delete_scheme[layer]`; at most `left` tokens go (a larger count removes
    ///     them all, and later layers are then no-ops).
    /// No-ops (explicit): a count of 0 (the code's all-true mask) and `left = 0` (the code's
    /// `topk_idx = 1`); no score is computed then.
    public static func prune(attention: Tensor, positionIds: [Int], imageCount left: Int, deleteCount: Int,
                             systemLength: Int = defaultSystemLength) throws -> LayerResult {
        let n = try checkLayout(attention: attention, positionIds: positionIds, imageCount: left, systemLength: systemLength)
        guard deleteCount >= 0 else { throw CompressionError.invalidParameter("FitPrune delete count \(deleteCount) is negative") }
        if deleteCount == 0 || left == 0 {
            let reason = left == 0 ? "no visual token is left" : "the scheme removes 0 tokens at this layer"
            return LayerResult(compression: .noOp(tokenCount: n, touched: left, requested: left, policy: .keepOriginal, reason: "FitPrune: \(reason)"),
                               deleted: [], positionIds: positionIds, cross: [], selfAttention: [], scores: [], imageCountAfter: left)
        }
        let textRows = (systemLength + left)..<n
        let image = systemLength..<(systemLength + left)
        let cross = headMaxColumnSums(attention, rows: textRows, columns: image, dividingEachBy: nil).map { Float($0) }
        let selfAttention = headMaxColumnSums(attention, rows: image, columns: image, dividingEachBy: Float(left)).map { Float($0) }
        let scores = zip(cross, selfAttention).map { $0 * $1 }
        // Quirk: torch.sort ascending, the first `count` indices; a count beyond `left` takes all.
        let removed = Selection.argsort(scores).prefix(deleteCount).map { $0 + systemLength }
        let (deleted, kept) = split(n: n, removing: removed)
        return LayerResult(
            compression: CompressionResult(kept: kept, requestedCount: max(0, left - deleteCount), achievedCount: left - deleted.count,
                                           positionPolicy: .keepOriginal),
            deleted: deleted, positionIds: kept.map { positionIds[$0] }, cross: cross, selfAttention: selfAttention,
            scores: scores, imageCountAfter: left - deleted.count)
    }

    // MARK: - Fitting: one decision

    /// One (sample, layer) decision of the offline search (`fit_model`'s per-sample block).
    public struct FitDecision: Sendable {
        /// `focus_attn_weights`: text-row sum of the head-max attention per visual token, divided
        /// by the number of text rows (unlike the inference score).
        public var cross: [Float]
        /// Image-row sum of the head-max attention divided by `left`, per visual token.
        public var selfAttention: [Float]
        /// `del_num_cross`: size of the bottom-by-cross set (possibly carried over, see below).
        public var crossCount: Int
        /// `del_num_self`.
        public var selfCount: Int
        /// True when the cross loop never crossed its bound and `crossCount` is the previous
        /// decision's value (the code's stale local variable).
        public var crossCountCarriedOver: Bool
        public var selfCountCarriedOver: Bool
        /// Removed rows (ascending), in both bottom sets.
        public var deleted: [Int]
        public var kept: [Int]
        /// Incoming position ids at `kept`.
        public var positionIds: [Int]
        public var imageCountAfter: Int
    }

    /// `fit_model`'s decision for one sample at one layer at `alpha`.
    ///
    /// With `v` a score sorted ascending and `i` the first index in `0..<left` where
    /// `sum(v) − sum(v[..<i]) < W − W·α`, the count is `max(i − 1, 0)`: the largest bottom prefix
    /// whose removal keeps the mass ≥ (1 − α)·W (0 when even the full sum is below the bound).
    /// Quirks reproduced:
    /// - `i` only runs to `left − 1`: when no index crosses, the loop never breaks and the code
    ///   reuses the value its variable held from the PREVIOUS decision (previous sample, or the
    ///   last sample of the previous layer) — `previousCrossCount`/`previousSelfCount`. Without
    ///   one (the first decision of a pass) the code raises `UnboundLocalError`: we throw
    ///   `unsupportedSetting`. A carried count larger than `left` takes the whole span.
    /// - Only tokens in BOTH bottom sets are removed (intersection of two argsort prefixes).
    /// - W comes from the unpruned forward (`weightSums`) while the sums come from the current,
    ///   possibly pruned, sequence.
    /// - Sums are float32 values of the (exact) sums; `W − W·α` is computed in double and cast to
    ///   float32 for the comparison, as torch does with a Python float.
    public static func fitLayer(attention: Tensor, positionIds: [Int], imageCount left: Int,
                                systemLength: Int = defaultSystemLength, alpha: Double,
                                weightSumCross: Double, weightSumSelf: Double,
                                previousCrossCount: Int? = nil, previousSelfCount: Int? = nil) throws -> FitDecision {
        let n = try checkLayout(attention: attention, positionIds: positionIds, imageCount: left, systemLength: systemLength)
        guard alpha.isFinite, (0...1).contains(alpha) else {
            throw CompressionError.invalidParameter("FitPrune alpha \(alpha) must lie in [0, 1]")
        }
        guard weightSumCross.isFinite, weightSumSelf.isFinite else {
            throw CompressionError.invalidParameter("FitPrune weight sums must be finite (cross \(weightSumCross), self \(weightSumSelf))")
        }
        for (name, value) in [("cross", previousCrossCount), ("self", previousSelfCount)] {
            if let value, value < 0 { throw CompressionError.invalidParameter("FitPrune previous \(name) count \(value) is negative") }
        }
        let textCount = n - systemLength - left
        guard textCount > 0 else {
            throw CompressionError.shapeMismatch("FitPrune fit: \(n) tokens leave no text row after \(systemLength) system and \(left) visual tokens (the code divides by the text count)")
        }
        let image = systemLength..<(systemLength + left)
        let cross = headMaxColumnSums(attention, rows: (systemLength + left)..<n, columns: image, dividingEachBy: nil)
            .map { Float($0) / Float(textCount) }
        let selfAttention = left == 0 ? [] :
            headMaxColumnSums(attention, rows: image, columns: image, dividingEachBy: Float(left)).map { Float($0) }

        let crossOrder = Selection.argsort(cross), selfOrder = Selection.argsort(selfAttention)
        let crossBound = Float(weightSumCross - weightSumCross * alpha)
        let selfBound = Float(weightSumSelf - weightSumSelf * alpha)
        let crossFound = bottomCount(cross, order: crossOrder, bound: crossBound)
        let selfFound = bottomCount(selfAttention, order: selfOrder, bound: selfBound)
        guard let crossCount = crossFound ?? previousCrossCount else {
            throw CompressionError.unsupportedSetting("FitPrune fit: the cross loop never crosses W·(1−α) = \(crossBound) and no earlier decision set del_num_cross (the code raises UnboundLocalError)")
        }
        guard let selfCount = selfFound ?? previousSelfCount else {
            throw CompressionError.unsupportedSetting("FitPrune fit: the self loop never crosses W·(1−α) = \(selfBound) and no earlier decision set del_num_self (the code raises UnboundLocalError)")
        }
        let bottomSelf = Set(selfOrder.prefix(selfCount))
        let removed = crossOrder.prefix(crossCount).filter { bottomSelf.contains($0) }.map { $0 + systemLength }
        let (deleted, kept) = split(n: n, removing: removed)
        return FitDecision(cross: cross, selfAttention: selfAttention, crossCount: crossCount, selfCount: selfCount,
                           crossCountCarriedOver: crossFound == nil, selfCountCarriedOver: selfFound == nil,
                           deleted: deleted, kept: kept, positionIds: kept.map { positionIds[$0] },
                           imageCountAfter: left - deleted.count)
    }

    /// The first `i` in `0..<values.count` with `Σ values − Σ values[order[..<i]] < bound` (both
    /// sums as float32 values, subtracted in float32), as `max(i − 1, 0)`; nil when none crosses.
    static func bottomCount(_ values: [Float], order: [Int], bound: Float) -> Int? {
        let total = Float(values.reduce(0.0) { $0 + Double($1) })
        var prefix = 0.0
        for i in 0..<values.count {
            if total - Float(prefix) < bound { return max(i - 1, 0) }
            prefix += Double(values[order[i]])
        }
        return nil
    }

    /// `compute_attention_weights` for one sample and layer, on the UNPRUNED forward: with A the
    /// head-max attention, `W_cross = sum(A[s+N:, s:s+N]) / (n − s − N)` and
    /// `W_self = sum(A[s:s+N, s:s+N]) / N` (N = `imageCount`, 576 in the script). The sums are
    /// float32 values (`.item()`), the divisions double.
    public static func weightSums(attention: Tensor, imageCount: Int = 576,
                                  systemLength: Int = defaultSystemLength) throws -> (cross: Double, selfAttention: Double) {
        guard attention.rank == 3, attention.shape[1] == attention.shape[2], attention.shape[0] > 0 else {
            throw CompressionError.shapeMismatch("FitPrune statistics: attention \(attention.shape), expected [heads, n, n]")
        }
        let n = attention.shape[1]
        guard imageCount >= 0, systemLength >= 0, systemLength + imageCount < n else {
            throw CompressionError.shapeMismatch("FitPrune statistics: \(n) tokens leave no text row after \(systemLength) system and \(imageCount) visual tokens (the code divides by the text count)")
        }
        let image = systemLength..<(systemLength + imageCount)
        let cross = headMaxColumnSums(attention, rows: (systemLength + imageCount)..<n, columns: image, dividingEachBy: nil).reduce(0, +)
        let selfPart = headMaxColumnSums(attention, rows: image, columns: image, dividingEachBy: nil).reduce(0, +)
        return (Double(Float(cross)) / Double(n - systemLength - imageCount), Double(Float(selfPart)) / Double(max(imageCount, 1)))
    }

    // MARK: - Fitting: the search

    /// The analytic FLOPs `statistical_analysis.py` counts: visual tokens only, LLaMA-7B constants
    /// hard-coded (they do not depend on the model the search runs). Integer arithmetic, as in
    /// Python; an overflow throws.
    public struct FLOPsModel: Sendable, Equatable {
        public var hidden: Int
        public var ffn: Int
        public var layers: Int
        /// Visual tokens of the unpruned model (`calculate_origin_flops`).
        public var imageTokens: Int

        public init(hidden: Int = 4096, ffn: Int = 11008, layers: Int = 32, imageTokens: Int = 576) {
            self.hidden = hidden
            self.ffn = ffn
            self.layers = layers
            self.imageTokens = imageTokens
        }

        /// LLaMA-7B with 576 visual tokens, the script's constants.
        public static let llama7B = FLOPsModel()

        public func validate() throws {
            guard hidden > 0, ffn > 0, layers > 0, imageTokens >= 0 else {
                throw CompressionError.invalidParameter("FitPrune FLOPs model needs positive hidden \(hidden), ffn \(ffn), layers \(layers) and image tokens ≥ 0 (\(imageTokens))")
            }
        }

        /// q/k/v projections plus QKᵀ and ·V of `t` tokens: `t·h²·3 + t²·h·2` (added at a layer's start).
        public func attentionPart(_ t: Int) throws -> Int {
            try sum(product(t, hidden, hidden, 3), product(t, t, hidden, 2))
        }

        /// o_proj plus FFN of `t` tokens: `t·h² + 3·f·h·t` (added after the layer's cut).
        public func outputPart(_ t: Int) throws -> Int {
            try sum(product(t, hidden, hidden), product(3, ffn, hidden, t))
        }

        /// One whole layer at `t` tokens: `t·h²·3 + t²·h + t·h·t + t·h² + h·f·t·3`.
        public func layer(_ t: Int) throws -> Int {
            try sum(product(t, hidden, hidden, 3), product(t, t, hidden), product(t, hidden, t), product(t, hidden, hidden),
                    product(hidden, ffn, t, 3))
        }

        /// `rest_flops(t, l)`: layer `l`'s o_proj + FFN and every later layer at the current `t`.
        public func rest(_ t: Int, afterLayer l: Int) throws -> Int {
            try sum(outputPart(t), product(layer(t), layers - 1 - l))
        }

        /// `calculate_origin_flops`: every layer at `imageTokens`.
        public func origin() throws -> Int { try product(layer(imageTokens), layers) }

        func product(_ factors: Int...) throws -> Int {
            try factors.reduce(1) { a, b in
                let (r, overflow) = a.multipliedReportingOverflow(by: b)
                if overflow { throw CompressionError.invalidParameter("FitPrune FLOPs overflow (\(factors))") }
                return r
            }
        }

        func sum(_ terms: Int...) throws -> Int {
            try terms.reduce(0) { a, b in
                let (r, overflow) = a.addingReportingOverflow(b)
                if overflow { throw CompressionError.invalidParameter("FitPrune FLOPs overflow (\(terms))") }
                return r
            }
        }
    }

    /// Settings of the offline search (`statistical_analysis.py`).
    public struct SearchParameters: Sendable, Equatable {
        /// Fraction of the visual-token FLOPs to remove (the script's default 0.6). The script
        /// declares `--reduction_ratio` with `type=int`, so from its command line only this
        /// default is usable; here any fraction in [0, 1] is accepted.
        public var reductionRatio: Double
        /// Tokens before the image (35).
        public var systemLength: Int
        /// Visual tokens of every calibration sample before pruning (576): the statistics pass
        /// and each pass's initial count.
        public var imageTokens: Int
        public var flops: FLOPsModel
        /// Initial α interval (0, 1) and the width at which the search stops (0.01 + 1e-6: 7 steps).
        public var alphaLow: Double
        public var alphaHigh: Double
        public var stopWidth: Double

        public init(reductionRatio: Double = 0.6, systemLength: Int = FitPrune.defaultSystemLength, imageTokens: Int = 576,
                    flops: FLOPsModel = .llama7B, alphaLow: Double = 0, alphaHigh: Double = 1, stopWidth: Double = 0.01 + 1e-6) {
            self.reductionRatio = reductionRatio
            self.systemLength = systemLength
            self.imageTokens = imageTokens
            self.flops = flops
            self.alphaLow = alphaLow
            self.alphaHigh = alphaHigh
            self.stopWidth = stopWidth
        }

        public func validate() throws {
            guard reductionRatio.isFinite, (0...1).contains(reductionRatio) else {
                throw CompressionError.invalidBudget("FitPrune reduction ratio \(reductionRatio) must be a fraction in [0, 1]")
            }
            guard systemLength >= 0, imageTokens >= 0 else {
                throw CompressionError.invalidParameter("FitPrune search: system length \(systemLength) and image tokens \(imageTokens) must be ≥ 0")
            }
            guard alphaLow.isFinite, alphaHigh.isFinite, 0 <= alphaLow, alphaLow <= alphaHigh, alphaHigh <= 1 else {
                throw CompressionError.invalidParameter("FitPrune search: alpha interval [\(alphaLow), \(alphaHigh)] must lie in [0, 1]")
            }
            guard stopWidth.isFinite, stopWidth > 0 else {
                throw CompressionError.invalidParameter("FitPrune search: stop width \(stopWidth) must be positive (the search would not end)")
            }
            try flops.validate()
        }
    }

    /// One binary-search step (one `fit_model` call).
    public struct FitStep: Sendable, Equatable {
        public var alpha: Double
        /// `flops_reach`: the budget test passed at the start of some layer.
        public var reachedBudget: Bool
        /// That layer (pruning stopped before it), or the layer count when the test never passed.
        public var stopLayer: Int
        /// Per layer: tokens removed summed over samples, floor-divided by the sample count.
        public var scheme: [Int]
        /// Decisions that reused a carried-over count (the loop never crossed).
        public var carriedOverDecisions: Int
    }

    public struct FitResult: Sendable {
        /// `W_cross[sample][layer]`, `W_self[sample][layer]` of the statistics pass.
        public var weightSumCross: [[Double]]
        public var weightSumSelf: [[Double]]
        public var steps: [FitStep]
        /// Final (min_alpha, max_alpha).
        public var alphaInterval: (low: Double, high: Double)
        /// What the script prints: the LAST step's scheme, which may be a step that missed the budget.
        public var scheme: [Int] { steps.last?.scheme ?? [] }
        /// The step with the smallest α that met the budget (not what the script prints), if any.
        public var smallestAlphaMeetingBudget: FitStep? { steps.last { $0.reachedBudget } }
    }

    /// The whole offline search (`statistical_analysis`): a statistics pass over the unpruned
    /// model, then `lo, hi = alphaLow, alphaHigh; while hi − lo > stopWidth: mid = (lo+hi)/2`,
    /// one pass at `mid`, `hi = mid` if the budget was reached else `lo = mid`.
    ///
    /// One pass (`fit_model`), layer by layer: for every sample add the layer's attention FLOPs
    /// at its current visual count to the running total (kept across layers and samples) and its
    /// `rest` to a fresh forecast; stop when `(total + forecast) / samples ≤ origin · (1 − ratio)`.
    /// Otherwise every sample runs the layer's attention, takes `fitLayer`'s decision (the
    /// carried-over counts live across samples and layers of the pass, as the code's local
    /// variables), finishes the layer on the kept rows, and adds its o_proj + FFN FLOPs at the
    /// new count.
    public static func fit(model: FitPruneCalibrationModel, parameters: SearchParameters = SearchParameters()) throws -> FitResult {
        try parameters.validate()
        let samples = model.sampleCount, layers = model.layerCount
        guard samples > 0, layers > 0 else {
            throw CompressionError.invalidParameter("FitPrune fit needs at least one sample and one layer (got \(samples) samples, \(layers) layers)")
        }
        guard layers <= parameters.flops.layers else {
            throw CompressionError.unsupportedSetting("FitPrune fit: the model has \(layers) layers but the script's scheme and FLOPs count \(parameters.flops.layers)")
        }
        let sys = parameters.systemLength, image = parameters.imageTokens
        var lengths: [Int] = []
        for s in 0..<samples {
            let n = model.sequenceLength(sample: s)
            guard n > sys + image else {
                throw CompressionError.shapeMismatch("FitPrune fit: sample \(s) has \(n) tokens, needs more than \(sys) system + \(image) visual tokens")
            }
            lengths.append(n)
        }

        // Statistics pass.
        var cross = [[Double]](repeating: [Double](repeating: 0, count: layers), count: samples)
        var selfSums = cross
        for s in 0..<samples {
            var visited = 0
            try model.unprunedAttention(sample: s) { layer, attention in
                guard layer == visited, layer < layers else {
                    throw CompressionError.invalidParameter("FitPrune fit: the statistics pass of sample \(s) visited layer \(layer), expected \(visited)")
                }
                guard attention.rank == 3, attention.shape[1] == lengths[s] else {
                    throw CompressionError.shapeMismatch("FitPrune fit: sample \(s) layer \(layer) attention \(attention.shape) for \(lengths[s]) tokens")
                }
                (cross[s][layer], selfSums[s][layer]) = try weightSums(attention: attention, imageCount: image, systemLength: sys)
                visited += 1
            }
            guard visited == layers else {
                throw CompressionError.invalidParameter("FitPrune fit: the statistics pass of sample \(s) visited \(visited) of \(layers) layers")
            }
        }

        let flops = parameters.flops
        let budget = Double(try flops.origin()) * (1 - parameters.reductionRatio)
        var lo = parameters.alphaLow, hi = parameters.alphaHigh
        var steps: [FitStep] = []
        while hi - lo > parameters.stopWidth {
            let mid = (lo + hi) / 2
            try model.resetPass()
            var left = [Int](repeating: image, count: samples)
            var positions = lengths.map { Array(0..<$0) }
            var used = 0
            var scheme = [Int](repeating: 0, count: layers)
            var previousCross: Int?, previousSelf: Int?
            var reached = false, stopLayer = layers, carried = 0
            layerLoop: for l in 0..<layers {
                var forecast = 0
                for t in left {
                    used = try flops.sum(used, flops.attentionPart(t))
                    forecast = try flops.sum(forecast, flops.rest(t, afterLayer: l))
                }
                if Double(try flops.sum(used, forecast)) / Double(samples) <= budget {
                    reached = true
                    stopLayer = l
                    break layerLoop
                }
                for s in 0..<samples {
                    let attention = try model.attention(sample: s, layer: l, positionIds: positions[s])
                    let d = try fitLayer(attention: attention, positionIds: positions[s], imageCount: left[s], systemLength: sys,
                                         alpha: mid, weightSumCross: cross[s][l], weightSumSelf: selfSums[s][l],
                                         previousCrossCount: previousCross, previousSelfCount: previousSelf)
                    previousCross = d.crossCount
                    previousSelf = d.selfCount
                    if d.crossCountCarriedOver || d.selfCountCarriedOver { carried += 1 }
                    scheme[l] += d.deleted.count
                    try model.finishLayer(sample: s, layer: l, keeping: d.kept)
                    positions[s] = d.positionIds
                    left[s] = d.imageCountAfter
                    used = try flops.sum(used, flops.outputPart(left[s]))
                }
            }
            steps.append(FitStep(alpha: mid, reachedBudget: reached, stopLayer: stopLayer,
                                 scheme: scheme.map { $0 / samples }, carriedOverDecisions: carried))
            if reached { hi = mid } else { lo = mid }
        }
        return FitResult(weightSumCross: cross, weightSumSelf: selfSums, steps: steps, alphaInterval: (lo, hi))
    }

    // MARK: - Shared pieces

    /// Checks `[heads, n, n]` attention, `n` positions and the image span; returns `n`.
    static func checkLayout(attention: Tensor, positionIds: [Int], imageCount left: Int, systemLength: Int) throws -> Int {
        guard attention.rank == 3, attention.shape[0] > 0, attention.shape[1] == attention.shape[2] else {
            throw CompressionError.shapeMismatch("FitPrune: attention \(attention.shape), expected prefill probabilities [heads, n, n]")
        }
        let n = attention.shape[1]
        guard positionIds.count == n else {
            throw CompressionError.shapeMismatch("FitPrune: \(positionIds.count) position ids for \(n) tokens")
        }
        guard systemLength >= 0, left >= 0, systemLength + left <= n else {
            throw CompressionError.shapeMismatch("FitPrune: image span [\(systemLength), \(systemLength) + \(left)) outside \(n) tokens")
        }
        return n
    }

    /// For each column `j` of `columns`: `Σ_{i ∈ rows} A[i, j]` with A the max over heads, each
    /// term first divided (in float32) by `dividingEachBy` when given; accumulated in double.
    static func headMaxColumnSums(_ attention: Tensor, rows: Range<Int>, columns: Range<Int>, dividingEachBy divisor: Float?) -> [Double] {
        let heads = attention.shape[0], n = attention.shape[2], plane = attention.shape[1] * n
        var sums = [Double](repeating: 0, count: columns.count)
        guard !columns.isEmpty else { return sums }
        attention.withUnsafeBufferPointer { a in
            sums.withUnsafeMutableBufferPointer { out in
                let base = a.baseAddress!, first = columns.lowerBound
                for i in rows {
                    for j in columns {
                        var m = base[i * n + j]
                        for h in 1..<heads { m = max(m, base[h * plane + i * n + j]) }
                        if let divisor { m /= divisor }
                        out[j - first] += Double(m)
                    }
                }
            }
        }
        return sums
    }

    /// Ascending removed rows and the kept rest of `0..<n`.
    static func split(n: Int, removing rows: [Int]) -> (deleted: [Int], kept: [Int]) {
        var removed = [Bool](repeating: false, count: n)
        for r in rows { removed[r] = true }
        return ((0..<n).filter { removed[$0] }, (0..<n).filter { !removed[$0] })
    }
}

/// The model the offline search drives, implemented by the caller (a real LLaVA, or the tiny
/// LLaMA of a conformance case). Per sample it holds the current hidden states; the search tells
/// it which rows to keep. Calls come in the code's order: layer-major, samples inside.
public protocol FitPruneCalibrationModel: AnyObject {
    var sampleCount: Int { get }
    var layerCount: Int { get }
    /// Tokens of sample `s` before any pruning (system + visual + text).
    func sequenceLength(sample: Int) -> Int
    /// The unpruned forward of sample `s`: calls `visit(layer, probabilities [heads, n, n])` for
    /// every layer in order.
    func unprunedAttention(sample: Int, visit: (_ layer: Int, _ attention: Tensor) throws -> Void) throws
    /// Starts a pass: every sample back to its input embeddings.
    func resetPass() throws
    /// Layer `layer`'s attention probabilities `[heads, n, n]` on sample `s`'s current rows, with
    /// RoPE at `positionIds` (input RMSNorm, q/k/v, causal softmax).
    func attention(sample: Int, layer: Int, positionIds: [Int]) throws -> Tensor
    /// Finishes layer `layer` of sample `s` on the `kept` rows only: attention output and residual
    /// cut to them, then o_proj, residual add, MLP.
    func finishLayer(sample: Int, layer: Int, keeping kept: [Int]) throws
}
