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
    /// ToCa's parameters and schedule (nil: no partial steps), its token cache and the attention maps
    /// of the block being computed.
    private let toca: ToCa.Parameters?
    private let tocaSchedule: ToCa.Schedule?
    private var tokenCache = TokenFeatureCache()
    private var pendingAttentionMaps: [Tensor]?
    /// `rowFractions[call][layer][module]`: share of the module's token rows really computed (1 full,
    /// 0 reused or forecast, k/N partial).
    public private(set) var rowFractions: [[[Double]]] = []

    /// DiT's cached modules.
    public static let ditModules = ["attn", "mlp"]
    /// PixArt-α's cached modules (the names of ToCa's PixArt schedules).
    public static let pixArtModules = ["attn", "cross-attn", "mlp"]

    /// `taylorSeer`: TaylorSeer's parameters, whose plans must give the schedule's actions call by call.
    public init(method: String, schedule: CacheSchedule, layers: Int, modules: [String] = DiTFeatureCache.ditModules,
                taylorSeer: TaylorSeer.Parameters? = nil, toca: ToCa.Parameters? = nil) throws {
        guard schedule.moduleNames == modules else {
            throw ModelError("\(method): its schedule has modules \(schedule.moduleNames); this model caches \(modules)")
        }
        for (s, step) in schedule.actions.enumerated() {
            guard step.count == layers else {
                throw ModelError("\(method): step \(s) of its schedule has \(step.count) layers, the model \(layers)")
            }
            let runnable: Set<CacheAction> = taylorSeer != nil ? [.compute, .forecast] : toca != nil ? [.compute, .reuse, .partial] : [.compute, .reuse]
            if let bad = step.joined().first(where: { !runnable.contains($0) }) {
                throw ModelError("\(method): '\(bad)' actions are not runnable here (compute and reuse are; forecast with TaylorSeer's plans, partial with ToCa's DiT parameters)")
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
        if let toca {
            guard toca.model == .dit, modules == Self.ditModules else {
                throw ModelError("\(method): partial steps run in DiT only (PixArt-α's cross-attention scores are not wired yet)")
            }
            let plan: ToCa.Schedule
            do { plan = try ToCa.schedule(toca) } catch { throw ModelError("\(method): \(error)") }
            guard plan.cacheSchedule == schedule else {
                throw ModelError("\(method): the schedule does not follow ToCa's for these parameters")
            }
            self.toca = toca
            tocaSchedule = plan
        } else {
            self.toca = nil
            tocaSchedule = nil
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
        rowFractions.append(Array(repeating: [], count: layers))
    }

    /// Whether the block about to run must hand its self-attention probabilities over (ToCa's full steps).
    func wantsAttentionMap(layer: Int) -> Bool {
        tocaSchedule.map { $0.kinds[call][layer] == .full } ?? false
    }

    /// The head-mean self-attention map `[N, N]` of each batch row, from the block's full step.
    func provideAttentionMaps(_ maps: [Tensor]) { pendingAttentionMaps = maps }

    /// ToCa's path: full steps store the module output per batch row (and the attention map), partial
    /// steps reuse the attention and recompute the MLP's fresh rows; `input` is the module input
    /// `[B·N, D]`, `computeRows(rows, b)` runs the module on some rows of batch row `b`.
    private func tocaOutput(layer: Int, module: Int, input: Tensor, samples: Int, compute: () throws -> Tensor,
                            computeRows: (Tensor, Int) throws -> Tensor) throws -> (Tensor, Double) {
        guard let toca, let plan = tocaSchedule else { throw ModelError("\(method): no ToCa schedule") }
        let name = moduleNames[module]
        let n = input.rows / samples
        func split(_ t: Tensor) throws -> [Tensor] { try (0..<samples).map { try t.rows(($0 * n)..<(($0 + 1) * n)) } }
        do {
            if plan.kinds[call][layer] == .full {
                let out = try compute()
                let maps = module == 0 ? pendingAttentionMaps : nil
                if module == 0 {
                    guard maps != nil else { throw ModelError("\(method): layer \(layer): the full step did not record the attention map") }
                    pendingAttentionMaps = nil
                }
                try ToCa.storeFullStep(layer: layer, moduleOutputs: [name: try split(out)], attentionMap: maps, cache: &tokenCache)
                return (out, 1)
            }
            guard plan.partialModules.contains(name) else {
                return (try Tensor.concatenateRows(try tokenCache.read(.init(layer: layer, module: name))), 0)
            }
            var sample = 0
            let (selection, rows) = try ToCa.partialStep(tokens: try split(input), cache: &tokenCache, step: plan.stepIndices[call],
                                                         layer: layer, module: name, parameters: toca) { fresh in
                defer { sample += 1 }
                return fresh.rows == 0 ? Tensor(zeros: [0, input.columns]) : try computeRows(fresh, sample)
            }
            return (try Tensor.concatenateRows(rows), Double(selection.count) / Double(n))
        } catch let e as ModelError {
            throw e
        } catch {
            throw ModelError("\(method): layer \(layer), \(name): \(error)")
        }
    }

    /// The module's output at the current call: computed (and stored), the stored one, a forecast, or
    /// (ToCa) the stored one with its fresh rows recomputed. `input` and `computeRows` serve ToCa.
    func output(layer: Int, module: Int, input: Tensor? = nil, samples: Int = 1, compute: () throws -> Tensor,
                computeRows: ((Tensor, Int) throws -> Tensor)? = nil) throws -> Tensor {
        let action = schedule.actions[call][layer][module]
        if toca != nil {
            guard let input, let computeRows else { throw ModelError("\(method): ToCa needs the module input and a row-wise compute") }
            let (out, fraction) = try tocaOutput(layer: layer, module: module, input: input, samples: samples,
                                                 compute: compute, computeRows: computeRows)
            executed[call][layer].append(action)
            rowFractions[call][layer].append(fraction)
            if action == .compute { computedModules += 1 } else if action == .reuse { reusedModules += 1 }
            return out
        }
        var slots = stored[layer] ?? Array(repeating: nil, count: moduleNames.count)
        defer {
            executed[call][layer].append(action)
            rowFractions[call][layer].append(action == .compute ? 1 : 0)
        }
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
