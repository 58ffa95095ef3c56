import Foundation
import Tensors
import TokenCompression

/// The sizes one image-VLM scoring benchmark runs at.
///
/// LLM-side signals (hidden states, keys, values, attention rows) cover the whole LLaVA sequence
/// `system + visual + text`; vision-side signals (ViT features, [CLS] attention, keys) cover one
/// ViT pass per partition. A visual count of `5·s²` is read as LLaVA-NeXT (base image + 2×2
/// crops, `s × s` patches each: 2880 = 5 · 24²); a count of `s²` as one LLaVA-1.5 image.
public struct MethodBenchmarkShape: Sendable, Equatable {
    public var visualTokens: Int
    /// Hidden width of every signal (LLM and, unless a method's API needs otherwise, ViT).
    public var width: Int
    public var heads: Int
    public var systemTokens: Int
    public var textTokens: Int

    public init(visualTokens: Int, width: Int = 4096, heads: Int = 32, systemTokens: Int = 35, textTokens: Int = 60) {
        self.visualTokens = visualTokens
        self.width = width
        self.heads = heads
        self.systemTokens = systemTokens
        self.textTokens = textTokens
    }

    public var sequenceLength: Int { systemTokens + visualTokens + textTokens }
    public var headDim: Int { width / heads }

    public func validate() throws {
        guard visualTokens >= 1, systemTokens >= 0, textTokens >= 1 else {
            throw CompressionError.invalidParameter("benchmark needs ≥ 1 visual and ≥ 1 text token (got \(visualTokens), \(textTokens))")
        }
        guard heads >= 1, width >= heads, width % heads == 0, headDim % 2 == 0 else {
            throw CompressionError.invalidParameter("width \(width) must split into \(heads) heads of an even head size")
        }
    }

    /// LLaVA layout of the LLM sequence.
    public func layout() throws -> TokenLayout {
        try TokenLayout(imageStart: systemTokens, imageCount: visualTokens, totalCount: sequenceLength)
    }

    /// ViT passes: 5 (NeXT base + 2×2 crops) or 1; nil when the count fits neither.
    public var partitions: Int? {
        if visualTokens % 5 == 0, Self.isSquare(visualTokens / 5) { return 5 }
        return Self.isSquare(visualTokens) ? 1 : nil
    }

    /// `(partitions, patches per partition, grid side)`, or a clear error for vision-side methods.
    func vision() throws -> (parts: Int, n: Int, side: Int) {
        guard let p = partitions else {
            throw CompressionError.shapeMismatch("\(visualTokens) visual tokens are neither a square grid nor 5 square partitions (LLaVA-NeXT base + 2×2 crops)")
        }
        let n = visualTokens / p
        return (p, n, Int(Double(n).squareRoot().rounded()))
    }

    static func isSquare(_ x: Int) -> Bool {
        let s = Int(Double(x).squareRoot().rounded())
        return x > 0 && s * s == x
    }
}

/// One method call ready to be timed: its inputs are already built and held by `call`.
public struct PreparedMethodCall {
    /// Row label (the registry name, plus a suffix for extra rows).
    public let label: String
    /// How the call was set up (path, parameters, which signals were prepared outside).
    public let note: String
    /// Runs the method once and returns the visual tokens it leaves (kept + merged).
    public let call: () throws -> MethodBenchmarkOutcome
}

/// What one call left behind: achieved visual tokens, and the method's own no-op note if any.
public struct MethodBenchmarkOutcome: Sendable, Equatable {
    public var kept: Int
    public var noOpReason: String?
    public init(kept: Int, noOpReason: String? = nil) {
        self.kept = kept
        self.noOpReason = noOpReason
    }
    init(_ c: CompressionResult) { self.init(kept: c.achievedCount, noOpReason: c.noOpReason) }
}

/// One table row: the timings of a prepared call, or why there are none.
public struct MethodScoringMeasurement: Sendable {
    public let label: String
    public let visualTokens: Int
    public let kept: Int?
    /// Milliseconds of the timed repeats, ascending (empty when the method failed).
    public let milliseconds: [Double]
    public let note: String
    /// The error the method (or its input builder) threw, instead of a number.
    public let error: String?

