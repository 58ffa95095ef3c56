import Tensors

/// HiRED: a fixed visual-token budget, split over the AnyRes partitions by early-layer attention
/// and filled inside each partition by late-layer attention.
///
/// Criterion: the [CLS] row of CLIP attention probabilities, summed over heads, from two layers:
/// layer 0 ("top", where [CLS] attention still follows image content, used for the budget
/// split) and layer 22 ("bottom", the feature layer, used to pick tokens).
/// Strategy: the base (thumbnail) image gets `alpha` of the budget; the rest is shared among
/// the crops in proportion to how many of the thumbnail's most-attended tokens fall into each
/// crop's part of the thumbnail; each partition keeps its top tokens. Acts before the LLM.
public struct HiRED {
    public static let info = MethodInfo(
        name: "hired",
        displayName: "HiRED",
        domain: .imageVLM,
        families: [.prune],
        placement: .beforeProjector,
        signals: [.clsAttention, .hiddenStates, .tokenLayout],
        needsAttentionProbabilities: true,
        paper: "HiRED: Attention-Guided Token Dropping for Efficient Inference of High-Resolution Vision-Language Models (AAAI 2025, arXiv 2408.10945)",
        repository: "hasanar1f/HiRED",
        summary: "Splits a fixed token budget over base image and AnyRes crops by layer-0 [CLS] attention, then keeps each partition's top tokens by layer-22 [CLS] attention."
    )

    public struct Parameters: Sendable, Equatable {
        /// Fraction of all P·N visual tokens to keep (scripts' default 0.2).
        public var tokenBudgetRate: Double
        /// Share of the budget for the base image; `1 − alpha` also sets how many thumbnail tokens
        /// are marked to split the crops' share (default 0.5). Unused by the LLaVA-1.5 path.
        public var alpha: Double

        public init(tokenBudgetRate: Double = 0.2, alpha: Double = 0.5) {
            self.tokenBudgetRate = tokenBudgetRate
            self.alpha = alpha
        }

        public func validate() throws {
            guard tokenBudgetRate.isFinite, tokenBudgetRate > 0, tokenBudgetRate <= 1 else {
                throw CompressionError.invalidBudget("HiRED tokenBudgetRate \(tokenBudgetRate) must be in (0, 1]")
            }
            guard alpha.isFinite, alpha >= 0, alpha <= 1 else {
                throw CompressionError.invalidParameter("HiRED alpha \(alpha) must be in [0, 1]")
            }
        }
    }

    /// The LLaVA-NeXT crop grid (crops only; the base image is partition 0).
    public typealias CropGrid = AnyResCropGrid

    /// How the budget was split.
    public struct Budgets: Sendable, Equatable {
        /// `int(P·N·rate)`.
        public let total: Int
        /// Base image: `min(int(total·alpha), N)`.
        public let full: Int
        /// Crops together: `min(total − full, (P−1)·N)`.
        public let sub: Int
        /// Tokens kept per partition (base first); may sum below `total` (truncation).
        public let perPartition: [Int]
        /// Marked thumbnail tokens per raster band feeding each crop (zeros when `sub ≤ 0`).
        public let partitionMarks: [Int]
    }

    public struct Result: Sendable {
        public let budgets: Budgets
        /// Per partition, kept patch indices (0..<N, [CLS] excluded), ascending.
        public let keptPerPartition: [[Int]]
        /// Over the flattened P·N tokens: `kept` = p·N + j, ascending.
        public let compression: CompressionResult
    }

    /// Head sum of the [CLS] row over the last N columns (`attn[:, 0, -N:].sum(heads)`).
    ///
    /// - Parameter clsAttention: `[heads, 1+N]`; column 0 ([CLS]→[CLS]) is ignored.
    public static func scores(clsAttention: Tensor) throws -> [Float] {
        try ClsAttention.patchScores(clsAttention, heads: .sum, method: "HiRED")
    }

    /// LLaVA-1.5 (one image): keep `min(N, int(N·rate))` tokens by late-layer [CLS] attention.
    public static func select(bottomAttention: Tensor, parameters: Parameters = .init()) throws -> Result {
        try parameters.validate()
        let s = try scores(clsAttention: bottomAttention)
        let n = s.count
        let budget = min(n, Int(Double(n) * parameters.tokenBudgetRate))
        let budgets = Budgets(total: budget, full: budget, sub: 0, perPartition: [budget], partitionMarks: [])
        if budget >= n {
            return Result(budgets: budgets, keptPerPartition: [Array(0..<n)],
                          compression: .noOp(tokenCount: n, requested: budget, policy: .notApplicable,
                                             reason: "token budget \(budget) covers all \(n) visual tokens"))
        }
        let kept = Selection.topK(s, budget).sorted()
        return Result(budgets: budgets, keptPerPartition: [kept],
                      compression: CompressionResult(kept: kept, requestedCount: budget, achievedCount: kept.count,
                                                     positionPolicy: .notApplicable))
    }

