import Foundation
import Tensors

/// DART: keep the visual tokens that duplicate a few *pivot* tokens the least.
///
/// Criterion: pivots are the visual and text tokens with the largest L1 norm of their layer K−1
/// keys (after RoPE, heads concatenated); a visual token's duplication is its cosine similarity
/// to a pivot in the final-RMSNorm'd hidden state. Strategy: pivot by pivot, greedily keep the
/// `tokenTopK` least similar tokens still in the pool. Acts once, at the input of LLM layer K;
/// pruned tokens leave the sequence and kept tokens keep their original positions.
/// Needs no attention map (FlashAttention-compatible).
public struct DART: Sendable {
    public static let info = MethodInfo(
        name: "dart", displayName: "DART", domain: .imageVLM, families: [.prune], placement: .llmLayer(2),
        signals: [.normalizedHiddenStates, .keys, .tokenLayout], needsAttentionProbabilities: false,
        paper: "Stop Looking for Important Tokens in Multimodal Language Models: Duplication Matters More (EMNLP 2025, arXiv 2502.11494)",
        repository: "ZichenWen1/DART",
        summary: "Greedy least-duplicated visual tokens w.r.t. key-L1-norm pivots at LLM layer 2; original positions kept")

    /// How `TOKEN_TOPK` (picks per pivot) is derived; the three branches of the authors' code.
    public enum PickRule: Sendable, Equatable {
        /// `max_num_trunction` M given (LLaVA-1.5 scripts): `TOKEN_TOPK = ceil(M // P)` = ⌊M/P⌋.
        case truncation(Int)
        /// M absent: `ceil((N·(1−ratio)) // P)` with Python *float* floor division; `ratio` is the
        /// fraction of visual tokens DROPPED.
        case reductionRatio(Double)
        /// LLaVA-NeXT path (`text_length` set): `int(min(retain, N − P_img) // P)`.
        case nextRetain(Int)
    }

    public struct Parameters: Sendable, Equatable {
        /// LLM layer at whose input pruning happens (signals come from layer K−1).
        public var layer: Int = 2
        public var pivotImageTokens: Int = 4
        public var pivotTextTokens: Int = 4
        /// Paper main setting: M = 128 (effectively 132 visual tokens, see `keptVisualCount`).
        public var rule: PickRule = .truncation(128)

        public init(layer: Int = 2, pivotImageTokens: Int = 4, pivotTextTokens: Int = 4, rule: PickRule = .truncation(128)) {
            self.layer = layer
            self.pivotImageTokens = pivotImageTokens
            self.pivotTextTokens = pivotTextTokens
            self.rule = rule
        }

        public func validate() throws {
            guard layer >= 1 else { throw CompressionError.invalidParameter("DART layer K = \(layer) must be ≥ 1 (signals come from layer K−1)") }
            guard pivotImageTokens >= 1 else { throw CompressionError.invalidParameter("DART pivotImageTokens = \(pivotImageTokens) must be ≥ 1") }
            guard pivotTextTokens >= 0 else { throw CompressionError.invalidParameter("DART pivotTextTokens = \(pivotTextTokens) must be ≥ 0") }
            switch rule {
            case .truncation(let m):
                guard m >= 0 else { throw CompressionError.invalidBudget("DART max_num_truncation M = \(m) is negative") }
            case .reductionRatio(let r):
                guard r.isFinite, r >= 0, r <= 1 else { throw CompressionError.invalidBudget("DART reduction ratio \(r) must be in [0, 1]") }
            case .nextRetain(let k):
                guard k >= 0 else { throw CompressionError.invalidBudget("DART NeXT retain count \(k) is negative") }
            }
        }

        /// Picks per pivot (`TOKEN_TOPK`) for `imageCount` visual tokens, exactly as the code computes it.
        public func tokenTopK(imageCount n: Int) throws -> Int {
            try validate()
            let pivots = pivotImageTokens + pivotTextTokens
            switch rule {
            case .truncation(let m):
                // `math.ceil(M // P)`: integer floor division first, so the ceil never rounds up.
                return m / pivots
            case .reductionRatio(let r):
                // `math.ceil((N*(1-ratio)) // P)`: Python float `//` is already integral, ceil is a no-op.
                return Int(DARTPython.floorDivide(Double(n) * (1.0 - r), Double(pivots)).rounded(.up))
            case .nextRetain(let retain):
                // `int(min(retain, N - P_img) // P)`; a negative value makes the reference's topk fail.
                let v = DARTPython.floorDivideInt(min(retain, n - pivotImageTokens), pivots)
                guard v >= 0 else {
                    throw CompressionError.unsupportedSetting("DART NeXT path: N − P_img = \(n - pivotImageTokens) < 0 gives TOKEN_TOPK \(v)")
                }
                return v
            }
        }