    public var median: Double? { milliseconds.isEmpty ? nil : Statistics.median(milliseconds) }
}

/// Times the method's own scoring and selection for every registered image-VLM method, on
/// seeded synthetic signals of the model's real shapes.
///
/// Only the method call is timed: inputs are generated first (a dry run through the call builds
/// every per-stage input, since later stages see sizes the earlier ones chose), then the call
/// runs `warmups` times untimed and `repeats` times timed. What the model computes anyway
/// (attention probabilities or logits, hidden states, keys) is an input; what the method
/// computes itself (PDrop's ranking q/k projections, SparseVLM's rater matmul and clustering,
/// PruMerge's [CLS]–key attention, …) is timed.
public enum MethodScoringBenchmark {
    /// Registry names of the image-VLM methods, in `MethodCatalog` order (one without a scoring
    /// benchmark gets an explicit "no benchmark" row).
    public static var methods: [String] {
        MethodCatalog.all.filter { $0.info.domain == .imageVLM }.map { $0.name }
    }

    /// What an entry of `MethodCatalog` names: the call(s) of one method (one row each; FiCoCo-V
    /// adds a row for its logits helper) for a shape.
    typealias Preparer = (MethodBenchmarkShape) throws -> [Built]

    /// A preparer of a method with one row.
    static func one(_ build: @escaping (MethodBenchmarkShape) throws -> Built) -> Preparer { { [try build($0)] } }

    /// Builds the call(s) for `method`.
    public static func prepare(method: String, shape: MethodBenchmarkShape, seed: UInt64 = 1) throws -> [PreparedMethodCall] {
        try shape.validate()
        guard let preparer = MethodCatalog.entry(named: method)?.scoring else {
            throw CompressionError.invalidParameter("no scoring benchmark for method '\(method)' (known: \(methods.joined(separator: ", ")))")
        }
        let built = try preparer(shape)
        return try built.map { label, note, body in
            // Dry run: builds every input (sizes of later stages follow from earlier ones).
            let inputs = MethodBenchmarkInputs(shape: shape, seed: seed)
            _ = try body(inputs)
            inputs.frozen = true
            return PreparedMethodCall(label: label, note: note) {
                let outcome = try body(inputs)
                if inputs.generatedWhileFrozen {
                    throw CompressionError.invalidParameter("inputs were generated inside the timed call (sizes changed between runs)")
                }
                return outcome
            }
        }
    }

    /// Prepares and times `method`; failures become a row with the error and no number.
    public static func measure(method: String, shape: MethodBenchmarkShape, warmups: Int = 2, repeats: Int = 5,
                               seed: UInt64 = 1) -> [MethodScoringMeasurement] {
        let calls: [PreparedMethodCall]
        do {
            calls = try prepare(method: method, shape: shape, seed: seed)
        } catch {
            return [MethodScoringMeasurement(label: method, visualTokens: shape.visualTokens, kept: nil, milliseconds: [],
                                             note: "", error: "\(error)")]
        }
        return calls.map { time($0, visualTokens: shape.visualTokens, warmups: warmups, repeats: repeats) }
    }

    static func time(_ prepared: PreparedMethodCall, visualTokens: Int, warmups: Int, repeats: Int) -> MethodScoringMeasurement {
        do {
            var outcome = MethodBenchmarkOutcome(kept: 0)
            for _ in 0..<max(0, warmups) { outcome = try prepared.call() }
            var times: [Double] = []
            for _ in 0..<max(1, repeats) {
                let start = DispatchTime.now().uptimeNanoseconds
                outcome = try prepared.call()
                times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
            }
            let note = [prepared.note, outcome.noOpReason.map { "no-op: \($0)" }].compactMap { $0 }.filter { !$0.isEmpty }
            return MethodScoringMeasurement(label: prepared.label, visualTokens: visualTokens, kept: outcome.kept,
                                            milliseconds: times.sorted(), note: note.joined(separator: "; "), error: nil)
        } catch {
            return MethodScoringMeasurement(label: prepared.label, visualTokens: visualTokens, kept: nil, milliseconds: [],
                                            note: prepared.note, error: "\(error)")
        }
    }