    /// Splits the budget of a LLaVA-NeXT AnyRes image (base + crops) from the thumbnail's
    /// early-layer [CLS] attention.
    ///
    /// Quirks reproduced (hasanar1f/HiRED `HiRED_sub_img_budgets`):
    /// - **Row bands, not quadrants.** The N-long mark vector of the thumbnail is reshaped to
    ///   `(nph, npw, N/(P−1))` and summed over the last axis, so crop i is credited with the
    ///   marks in the i-th *consecutive raster chunk* of N/(P−1) thumbnail tokens, i.e. a
    ///   horizontal band of rows, not the thumbnail region the crop actually shows.
    /// - **float32 truncation.** `counts / counts.sum()` is an int64 true division, which torch
    ///   computes in float32; `(ratio · B_sub).int()` truncates that float32 product. So a share
    ///   that is exactly an integer can come out one lower, and the crop budgets can sum below
    ///   `B_sub`.
    /// - Budgets use Python `int()` (truncation) on float64 products: `int(P·N·rate)`,
    ///   `int(B_total·alpha)`, `int(N·(1−alpha))`.
    public static func budgets(topAttention: Tensor, grid: CropGrid, parameters: Parameters = .init()) throws -> Budgets {
        try parameters.validate()
        try grid.validate(method: "HiRED")
        let thumbnail = try scores(clsAttention: topAttention)
        let n = thumbnail.count, crops = grid.cropCount, p = 1 + crops
        let total = Int(Double(p * n) * parameters.tokenBudgetRate)
        let full = min(Int(Double(total) * parameters.alpha), n)
        let sub = min(total - full, crops * n)
        guard sub > 0 else {
            return Budgets(total: total, full: full, sub: sub, perPartition: [full] + [Int](repeating: 0, count: crops),
                           partitionMarks: [Int](repeating: 0, count: crops))
        }
        guard n % crops == 0 else {
            throw CompressionError.unsupportedSetting("HiRED: N = \(n) thumbnail tokens do not split into \(crops) equal raster bands (the reference reshape fails)")
        }
        let markCount = Int(Double(n) * (1.0 - parameters.alpha))
        guard markCount > 0 else {
            throw CompressionError.unsupportedSetting("HiRED: alpha \(parameters.alpha) marks no thumbnail token while the crops have a budget of \(sub) (the reference divides 0 by 0)")
        }
        let band = n / crops
        var marks = [Int](repeating: 0, count: crops)
        for j in Selection.topK(thumbnail, markCount) { marks[j / band] += 1 }
        let markTotal = Float(marks.reduce(0, +))
        let cropBudgets = marks.map { count -> Int in
            let ratio = Float(count) / markTotal           // int64 / int64 -> float32
            let share = ratio * Float(sub)                 // float32 tensor × Python int
            return min(Int(share.rounded(.towardZero)), n) // .int() truncates; clamp(max=N)
        }
        return Budgets(total: total, full: full, sub: sub, perPartition: [full] + cropBudgets, partitionMarks: marks)
    }

    /// LLaVA-NeXT AnyRes image: split the budget (`budgets`), then keep each partition's top
    /// tokens by late-layer [CLS] attention.
    ///
    /// - Parameters:
    ///   - topAttention: `[heads, 1+N]` early-layer (layer 0) [CLS] row of the base image.
    ///   - bottomAttention: P tensors `[heads, 1+N]`, late-layer (layer 22) [CLS] rows, base first.
    ///
    /// Not covered: `pack_HiRED_image_features` (unpadding of the kept tokens and the sequence
    /// layout) and the `spatial_budget` grid baseline (default 0).
    public static func select(topAttention: Tensor, bottomAttention: [Tensor], grid: CropGrid,
                              parameters: Parameters = .init()) throws -> Result {
        let b = try budgets(topAttention: topAttention, grid: grid, parameters: parameters)
        let p = 1 + grid.cropCount
        guard bottomAttention.count == p else {
            throw CompressionError.shapeMismatch("HiRED needs \(p) bottom attention rows (base + \(grid.cropCount) crops), got \(bottomAttention.count)")
        }
        let s = try bottomAttention.map { try scores(clsAttention: $0) }
        let n = s[0].count
        guard s.allSatisfy({ $0.count == n }), try scores(clsAttention: topAttention).count == n else {
            throw CompressionError.shapeMismatch("HiRED partitions must all have the same N")
        }
        if b.total >= p * n {
            // The reference would still drop a few crop tokens through truncation; a budget
            // covering every token is reported as what it is meant to be, a no-op.
            return Result(budgets: b, keptPerPartition: [[Int]](repeating: Array(0..<n), count: p),
                          compression: .noOp(tokenCount: p * n, requested: b.total, policy: .notApplicable,
                                             reason: "token budget \(b.total) covers all \(p * n) visual tokens"))
        }
        let keptPerPartition = (0..<p).map { Selection.topK(s[$0], b.perPartition[$0]).sorted() }
        let kept = keptPerPartition.enumerated().flatMap { part, js in js.map { part * n + $0 } }
        return Result(budgets: b, keptPerPartition: keptPerPartition,
                      compression: CompressionResult(kept: kept, requestedCount: b.total, achievedCount: kept.count,
                                                     positionPolicy: .notApplicable))
    }
}
