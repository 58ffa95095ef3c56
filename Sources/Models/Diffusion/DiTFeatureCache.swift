import Foundation
import Tensors
import TokenCompression

/// Feature caching inside the blocks of a diffusion transformer, driven by a caching method's schedule
/// (`CacheSchedule`, the same decisions `tokc schedule` prints): at each sampler call and block, each
/// module (DiT: attention, MLP; PixArt-α: attention, cross-attention, MLP) either computes (and stores
/// its output *before the adaLN gate*) or reuses the stored output, gated by the CURRENT step's gate —
/// FORA's rule (PixArt's cross-attention has no gate: its raw output is reused). A reused module really
/// does not run: no norm, no projection, no attention, no MLP; only the block's modulation is computed.
///
/// Supports the schedules made of `compute` and `reuse` (FORA, ToCa at r0 = 0), and `forecast` when
/// TaylorSeer's step plans are given: full steps then also update each module's Taylor factors
/// (finite differences over the step index), forecast steps output `Σ D_i x^i / i!` instead of running
/// the module. Partial and skip actions are refused before sampling starts.
/// `executed` logs what really ran, for comparison with the schedule.
public final class DiTFeatureCache: @unchecked Sendable {
    public let method: String
    public let schedule: CacheSchedule
    /// The model's modules, in schedule order.
    public let moduleNames: [String]
    /// `executed[call][layer][module]`: the action taken, modules in `moduleNames` order.
    public private(set) var executed: [[[CacheAction]]] = []
    public private(set) var computedModules = 0
    public private(set) var reusedModules = 0
    private var stored: [Int: [Tensor?]] = [:]
    private var call = -1
    /// TaylorSeer's plan per call (nil: no forecasting) and the Taylor factors per layer and module.
    private let taylorPlans: [TaylorSeer.StepPlan]?
    private var factors: [Int: [TaylorSeer.FactorCache]] = [:]
    private let maxOrder: Int
    public private(set) var forecastModules = 0

    /// DiT's cached modules.
    public static let ditModules = ["attn", "mlp"]
    /// PixArt-α's cached modules (the names of ToCa's PixArt schedules).
    public static let pixArtModules = ["attn", "cross-attn", "mlp"]

    /// `taylorSeer`: TaylorSeer's parameters, whose plans must give the schedule's actions call by call.
    public init(method: String, schedule: CacheSchedule, layers: Int, modules: [String] = DiTFeatureCache.ditModules,
                taylorSeer: TaylorSeer.Parameters? = nil) throws {
        guard schedule.moduleNames == modules else {
            throw ModelError("\(method): its schedule has modules \(schedule.moduleNames); this model caches \(modules)")
        }
        for (s, step) in schedule.actions.enumerated() {
            guard step.count == layers else {
                throw ModelError("\(method): step \(s) of its schedule has \(step.count) layers, the model \(layers)")
            }
            let runnable: Set<CacheAction> = taylorSeer == nil ? [.compute, .reuse] : [.compute, .forecast]
            if let bad = step.joined().first(where: { !runnable.contains($0) }) {
                throw ModelError("\(method): '\(bad)' actions are not runnable in the sampler yet (compute and reuse are; forecast with TaylorSeer's plans)")
            }
        }
        if let taylorSeer {
            let plans: [TaylorSeer.StepPlan]
            do { plans = try TaylorSeer.plan(steps: schedule.steps, parameters: taylorSeer) } catch {
                throw ModelError("\(method): \(error)")
            }
            guard plans.map(\.action) == schedule.actions.map({ $0.first?.first ?? .compute }),
                  schedule.actions.allSatisfy({ step in step.joined().allSatisfy { $0 == step.first?.first } }) else {
                throw ModelError("\(method): the schedule does not follow TaylorSeer's plan for these parameters")
            }
            taylorPlans = plans
            maxOrder = taylorSeer.maxOrder
        } else {
            taylorPlans = nil
            maxOrder = 0
        }
        self.method = method
        self.schedule = schedule
        moduleNames = modules
    }

    /// Starts the next transformer call (one per sampler step).
    func beginCall(layers: Int) throws {
        call += 1
        guard call < schedule.steps else {
            throw ModelError("\(method): the sampler made more than the \(schedule.steps) calls its schedule covers")
        }
        executed.append(Array(repeating: [], count: layers))
    }

    /// The module's output at the current call: computed (and stored) or the stored one.
    func output(layer: Int, module: Int, compute: () throws -> Tensor) throws -> Tensor {
        let action = schedule.actions[call][layer][module]
        var slots = stored[layer] ?? Array(repeating: nil, count: moduleNames.count)
        defer { executed[call][layer].append(action) }
        if action == .forecast, let plans = taylorPlans {
            let cache = factors[layer]?[module] ?? TaylorSeer.FactorCache(maxOrder: maxOrder)
            guard !cache.isEmpty else {
                throw ModelError("\(method): call \(call), layer \(layer): '\(moduleNames[module])' is forecast before any full step")
            }
            forecastModules += 1
            do { return try cache.forecast(plan: plans[call]) } catch { throw ModelError("\(method): \(error)") }
        }
        if action == .reuse {
            guard let cached = slots[module] else {
                throw ModelError("\(method): call \(call), layer \(layer): '\(moduleNames[module])' is reused before it was ever computed")
            }
            reusedModules += 1
            return cached
        }
        let out = try compute()
        slots[module] = out
        stored[layer] = slots
        if let plans = taylorPlans {
            var caches = factors[layer] ?? Array(repeating: TaylorSeer.FactorCache(maxOrder: maxOrder), count: moduleNames.count)
            do { try caches[module].update(feature: out, plan: plans[call]) } catch { throw ModelError("\(method): \(error)") }
            factors[layer] = caches
        }
        computedModules += 1
        return out
    }
}