    // MARK: - LLM-side methods

    typealias Built = (String, String, (MethodBenchmarkInputs) throws -> MethodBenchmarkOutcome)

    static func plainNote(_ s: MethodBenchmarkShape) -> String {
        s.partitions == 5 ? "plain path on \(s.visualTokens) tokens (no NeXT path)" : ""
    }

    static func joined(_ parts: String...) -> String { parts.filter { !$0.isEmpty }.joined(separator: "; ") }

    static func dart(_ s: MethodBenchmarkShape) throws -> Built {
        let next = s.partitions == 5
        // NeXT path as the conformer: every non-text token counts as an image token.
        let layout = next ? try TokenLayout(imageStart: s.systemTokens, imageCount: s.sequenceLength - s.textTokens,
                                            totalCount: s.sequenceLength) : try s.layout()
        let method = try DART(.init(rule: next ? .nextRetain(320) : .truncation(128)))
        let note = next ? "NeXT path: retain 320, N = n − text_length" : "M = 128 (keeps 4 + 8·⌊M/8⌋)"
        return ("dart", note, { x in
            let r = try method.select(normalizedHidden: x.uniform("hidden", [s.sequenceLength, s.width]),
                                      keys: x.uniform("keys", [s.sequenceLength, s.width]), layout: layout)
            return MethodBenchmarkOutcome(r.compression)
        })
    }

    static func fastV(_ s: MethodBenchmarkShape) throws -> Built {
        let layout = try s.layout()
        let method = try FastV()
        return ("fastv", joined("R = 50 %", plainNote(s)), { x in
            let a = x.lastRowAttention("last", s)
            return MethodBenchmarkOutcome(try method.select(lastRowAttention: a, layout: layout).compression)
        })
    }

    static func baseline(_ s: MethodBenchmarkShape, name: String) throws -> Built {
        let layout = try s.layout()
        let note = joined("128 tokens", plainNote(s))
        switch name {
        case "random":
            let m = try RandomPruning()
            return (name, note, { _ in MethodBenchmarkOutcome(try m.select(layout: layout)) })
        case "a-score":
            let m = try AttentionScorePruning()
            return (name, note, { x in MethodBenchmarkOutcome(try m.select(lastRowAttention: x.lastRowAttention("last", s), layout: layout)) })
        case "k-norm":
            let m = try NormPruning(.keys)
            return (name, note, { x in MethodBenchmarkOutcome(try m.select(x.uniform("keys", [s.sequenceLength, s.width]), layout: layout)) })
        default:
            let m = try NormPruning(.values)
            return (name, note, { x in MethodBenchmarkOutcome(try m.select(x.uniform("values", [s.sequenceLength, s.width]), layout: layout)) })
        }
    }

    static func sparseVLM(_ s: MethodBenchmarkShape) throws -> Built {
        let parameters = SparseVLM.Parameters()
        try parameters.validate()
        let original = try s.layout()
        let note = joined("192 schedule \(parameters.schedule.map(String.init).joined(separator: "/")) at layers 2/6/15, raters + 3 steps",
                          s.partitions == 5 ? "plain path, LLaVA-1.5 schedule (no NeXT schedule published)" : "")
        return ("sparsevlm", note, { x in
            let raters = try SparseVLM.selectRaters(embeddings: x.uniform("embeds", [s.sequenceLength, s.width]), layout: original)
            var hidden = x.uniform("hidden", [s.sequenceLength, s.width])
            var visual = s.visualTokens
            for layer in parameters.sparseLayers {
                let layout = try TokenLayout(imageStart: s.systemTokens, imageCount: visual,
                                             totalCount: s.systemTokens + visual + s.textTokens)
                let attention = x.attention("text-rows-\(layer)-\(visual)", heads: s.heads,
                                            queries: Array(layout.textRange), keys: layout.totalCount)
                let step = try SparseVLM.sparsify(layer: layer, hidden: hidden, attention: attention, layout: layout,
                                                  raters: raters, parameters: parameters)
                hidden = step.hidden
                visual = step.visualCount
            }
            return MethodBenchmarkOutcome(kept: visual)
        })
    }

