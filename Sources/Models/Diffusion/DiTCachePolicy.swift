import Foundation
import Tensors
import TokenCompression

/// ToCa's or DuCa's token-wise plan: the kind of every (call, layer), the step index the method's
/// formulas see, the modules recomputed token-wise, and the method's fresh-token selection.
struct TokenCachePlan {
    let kinds: [[TokenCacheStepKind]]
    let stepIndices: [Int]
    let partialModules: [String]
    /// The module whose full steps record the map the score reads: "attn" (DiT's s1, self-attention)
    /// or "cross-attn" (PixArt's s2, cross-attention; its partial steps also refresh the fresh rows).
    let mapModule: String
    let cutFresh: (_ tokens: [Tensor], _ cache: inout TokenFeatureCache, _ step: Int, _ layer: Int, _ module: String) throws -> ToCa.FreshSelection
}

/// Which caching method drives a `DiTFeatureCache`, with what it needs beyond the schedule. Each
/// constructor rebuilds the method's own schedule from its parameters and refuses a schedule that
/// differs, so the cache never runs decisions its method would not make.
enum DiTCachePolicy {
    /// Compute / reuse exactly as the schedule says (FORA, ToCa at r0 = 0, hand-made schedules).
    case plain
    case taylorSeer(TaylorSeer.Parameters, plans: [TaylorSeer.StepPlan])
    case toca(ToCa.Parameters, TokenCachePlan)
    case duca(DuCa.Parameters, TokenCachePlan)
    /// PAB with the integer timesteps the blocks see, one per call.
    case pab(PAB.Parameters, timesteps: [Int])
    case tgate(TGate.Parameters)

    var name: String {
        switch self {
        case .plain: return "plain"
        case .taylorSeer: return "TaylorSeer"
        case .toca: return "ToCa"
        case .duca: return "DuCa"
        case .pab: return "PAB"
        case .tgate: return "T-GATE"
        }
    }

    var runnable: Set<CacheAction> {
        switch self {
        case .plain, .pab, .tgate: return [.compute, .reuse]
        case .taylorSeer: return [.compute, .forecast]
        case .toca: return [.compute, .reuse, .partial]
        case .duca: return [.compute, .reuse, .partial, .skip]
        }
    }

    var tokenPlan: TokenCachePlan? {
        switch self {
        case .toca(_, let plan), .duca(_, let plan): return plan
        default: return nil
        }
    }

    /// The modules the method's schedule lists for a model with `modules`: all of them, except
    /// T-GATE's, which covers self- and cross-attention only (named as its schedule names them).
    func scheduledModules(_ modules: [String]) -> [String] {
        guard case .tgate = self else { return modules }
        return ["self-attn", "cross-attn"]
    }

    /// A model module's name in the schedule.
    func scheduleName(of module: String) -> String {
        guard case .tgate = self else { return module }
        return module == "attn" ? "self-attn" : module
    }

    static func taylorSeer(_ p: TaylorSeer.Parameters, schedule: CacheSchedule) throws -> DiTCachePolicy {
        let plans = try TaylorSeer.plan(steps: schedule.steps, parameters: p)
        guard plans.map(\.action) == schedule.actions.map({ $0.first?.first ?? .compute }),
              schedule.actions.allSatisfy({ step in step.joined().allSatisfy { $0 == step.first?.first } }) else {
            throw ModelError("the schedule does not follow TaylorSeer's plan for these parameters")
        }
        return .taylorSeer(p, plans: plans)
    }

    static func toca(_ p: ToCa.Parameters, modules: [String], schedule: CacheSchedule) throws -> DiTCachePolicy {
        let expected = p.model == .dit ? DiTFeatureCache.ditModules : DiTFeatureCache.pixArtModules
        guard modules == expected else {
            throw ModelError("ToCa's \(p.model.rawValue) parameters cache \(expected), this model \(modules)")
        }
        let plan = try ToCa.schedule(p)
        guard plan.cacheSchedule == schedule else { throw ModelError("the schedule does not follow ToCa's for these parameters") }
        return .toca(p, TokenCachePlan(kinds: plan.kinds, stepIndices: plan.stepIndices, partialModules: plan.partialModules,
                                       mapModule: p.model == .dit ? "attn" : "cross-attn") { tokens, cache, step, layer, module in
            try ToCa.cutFresh(tokens: tokens, cache: &cache, step: step, layer: layer, module: module, parameters: p)
        })
    }

    static func duca(_ p: DuCa.Parameters, modules: [String], schedule: CacheSchedule) throws -> DiTCachePolicy {
        guard p.model != .openSora else {
            throw ModelError("DuCa's Open-Sora schedule is not wired into a model here (DiT and PixArt-α are)")
        }
        let expected = p.model == .dit ? DiTFeatureCache.ditModules : DiTFeatureCache.pixArtModules
        guard modules == expected else {
            throw ModelError("DuCa's \(p.model.rawValue) parameters cache \(expected), this model \(modules)")
        }
        guard p.scoreType == .attention else {
            throw ModelError("DuCa's '\(p.scoreType.rawValue)' score is not wired into the model (the attention score is)")
        }
        let plan = try DuCa.schedule(p)
        guard plan.cacheSchedule == schedule else { throw ModelError("the schedule does not follow DuCa's for these parameters") }
        return .duca(p, TokenCachePlan(kinds: plan.kinds, stepIndices: plan.stepIndices, partialModules: plan.partialModules,
                                       mapModule: p.model == .dit ? "attn" : "cross-attn") { tokens, cache, step, layer, module in
            try DuCa.cutFresh(tokens: tokens, cache: &cache, step: step, layer: layer, module: module, parameters: p)
        })
    }

    static func pab(_ p: PAB.Parameters, timesteps: [Int], layers: Int, modules: [String], schedule: CacheSchedule) throws -> DiTCachePolicy {
        let expected = try PAB.imageSchedule(timesteps: timesteps, layers: layers, crossAttention: modules.contains("cross-attn"), parameters: p)
        guard expected == schedule else {
            throw ModelError("the schedule does not follow PAB's for these parameters and the sampler's timesteps \(timesteps)")
        }
        return .pab(p, timesteps: timesteps)
    }

    static func tgate(_ p: TGate.Parameters, layers: Int, modules: [String], schedule: CacheSchedule) throws -> DiTCachePolicy {
        guard modules.contains("cross-attn") else {
            throw ModelError("T-GATE freezes cross-attention, which this model (DiT, class-conditional) does not have; its self-attention part alone would also drop guidance after the gate and sample the null class — refused")
        }
        guard try TGate.schedule(steps: schedule.steps, layers: layers, parameters: p) == schedule else {
            throw ModelError("the schedule does not follow T-GATE's for these parameters")
        }
        return .tgate(p)
    }
}