        /// Visual tokens kept: `P_img + (P_img+P_txt)·TOKEN_TOPK`. Quirk reproduced: with M given
        /// this is 4 + 8·⌊M/8⌋ (M = 128 keeps 132, 192 keeps 196, 64 keeps 68), not M.
        public func keptVisualCount(imageCount n: Int) throws -> Int {
            pivotImageTokens + (pivotImageTokens + pivotTextTokens) * (try tokenTopK(imageCount: n))
        }
    }

    public struct Result: Sendable {
        /// Whole-sequence kept indices (also the new position ids: original positions, with gaps).
        public var compression: CompressionResult
        public var tokenTopK: Int
        /// Image pivots, whole-sequence indices, descending key L1 norm (topk order).
        public var imagePivots: [Int]
        /// Text pivots, whole-sequence indices, descending key L1 norm.
        public var textPivots: [Int]
        /// The order in which pivots were processed.
        public var pivotOrder: [Int]
        public var positionIds: [Int] { compression.kept }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    /// Runs the selection.
    /// - Parameters:
    ///   - normalizedHidden: `[n, d]` hidden states entering layer K, passed through the model's
    ///     final RMSNorm (the code normalises with `self.norm`; cosine depends on its γ).
    ///   - keys: `[n, heads·headDim]` layer K−1 keys after RoPE (only their L1 norms are used;
    ///     RoPE does not preserve L1 norms, so post-RoPE matters).
    ///   - layout: system / image / text spans. For the NeXT path pass `imageCount = n − text_length`.
    ///   - pivotOrder: optional explicit processing order (a permutation of the pivots). Without it
    ///     the order is CPython 3.11's iteration order of `set(image_pivots + text_pivots)`.
    public func select(normalizedHidden: Tensor, keys: Tensor, layout: TokenLayout, pivotOrder: [Int]? = nil) throws -> Result {
        let p = parameters
        let n = layout.totalCount
        guard normalizedHidden.rank == 2, normalizedHidden.rows == n else {
            throw CompressionError.shapeMismatch("DART normalizedHidden \(normalizedHidden.shape) for \(n) tokens")
        }
        guard keys.rank == 2, keys.rows == n else {
            throw CompressionError.shapeMismatch("DART keys \(keys.shape) for \(n) tokens")
        }
        let imageCount = layout.imageCount
        let topK = try p.tokenTopK(imageCount: imageCount)
        let requested = p.pivotImageTokens + (p.pivotImageTokens + p.pivotTextTokens) * topK
        if requested >= imageCount {
            return Result(compression: .noOp(tokenCount: n, touched: imageCount, requested: requested, policy: .keepOriginal,
                                             reason: "DART keeps \(requested) ≥ \(imageCount) visual tokens"),
                          tokenTopK: topK, imagePivots: [], textPivots: [], pivotOrder: [])
        }
        guard layout.textRange.count >= p.pivotTextTokens else {
            throw CompressionError.unsupportedSetting("DART needs \(p.pivotTextTokens) text tokens after the image for pivots, found \(layout.textRange.count) (the reference topk fails)")
        }

        // Pivots: largest L1 key norm (summed in float64; margins in the cases are ≫ float32 error).
        let norms: [Double] = (0..<n).map { i in keys.row(i).reduce(0.0) { $0 + Double(abs($1)) } }
        let imagePivots = Selection.topK(Array(norms[layout.imageRange]), p.pivotImageTokens).map { $0 + layout.imageStart }
        let textPivots = Selection.topK(Array(norms[layout.textRange]), p.pivotTextTokens).map { $0 + layout.textRange.lowerBound }

        let order: [Int]
        if let pivotOrder {
            guard pivotOrder.count == imagePivots.count + textPivots.count,
                  Set(pivotOrder) == Set(imagePivots + textPivots) else {
                throw CompressionError.invalidParameter("DART pivot order \(pivotOrder) is not a permutation of the pivots \(imagePivots + textPivots)")
            }
            order = pivotOrder
        } else {
            order = DARTPython.setIterationOrder(imagePivots + textPivots)
        }

        // Greedy picks. The reference iterates `list(pool)` in CPython set order; that order only
        // breaks exact ties, which we break toward the lower index instead.
        let imagePivotSet = Set(imagePivots)
        var pool = layout.imageRange.filter { !imagePivotSet.contains($0) }
        var chosen = Set(imagePivots)
        try normalizedHidden.withUnsafeBufferPointer { h in
            let d = normalizedHidden.columns
            func rowPointer(_ i: Int) -> UnsafeBufferPointer<Float> { UnsafeBufferPointer(rebasing: h[(i * d)..<((i + 1) * d)]) }
            for pivot in order {
                guard pool.count >= topK else {
                    throw CompressionError.unsupportedSetting("DART pool exhausted: \(pool.count) tokens left for TOKEN_TOPK \(topK)")
                }
                let similarity = pool.map { L2Norm.cosine(rowPointer(pivot), rowPointer($0), eps: 1e-8) }
                let picks = Selection.topK(similarity, topK, largest: false).map { pool[$0] }
                chosen.formUnion(picks)
                let pickSet = Set(picks)
                pool.removeAll { pickSet.contains($0) }
            }
        }
        // Text pivots were only anchors; every text token is kept anyway.
        let visual = chosen.filter { layout.imageRange.contains($0) }
        let kept = layout.keptSequence(visual: Array(visual))
        let compression = CompressionResult(kept: kept, requestedCount: requested, achievedCount: visual.count,
                                            positionPolicy: .keepOriginal)
        return Result(compression: compression, tokenTopK: topK, imagePivots: imagePivots,
                      textPivots: textPivots, pivotOrder: order)
    }