    static func pDrop(_ s: MethodBenchmarkShape) throws -> Built {
        let method = try PDrop()
        let layout = try PDrop.Layout(imageStart: s.systemTokens, promptLength: s.systemTokens + s.textTokens,
                                      originalImageCount: s.visualTokens)
        let rope = try RotaryEmbedding(headDim: s.headDim, theta: 10_000)
        let note = joined("3 stages (layers 8/16/24, λ = 0.5), incl. the ranking layer's RMSNorm + q/k projections \(s.width)×\(s.width) + RoPE",
                          plainNote(s))
        return ("pdrop", note, { x in
            let scale = 1 / Float(s.width).squareRoot()
            let weights = PDrop.LayerWeights(
                inputNormWeight: x.constant("norm", [s.width], 1), rmsNormEps: 1e-5,
                qProj: x.uniform("q_proj", [s.width, s.width], scale: scale),
                kProj: x.uniform("k_proj", [s.width, s.width], scale: scale), heads: s.heads, rope: rope)
            var hidden = x.uniform("hidden", [s.sequenceLength, s.width])
            var positions = Array(0..<s.sequenceLength)
            var visual = s.visualTokens
            for b in method.parameters.layerList.indices {
                let r = try method.stage(b, hidden: hidden, positionIds: positions, layout: layout, weights: weights)
                hidden = r.hidden
                positions = r.positionIds
                visual = r.newImageCount
            }
            return MethodBenchmarkOutcome(kept: visual)
        })
    }

    // MARK: - Vision-side methods

    static func visionNote(_ s: MethodBenchmarkShape, _ path: String) -> String {
        joined(path, "ViT signals d = \(s.width), \(s.heads) heads")
    }

    static func fasterVLM(_ s: MethodBenchmarkShape) throws -> Built {
        let (p, n, side) = try s.vision()
        // T = 144 per 576-token image (75 % reduction), scaled with the partition size.
        let parameters = FasterVLM.Parameters(visualTokenNum: max(1, n / 4))
        if p == 1 {
            return ("fastervlm", visionNote(s, "T = \(parameters.visualTokenNum)"), { x in
                let r = try FasterVLM.prune(clsAttention: x.clsAttention("cls-0", heads: s.heads, patches: n),
                                            features: x.patches("feat-0", side: side, width: s.width, cls: false),
                                            parameters: parameters)
                return MethodBenchmarkOutcome(r.compression)
            })
        }
        return ("fastervlm", visionNote(s, "AnyRes path, base + 2×2 crops, T = \(parameters.visualTokenNum) each"), { x in
            let r = try FasterVLM.pruneAnyRes(
                clsAttention: (0..<p).map { x.clsAttention("cls-\($0)", heads: s.heads, patches: n) },
                features: (0..<p).map { x.patches("feat-\($0)", side: side, width: s.width, cls: false) },
                grid: .init(columns: 2, rows: 2), parameters: parameters)
            return MethodBenchmarkOutcome(r.compression)
        })
    }

    static func hiRED(_ s: MethodBenchmarkShape) throws -> Built {
        let (p, n, _) = try s.vision()
        let parameters = HiRED.Parameters()
        if p == 1 {
            return ("hired", visionNote(s, "single image, budget rate 0.2"), { x in
                MethodBenchmarkOutcome(try HiRED.select(bottomAttention: x.clsAttention("bottom-0", heads: s.heads, patches: n),
                                                        parameters: parameters).compression)
            })
        }
        return ("hired", visionNote(s, "NeXT path, base + 2×2 crops, budget rate 0.2, α = 0.5"), { x in
            let r = try HiRED.select(topAttention: x.clsAttention("top", heads: s.heads, patches: n),
                                     bottomAttention: (0..<p).map { x.clsAttention("bottom-\($0)", heads: s.heads, patches: n) },
                                     grid: .init(columns: 2, rows: 2), parameters: parameters)
            return MethodBenchmarkOutcome(r.compression)
        })
    }

