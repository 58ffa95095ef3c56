import Tensors

/// Δ-DiT: cache the *deviation* (output − input) of a group of blocks and reuse it on cached
/// steps — the rear blocks in the early sampling stage (they shape details, which early steps do not
/// need yet) and the front blocks in the late stage (they shape the outline, settled by then).
///
/// Criterion: the call index alone (a refresh interval and a stage boundary). Strategy: reuse of a
/// deviation — on a cached call the group's output is `h_in + Δ` with `h_in` the group's CURRENT
/// input, so the blocks that do run still reach the final layer ("Δ-Cache").
///
/// There is NO official code (the spec, `../shared/methods/dit.md` §3.1, found none). The rule here
/// is the paper's abstract plus the one re-implementation the spec read (TaylorSeer-FLUX
/// `mode='Delta'`): full calls by a counter that refreshes every `interval` calls after
/// `firstEnhance` leading full calls; full calls store the deviation of BOTH groups, so the group
/// switched to at the boundary has one. The boundary, group size and interval defaults are ours.
public struct DeltaDiT {
    public static let info = MethodInfo(
        name: "delta_dit", displayName: "Δ-DiT", domain: .diffusion, families: [.cache],
        placement: .everyDiffusionStep,
        signals: [.timestep, .moduleOutputs],
        needsAttentionProbabilities: false,
        paper: "Δ-DiT: A Training-Free Acceleration Method Tailored for Diffusion Transformers (arXiv 2406.01125)",
        repository: "none official (rule from the paper's abstract and TaylorSeer-FLUX mode='Delta')",
        summary: "Between full steps, skip the rear blocks early in sampling and the front blocks late, adding their cached deviation (output − input) to the current input.")

    public struct Parameters: Sendable, Equatable {
        /// Refresh interval N: a full call, then N − 1 cached calls (TaylorSeer-FLUX's Delta mode: 3).
        public var interval: Int
        /// Calls `< boundary` are the early stage (rear group cached), the others the late stage
        /// (front group cached). nil: half the calls, rounded down (our default; the paper's is unverified).
        public var boundary: Int?
        /// Blocks in a cached group (front = the first N_c, rear = the last N_c). nil: half the
        /// blocks, at least 1 (our default).
        public var cachedBlocks: Int?
        /// Leading calls always computed in full (TaylorSeer-FLUX `first_enhance`, 1 in its Delta mode).
        public var firstEnhance: Int

        public init(interval: Int = 3, boundary: Int? = nil, cachedBlocks: Int? = nil, firstEnhance: Int = 1) throws {
            self.interval = interval
            self.boundary = boundary
            self.cachedBlocks = cachedBlocks
            self.firstEnhance = firstEnhance
            try validate()
        }

        public func validate() throws {
            guard interval >= 1 else { throw CompressionError.invalidParameter("Δ-DiT interval must be ≥ 1, got \(interval)") }
            if let b = boundary, b < 0 { throw CompressionError.invalidParameter("Δ-DiT boundary must be ≥ 0, got \(b)") }
            if let n = cachedBlocks, n < 1 { throw CompressionError.invalidParameter("Δ-DiT cachedBlocks must be ≥ 1, got \(n)") }
            guard firstEnhance >= 1 else {
                throw CompressionError.invalidParameter("Δ-DiT firstEnhance must be ≥ 1 (the first call has no cached deviation), got \(firstEnhance)")
            }
        }

        /// The boundary and group size for a run of `calls` calls on `layers` blocks.
        public func resolved(calls: Int, layers: Int) throws -> (boundary: Int, cachedBlocks: Int) {
            try validate()
            guard calls >= 1, layers >= 1 else { throw CompressionError.invalidParameter("Δ-DiT needs ≥ 1 call and ≥ 1 block, got \(calls) and \(layers)") }
            let n = cachedBlocks ?? max(1, layers / 2)
            guard n < layers else {
                throw CompressionError.invalidParameter("Δ-DiT caches \(n) blocks of \(layers): at least one block must run on cached calls")
            }
            return (boundary ?? calls / 2, n)
        }
    }

    /// Which group a cached call skips.
    public enum Group: String, Sendable, Equatable {
        case front, rear
    }

    /// One call's decision.
    public struct CallPlan: Sendable, Equatable {
        /// Every block runs and both groups' deviations are stored.
        public let full: Bool
        /// The stage's group (skipped when not full).
        public let group: Group
        /// Blocks skipped this call (empty on full calls).
        public let skipped: Range<Int>
    }

    /// The plan of every call: a counter reset at each full call and incremented on cached ones; a
    /// call is full when it is among the first `firstEnhance` or the counter has reached N − 1.
    public static func plan(calls: Int, layers: Int, parameters p: Parameters) throws -> [CallPlan] {
        let (boundary, n) = try p.resolved(calls: calls, layers: layers)
        var counter = 0
        return (0..<calls).map { call in
            let group: Group = call < boundary ? .rear : .front
            let full = call < p.firstEnhance || counter == p.interval - 1
            counter = full ? 0 : counter + 1
            let skipped = full ? 0..<0 : (group == .front ? 0..<n : (layers - n)..<layers)
            return CallPlan(full: full, group: group, skipped: skipped)
        }
    }

    /// The plan as a cache schedule over module `block`: computed blocks `.compute`, skipped ones
    /// `.reuse` (their group's deviation is added instead).
    public static func schedule(calls: Int, layers: Int, parameters: Parameters) throws -> CacheSchedule {
        let plans = try plan(calls: calls, layers: layers, parameters: parameters)
        return CacheSchedule(moduleNames: ["block"], actions: plans.map { p in
            (0..<layers).map { [p.skipped.contains($0) ? .reuse : .compute] }
        })
    }
}