    /// Visual tokens entering each of `layers` LLM layers.
    public func schedule(layers: Int, imageCount: Int) throws -> TokenSchedule {
        let kept = min(imageCount, try parameters.keptVisualCount(imageCount: imageCount))
        return .singleCut(layers: layers, at: parameters.layer, before: imageCount, after: kept)
    }
}

/// The bits of CPython semantics DART's counts and pivot order depend on.
enum DARTPython {
    /// Python `float // float` (`float_floor_div`: fmod-based, then floored and snapped).
    static func floorDivide(_ a: Double, _ b: Double) -> Double {
        var mod = fmod(a, b)
        var div = (a - mod) / b
        if mod != 0, (b < 0) != (mod < 0) { mod += b; div -= 1 }
        if div != 0 {
            var floored = div.rounded(.down)
            if div - floored > 0.5 { floored += 1 }
            return floored
        }
        return (a / b).sign == .minus ? -0.0 : 0.0
    }

    /// Python `int // int` (floors toward −∞).
    static func floorDivideInt(_ a: Int, _ b: Int) -> Int {
        let q = a / b
        return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q
    }

    /// Iteration order of CPython 3.11's `set(items)` for non-negative ints below 2⁶¹−1 (hash =
    /// value; callers pass token indices, never negative). Emulates `set_add_entry` (linear probing over LINEAR_PROBES = 9 following slots
    /// while they fit the table, then perturbed probing `i = 5i + 1 + perturb`, perturb >>= 5),
    /// the resize when `fill·5 ≥ mask·3` to the smallest power of two above `used·4`, and the
    /// re-insertion of the old table in slot order (`set_insert_clean`). Checked against CPython
    /// 3.11.7 on 200 000 random lists (with duplicates) and on the three DART cases.
    static func setIterationOrder(_ items: [Int]) -> [Int] {
        let linearProbes = 9, perturbShift = 5
        var table = [Int?](repeating: nil, count: 8)
        var fill = 0

        func probeSlots(_ key: Int, mask: Int, visit: (Int) -> Bool) {
            var perturb = UInt(key)
            var i = key & mask
            while true {
                if visit(i) { return }
                if i + linearProbes <= mask {
                    for j in 1...linearProbes where visit(i + j) { return }
                }
                perturb >>= UInt(perturbShift)
                i = (i &* 5 &+ 1 &+ Int(truncatingIfNeeded: perturb)) & mask
            }
        }

        for key in items {
            var mask = table.count - 1
            var slot: Int? = nil, present = false
            probeSlots(key, mask: mask) { s in
                if let k = table[s] { if k == key { present = true; return true }; return false }
                slot = s
                return true
            }
            if present { continue }
            table[slot!] = key
            fill += 1
            if fill * 5 >= mask * 3 {
                let minUsed = fill > 50_000 ? fill * 2 : fill * 4
                var size = 8
                while size <= minUsed { size <<= 1 }
                let old = table
                table = [Int?](repeating: nil, count: size)
                mask = size - 1
                for k in old.compactMap({ $0 }) {
                    probeSlots(k, mask: mask) { s in
                        if table[s] == nil { table[s] = k; return true }
                        return false
                    }
                }
            }
        }
        return table.compactMap { $0 }
    }
}