    static func visionZip(_ s: MethodBenchmarkShape) throws -> Built {
        let (p, n, side) = try s.vision()
        let parameters = VisionZip.Parameters()
        func image(_ x: MethodBenchmarkInputs, _ i: Int) -> (Tensor, Tensor, Tensor) {
            (x.clsAttention("cls-\(i)", heads: s.heads, patches: n),
             x.patches("hidden-\(i)", side: side, width: s.width, cls: true),
             x.patches("metric-\(i)", side: side, width: s.width, cls: true))
        }
        if p == 1 {
            return ("visionzip", visionNote(s, "54 dominant + 10 contextual"), { x in
                let (a, h, m) = image(x, 0)
                return MethodBenchmarkOutcome(try VisionZip.compress(clsAttention: a, hidden: h, metric: m, parameters: parameters).compression)
            })
        }
        return ("visionzip", visionNote(s, "AnyRes path, base + 2×2 crops, 54 + 10 each"), { x in
            let parts = (0..<p).map { image(x, $0) }
            let r = try VisionZip.compressAnyRes(clsAttention: parts.map(\.0), hidden: parts.map(\.1), metric: parts.map(\.2),
                                                 grid: .init(columns: 2, rows: 2), parameters: parameters)
            return MethodBenchmarkOutcome(r.compression)
        })
    }

    static func globalCom2(_ s: MethodBenchmarkShape) throws -> Built {
        let (p, n, side) = try s.vision()
        let method = try GlobalCom2()
        let grid = p == 1
            ? GlobalCom2.Grid(numPatchWidth: 1, numPatchHeight: 1, patchesPerSide: side, originalWidth: 336, originalHeight: 336)
            : GlobalCom2.Grid(numPatchWidth: 2, numPatchHeight: 2, patchesPerSide: side, originalWidth: 672, originalHeight: 672)
        let note = p == 1 ? "single image: GlobalCom² is NeXT-only" : "NeXT path, base + 2×2 crops of a 672² image, r = 0.25; kept incl. newline tokens"
        return ("globalcom2", visionNote(s, note), { x in
            let r = try method.compress(clsLogits: x.gaussian("cls-logits", [p, n], scale: 2),
                                        features: x.uniform("features", [p * n, s.width]),
                                        imageNewline: x.uniform("newline", [s.width]).values, grid: grid)
            return MethodBenchmarkOutcome(r.compression)
        })
    }

    static func pruMerge(_ s: MethodBenchmarkShape, plus: Bool) throws -> Built {
        let n = s.visualTokens
        let label = plus ? "prumerge_plus" : "prumerge"
        let note = joined("one \(s.width)-wide [CLS] query over the keys (the API's single head); ~5 % planted outliers",
                          s.partitions == 5 ? "plain path on \(n) tokens (no NeXT path in the API)" : "")
        let base = try PruMerge(), extended = try PruMergePlus()
        return (label, note, { x in
            let (query, keys) = x.pruMergeQueryKeys(tokens: n, width: s.width)
            let features = x.uniform("features", [n, s.width])
            let r = plus ? try extended.compress(clsQuery: query, keys: keys, features: features)
                         : try base.compress(clsQuery: query, keys: keys, features: features)
            return MethodBenchmarkOutcome(r.compression)
        })
    }

