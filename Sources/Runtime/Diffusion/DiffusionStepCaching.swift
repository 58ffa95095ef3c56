import Foundation
import Models
import TokenCompression

/// The pipelines' side of whole-block caching (TeaCache, Δ-DiT, calibration recording).
enum DiffusionStepCaching {
    /// A fresh step cache for one generation (state never carries over between runs), refused next to
    /// feature caching: both would decide for the same blocks.
    static func make(_ policy: DiTStepCache.Policy?, featureCaching: Bool, calls: Int, layers: Int) throws -> DiTStepCache? {
        guard let policy else { return nil }
        guard !featureCaching else {
            throw ModelError("\(policy.name) skips whole blocks; it cannot run together with a per-module caching schedule")
        }
        return try DiTStepCache(policy: policy, calls: calls, layers: layers)
    }
}

/// What a step cache did over one sampling run.
public struct DiffusionStepCacheReport: Sendable {
    public let policy: DiTStepCache.Policy
    /// One record per transformer call.
    public let calls: [DiTStepCache.CallRecord]
    /// `blocksRun[call][layer]`.
    public let blocksRun: [[Bool]]

    public init(_ cache: DiTStepCache) {
        policy = cache.policy
        calls = cache.log
        blocksRun = cache.blocksRun
    }

    /// The decisions as a cache schedule (ran: compute, skipped: reuse) in the shape `TeaCache.schedule`
    /// (module `blocks`: the whole stack) and `DeltaDiT.schedule` (module `block`) produce.
    public var schedule: CacheSchedule {
        let module: String
        if case .teaCache = policy { module = "blocks" } else { module = "block" }
        return CacheSchedule(moduleNames: [module], actions: blocksRun.map { call in call.map { [$0 ? .compute : .reuse] } })
    }

    /// Relative L1 changes of the modulated input per call (0 where none was measured: the first call).
    public var inputChanges: [Float] { calls.map { $0.inputChange ?? 0 } }

    /// Calibration pairs (calls after the first).
    public var calibrationPairs: [(input: Float, output: Float)] {
        calls.compactMap { r in r.inputChange.flatMap { i in r.outputChange.map { (i, $0) } } }
    }
}