    /// FiCoCo-V's merge layers 12…22 (the ones that reach LLaVA's `[-2]` features), per ViT pass.
    static func fiCoCoV(_ s: MethodBenchmarkShape) throws -> [Built] {
        let (p, n, side) = try s.vision()
        // r = 42 of 576 patches per layer, scaled for other partition sizes; state = the patch grid.
        let windows = (side / 2) * (side / 2)
        let parameters = FiCoCoV.Parameters(r: max(1, 42 * n / 576), penaltyCount: windows, stateSize: n)
        let method = try FiCoCoV(parameters)
        let layers = 11
        let path = p == 1 ? "" : "no NeXT path: run once per \(n + 1)-token ViT pass (×\(p), crops go through the ViT separately)"
        let main: Built = ("ficoco_v", visionNote(s, joined("\(layers) layers × r = \(parameters.r)", path,
                                                            "head-mean logits prepared outside (attention signal)")), { x in
            var total = 0
            for part in 0..<p {
                var state = FiCoCoV.State(size: n)
                var hidden = x.patches("hidden-\(part)", side: side, width: s.width, cls: true)
                for layer in 0..<layers {
                    let logits = x.logits("logits-\(part)-\(layer)-\(hidden.rows)", tokens: hidden.rows)
                    hidden = try method.layer(hidden: hidden, logits: logits, state: &state).output
                }
                total += hidden.rows - 1
            }
            return MethodBenchmarkOutcome(kept: total)
        })
        // The package's helper that derives those logits from q/k: first merge layer only.
        let helper: Built = ("ficoco_v logits", visionNote(s, "FiCoCoV.headMeanLogits from q/k [\(s.heads), \(n + 1), \(s.headDim)], first merge layer of each of the \(p) pass(es) only; kept = logits rows"), { x in
            var rows = 0
            for part in 0..<p {
                let shape = [s.heads, n + 1, s.headDim]
                rows += try FiCoCoV.headMeanLogits(queries: x.uniform("q-\(part)", shape), keys: x.uniform("k-\(part)", shape)).rows
            }
            return MethodBenchmarkOutcome(kept: rows)
        })
        return [main, helper]
    }

    /// FitPrune's rule at one layer: head-max cross·self scores over the full `[heads, n, n]`
    /// attention and the sort (the shipped 60 % table's first positive count, 14). It runs at
    /// every layer with a positive count; each call costs about this, scaled by (n/n₀)².
    static func fitPrune(_ s: MethodBenchmarkShape) throws -> Built {
        let count = try FitPrune.shippedScheme(reductionPercent: 60).first { $0 > 0 } ?? 1
        let n = s.sequenceLength
        return ("fitprune", joined("one layer's rule (delete \(count)), full \(s.heads)-head attention of \(n) rows", plainNote(s)), { x in
            let attention = x.attention("full", heads: s.heads, queries: Array(0..<n), keys: n)
            let r = try FitPrune.prune(attention: attention, positionIds: Array(0..<n), imageCount: s.visualTokens,
                                       deleteCount: count, systemLength: s.systemTokens)
            return MethodBenchmarkOutcome(r.compression)
        })
    }

    static func mustDrop(_ s: MethodBenchmarkShape) throws -> Built {
        let (p, _, side) = try s.vision()
        let parameters = MustDrop.Parameters()
        let note = visionNote(s, joined(p == 1 ? "" : "window merge over the 5-crop batch",
                                        "3×3 window merge + key set + filters at LLM layers 2/6/10/14 (LLM attention \(s.heads) heads, text rows)"))
        return ("mustdrop", note, { x in
            let crops = (0..<p).map { x.patches("vit-\($0)", side: side, width: s.width, cls: true) }
            let merged = try MustDrop.windowMerge(crops: crops, parameters: parameters).crops
            var keySet: [Int] = []
            var visual = 0
            for (i, crop) in merged.enumerated() {
                let tokens = crop.tokens.rows - 1
                let cls = x.clsAttention("cls-\(i)-\(tokens)", heads: s.heads, patches: tokens)
                keySet += try MustDrop.keySet(clsAttention: cls, parameters: parameters).map { $0 + visual }
                visual += tokens
            }
            var outcome = MethodBenchmarkOutcome(kept: visual)
            for layer in parameters.pruningLayers {
                let layout = try TokenLayout(imageStart: s.systemTokens, imageCount: visual,
                                             totalCount: s.systemTokens + visual + s.textTokens)
                let attention = x.attention("text-rows-\(layer)-\(visual)", heads: s.heads,
                                            queries: Array(layout.textRange), keys: layout.totalCount)
                let f = try MustDrop.dualAttentionFilter(attention: attention, layout: layout, keySet: keySet, parameters: parameters)
                keySet = f.keySetOut
                visual = f.visualCount
                outcome = MethodBenchmarkOutcome(kept: visual)
            }
            return outcome
        })
    }

    static func pooling(_ s: MethodBenchmarkShape) throws -> Built {
        let n = s.visualTokens
        // Most square grid with rows·cols = n (24×24 for 576; 48×60 for 2880).
        var rows = Int(Double(n).squareRoot())
        while n % rows != 0 { rows -= 1 }
        let cols = n / rows
        let method = try SpatialPooling()
        let note = joined("2×2 average", s.partitions == 5 ? "plain path on one \(rows)×\(cols) grid (no NeXT path)" : "")
        return ("pooling", note, { x in
            MethodBenchmarkOutcome(try method.pool(x.uniform("features", [n, s.width]), rows: rows, cols: cols).compression)
        })
    }
}

/// Seeded synthetic signals, built once per key and reused by every timed run.
///
/// Values are uniform in `[-scale, scale)` unless a method's behaviour depends on their
/// structure: attention rows share a per-key importance across heads (so some tokens matter and
/// filters and top-k see a realistic spread), ViT patches contain similar 3×3 windows (so
/// MustDrop merges some), and PruMerge's keys contain planted [CLS] outliers.
final class MethodBenchmarkInputs {
    let shape: MethodBenchmarkShape
    let seed: UInt64
    private var cache: [String: Tensor] = [:]
    private var pairs: [String: ([Float], Tensor)] = [:]
    /// Set after the dry run; a miss afterwards means generation happened inside timing.
    var frozen = false
    private(set) var generatedWhileFrozen = false

    init(shape: MethodBenchmarkShape, seed: UInt64) {
        self.shape = shape
        self.seed = seed
    }

    private func cached(_ key: String, _ make: (inout SplitMix64) -> Tensor) -> Tensor {
        if let t = cache[key] { return t }
        if frozen { generatedWhileFrozen = true }
        var random = SplitMix64(seed: seed &+ UInt64(truncatingIfNeeded: methodBenchmarkHash(key)))
        let t = make(&random)
        cache[key] = t
        return t
    }

    func uniform(_ key: String, _ dims: [Int], scale: Float = 1) -> Tensor {
        cached("u:\(key):\(dims)") { random in
            var t = Tensor(zeros: dims)
            t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = (2 * random.uniform() - 1) * scale } }
            return t
        }
    }

    func gaussian(_ key: String, _ dims: [Int], scale: Float = 1) -> Tensor {
        cached("g:\(key):\(dims)") { random in
            var t = Tensor(zeros: dims)
            t.withUnsafeMutableBufferPointer { p in for i in 0..<p.count { p[i] = random.gaussian() * scale } }
            return t
        }
    }

    func constant(_ key: String, _ dims: [Int], _ value: Float) -> Tensor {
        cached("c:\(key):\(dims)") { _ in Tensor(shape: dims, repeating: value) }
    }

    /// `[heads, queries.count, keys]` causal softmax rows: query at position q sees keys 0...q.
    func attention(_ key: String, heads: Int, queries: [Int], keys: Int) -> Tensor {
        cached("a:\(key):\(heads)x\(queries.count)x\(keys)") { random in
            let importance = (0..<keys).map { _ in random.gaussian() * 1.5 }
            var t = Tensor(zeros: [heads, queries.count, keys])
            t.withUnsafeMutableBufferPointer { p in
                for h in 0..<heads {
                    for (r, q) in queries.enumerated() {
                        let base = (h * queries.count + r) * keys
                        let visible = min(keys, q + 1)
                        for j in 0..<visible { p[base + j] = importance[j] + (random.uniform() - 0.5) }
                        softmaxInPlace(p.baseAddress! + base, count: visible)
                    }
                }
            }
            return t
        }
    }

    /// `[heads, n]` attention of the last prompt token (FastV, A-Score).
    func lastRowAttention(_ key: String, _ s: MethodBenchmarkShape) -> Tensor {
        let n = s.sequenceLength
        let a = attention(key, heads: s.heads, queries: [n - 1], keys: n)
        return (try? a.reshaped([s.heads, n])) ?? a
    }

    /// `[heads, 1 + patches]` [CLS] row of a ViT attention map.
    func clsAttention(_ key: String, heads: Int, patches: Int) -> Tensor {
        let a = attention(key, heads: heads, queries: [patches], keys: patches + 1)
        return (try? a.reshaped([heads, patches + 1])) ?? a
    }

    /// `[tokens, tokens]` head-mean attention logits (FiCoCo-V): key importance + row noise.
    func logits(_ key: String, tokens: Int) -> Tensor {
        cached("l:\(key):\(tokens)") { random in
            let importance = (0..<tokens).map { _ in random.gaussian() * 1.5 }
            var t = Tensor(zeros: [tokens, tokens])
            t.withUnsafeMutableBufferPointer { p in
                for i in 0..<tokens { for j in 0..<tokens { p[i * tokens + j] = importance[j] + random.uniform() - 0.5 } }
            }
            return t
        }
    }

    /// ViT patch features `[(cls ? 1 : 0) + side², width]`: ~40 % of the 3×3 windows hold near-copies
    /// of one vector (cosine ≈ 0.9), the rest is independent noise.
    func patches(_ key: String, side: Int, width: Int, cls: Bool) -> Tensor {
        cached("p:\(key):\(side):\(width):\(cls)") { random in
            let offset = cls ? 1 : 0
            var t = Tensor(zeros: [offset + side * side, width])
            t.withUnsafeMutableBufferPointer { p in
                for i in 0..<p.count { p[i] = 2 * random.uniform() - 1 }
                for wy in 0..<(side / 3) {
                    for wx in 0..<(side / 3) where random.uniform() < 0.4 {
                        let centre = (0..<width).map { _ in 2 * random.uniform() - 1 }
                        for dy in 0..<3 {
                            for dx in 0..<3 {
                                let row = offset + (wy * 3 + dy) * side + wx * 3 + dx
                                for c in 0..<width { p[row * width + c] = centre[c] + 0.3 * (2 * random.uniform() - 1) }
                            }
                        }
                    }
                }
            }
            return t
        }
    }

    /// PruMerge's [CLS] query and `[1 + tokens, width]` keys; ~5 % of the patch keys lean toward
    /// the query by ≈ 4 logits, the heavy tail real [CLS] attention has.
    func pruMergeQueryKeys(tokens: Int, width: Int) -> ([Float], Tensor) {
        let key = "prumerge:\(tokens):\(width)"
        if let pair = pairs[key] { return pair }
        if frozen { generatedWhileFrozen = true }
        var random = SplitMix64(seed: seed &+ UInt64(truncatingIfNeeded: methodBenchmarkHash(key)))
        let query = (0..<width).map { _ in 2 * random.uniform() - 1 }
        let lean = 12 / Float(width).squareRoot()
        var keys = Tensor(zeros: [tokens + 1, width])
        keys.withUnsafeMutableBufferPointer { p in
            for i in 0..<p.count { p[i] = 2 * random.uniform() - 1 }
            for row in 1...tokens where random.uniform() < 0.05 {
                for c in 0..<width { p[row * width + c] += lean * query[c] }
            }
        }
        pairs[key] = (query, keys)
        return (query, keys)
    }
}

/// FNV-1a of the UTF-8 bytes: stable across runs (Swift's `hashValue` is seeded per process).
private func methodBenchmarkHash(_ key: String) -> UInt64 {
    var h: UInt64 = 0xCBF2_9CE4_8422_2325
    for b in key.utf8 { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
    return h
}
