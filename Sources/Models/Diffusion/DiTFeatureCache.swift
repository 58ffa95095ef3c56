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
/// What each method adds (its `DiTCachePolicy`):
/// - TaylorSeer: full steps update each module's Taylor factors, `forecast` steps output `Σ D_i x^i / i!`.
/// - ToCa / DuCa: `partial` steps recompute only the fresh MLP rows (token cache, attention-map score;
///   ToCa and DuCa on PixArt-α also the fresh cross-attention rows, scored by the cross-attention entropy);
///   DuCa's aggressive steps `skip` whole blocks and the last block's output of the previous call
///   replaces the hidden state (`finishBlocks`).
/// - PAB: reuse hands back the GATED term of the call that computed it (VideoSys stores
///   `gate · attn(x)`), so `gate(layer:module:current:)` returns that call's gate (with
///   `reuseGate == .current`, diffusers' hooks, the current one); MLP outputs are stored per
///   broadcast timestep, as `pab_mgr` keys them.
/// - T-GATE: its schedule covers self- and cross-attention only (the MLP always runs); the gate step
///   stores the mean of the two CFG halves, which the later single-row calls reuse.
/// `executed` logs what really ran, in the schedule's module layout, for comparison with the schedule.
public final class DiTFeatureCache: @unchecked Sendable {
    public let method: String
    public let schedule: CacheSchedule
    /// The model's modules, in forward order.
    public let moduleNames: [String]
    /// `executed[call][layer][module]`: the action taken, modules in the schedule's order.
    public private(set) var executed: [[[CacheAction]]] = []
    public private(set) var computedModules = 0
    public private(set) var reusedModules = 0
    public private(set) var forecastModules = 0
    public private(set) var skippedModules = 0
    /// `rowFractions[call][layer][model module]`: share of the module's token rows really computed
    /// (1 full, 0 reused, forecast or skipped, k/N partial).
    public private(set) var rowFractions: [[[Double]]] = []
    /// Batch rows of each call (T-GATE drops the CFG half after its gate).
    public private(set) var callSamples: [Int] = []

    /// DiT's cached modules.
    public static let ditModules = ["attn", "mlp"]
    /// PixArt-α's cached modules (the names of ToCa's PixArt schedules).
    public static let pixArtModules = ["attn", "cross-attn", "mlp"]

    let policy: DiTCachePolicy
    /// Schedule column of each model module (nil: not scheduled, always computed).
    let column: [Int?]
    var call = -1
    /// Pre-gate module outputs per layer (model module order), and the gate each was computed with.
    var stored: [Int: [Tensor?]] = [:]
    var storedGates: [Int: [Tensor?]] = [:]
    /// Batch rows each stored output covers (T-GATE's gate step stores one averaged row).
    var storedSamples: [Int: [Int]] = [:]
    /// Whether the module's last `output` at this call was reused (PAB hands back the old gate then).
    var reusedNow: [Int: [Tensor?]] = [:]
    var factors: [Int: [TaylorSeer.FactorCache]] = [:]
    var tokenCache = TokenFeatureCache()
    var pendingAttentionMaps: [Tensor]?
    var pendingFreshMapRows: [Int: Tensor] = [:]
    /// PAB's MLP outputs (and gates) per layer, keyed by the broadcast timestep that stored them.
    var pabMLP: [Int: [Int: (output: Tensor, gate: Tensor)]] = [:]
    var pabMLPSamples: [Int: [Int: Int]] = [:]

    /// `taylorSeer`, `toca`, `duca`, `pab`, `tgate`: the method's parameters, whose own schedule must be
    /// the given one (checked here, before sampling starts). PAB also needs the sampler's timesteps.
    public init(method: String, schedule: CacheSchedule, layers: Int, modules: [String] = DiTFeatureCache.ditModules,
                taylorSeer: TaylorSeer.Parameters? = nil, toca: ToCa.Parameters? = nil, duca: DuCa.Parameters? = nil,
                pab: (parameters: PAB.Parameters, timesteps: [Int])? = nil, tgate: TGate.Parameters? = nil) throws {
        let given = [taylorSeer != nil, toca != nil, duca != nil, pab != nil, tgate != nil].filter { $0 }.count
        guard given <= 1 else { throw ModelError("\(method): give the parameters of one caching method, not \(given)") }
        let policy: DiTCachePolicy
        do {
            if let taylorSeer {
                policy = try .taylorSeer(taylorSeer, schedule: schedule)
            } else if let toca {
                policy = try .toca(toca, modules: modules, schedule: schedule)
            } else if let duca {
                policy = try .duca(duca, modules: modules, schedule: schedule)
            } else if let pab {
                policy = try .pab(pab.parameters, timesteps: pab.timesteps, layers: layers, modules: modules, schedule: schedule)
            } else if let tgate {
                policy = try .tgate(tgate, layers: layers, modules: modules, schedule: schedule)
            } else {
                policy = .plain
            }
        } catch let e as ModelError {
            throw ModelError("\(method): \(e.message)")
        } catch {
            throw ModelError("\(method): \(error)")
        }
        let names = policy.scheduledModules(modules)
        guard schedule.moduleNames == names else {
            throw ModelError("\(method): its schedule has modules \(schedule.moduleNames); this model caches \(names)")
        }
        for (s, step) in schedule.actions.enumerated() {
            guard step.count == layers else {
                throw ModelError("\(method): step \(s) of its schedule has \(step.count) layers, the model \(layers)")
            }
            if let bad = step.joined().first(where: { !policy.runnable.contains($0) }) {
                throw ModelError("\(method): '\(bad)' actions are not runnable here (compute and reuse are; forecast with TaylorSeer's plans, partial with ToCa's or DuCa's parameters, skip with DuCa's)")
            }
        }
        self.method = method
        self.schedule = schedule
        self.policy = policy
        moduleNames = modules
        column = modules.map { names.firstIndex(of: policy.scheduleName(of: $0)) }
    }

    /// Starts the next transformer call (one per sampler step) on `samples` batch rows.
    func beginCall(layers: Int, samples: Int = 1) throws {
        call += 1
        guard call < schedule.steps else {
            throw ModelError("\(method): the sampler made more than the \(schedule.steps) calls its schedule covers")
        }
        executed.append(Array(repeating: [], count: layers))
        rowFractions.append(Array(repeating: [], count: layers))
        callSamples.append(samples)
    }

    /// The scheduled action of a model module at the current call (unscheduled modules compute).
    func action(layer: Int, module: Int) -> CacheAction {
        column[module].map { schedule.actions[call][layer][$0] } ?? .compute
    }

    func record(layer: Int, module: Int, _ action: CacheAction, fraction: Double) {
        if column[module] != nil { executed[call][layer].append(action) }
        rowFractions[call][layer].append(fraction)
        switch action {
        case .compute: computedModules += 1
        case .reuse: reusedModules += 1
        case .forecast: forecastModules += 1
        case .skip: skippedModules += 1
        case .partial: break
        }
    }

    /// True when every module of the block is skipped at this call (DuCa's aggressive steps): the
    /// block must not run at all; its skips are logged here.
    func skipsBlock(layer: Int) -> Bool {
        guard !moduleNames.isEmpty, (0..<moduleNames.count).allSatisfy({ action(layer: layer, module: $0) == .skip }) else { return false }
        for m in moduleNames.indices { record(layer: layer, module: m, .skip, fraction: 0) }
        return true
    }

    /// The hidden state after the last block: DuCa stores it at every call and, when the last block
    /// is aggressive, hands back the previous call's instead. Other methods leave it unchanged.
    func finishBlocks(_ h: Tensor, samples: Int) throws -> Tensor {
        guard case .duca(let p, let plan) = policy else { return h }
        let n = h.rows / samples
        do {
            if plan.kinds[call][p.numLayers - 1] == .aggressive {
                return try Tensor.concatenateRows(try DuCa.aggressiveStep(parameters: p, cache: &tokenCache))
            }
            try DuCa.storeLastBlockOutput(try (0..<samples).map { try h.rows(($0 * n)..<(($0 + 1) * n)) }, parameters: p, cache: &tokenCache)
            return h
        } catch {
            throw ModelError("\(method): call \(call): \(error)")
        }
    }

    /// Whether the block about to run must hand its self-attention probabilities over (ToCa's and
    /// DuCa's DiT full steps: their s1 score reads the map).
    func wantsAttentionMap(layer: Int) -> Bool {
        policy.tokenPlan.map { $0.mapModule == "attn" && $0.kinds[call][layer] == .full } ?? false
    }

    /// Whether the block's cross-attention must hand its probabilities over (ToCa's PixArt s2 score):
    /// all rows at full steps, the fresh rows at partial steps (scattered into the stored map).
    func wantsCrossAttentionMap(layer: Int) -> Bool {
        policy.tokenPlan.map { $0.mapModule == "cross-attn" && $0.kinds[call][layer] != .aggressive } ?? false
    }

    /// The head-mean attention map of each batch row from the block's full step: self-attention
    /// `[N, N]` (DiT), or cross-attention `[N, B·L]` in PixArt's batch-flattened layout.
    func provideAttentionMaps(_ maps: [Tensor]) { pendingAttentionMaps = maps }

    /// The cross-attention map rows `[k, B·L]` of batch row `sample`'s fresh tokens, from a partial step.
    func provideFreshCrossAttentionRows(_ rows: Tensor, sample: Int) { pendingFreshMapRows[sample] = rows }

    /// The gate to apply to the module's output: the current one, except after a PAB reuse, which
    /// hands back the gated term of the call that computed it (so that call's gate).
    func gate(layer: Int, module: Int, current: Tensor) -> Tensor {
        guard case .pab(let p, _) = policy, p.reuseGate == .computing else { return current }
        if let old = reusedNow[layer]?[module] ?? nil { return old }
        var gates = storedGates[layer] ?? Array(repeating: nil, count: moduleNames.count)
        gates[module] = current
        storedGates[layer] = gates
        if moduleNames[module] == "mlp", let key = pabPendingMLPKey(layer: layer), let out = pabMLP[layer]?[key]?.output {
            pabMLP[layer]?[key] = (out, current)
        }
        return current
    }

    /// The module's output at the current call: computed (and stored), the stored one, a forecast, or
    /// (ToCa, DuCa) the stored one with its fresh rows recomputed. `input`, `samples` and `computeRows`
    /// serve the token-wise methods; `samples` also splits T-GATE's CFG halves.
    func output(layer: Int, module: Int, input: Tensor? = nil, samples: Int = 1, compute: () throws -> Tensor,
                computeRows: ((Tensor, Int) throws -> Tensor)? = nil) throws -> Tensor {
        let action = self.action(layer: layer, module: module)
        if let plan = policy.tokenPlan {
            guard let input, let computeRows else { throw ModelError("\(method): \(policy.name) needs the module input and a row-wise compute") }
            let (out, fraction) = try tokenOutput(plan: plan, layer: layer, module: module, input: input, samples: samples,
                                                  compute: compute, computeRows: computeRows)
            record(layer: layer, module: module, action, fraction: fraction)
            return out
        }
        var marks = reusedNow[layer] ?? Array(repeating: nil, count: moduleNames.count)
        marks[module] = nil
        defer { reusedNow[layer] = marks }
        switch action {
        case .forecast:
            record(layer: layer, module: module, action, fraction: 0)
            return try forecast(layer: layer, module: module)
        case .reuse:
            let (out, oldGate) = try reused(layer: layer, module: module, samples: samples)
            marks[module] = oldGate
            record(layer: layer, module: module, action, fraction: 0)
            return out
        case .compute:
            let out = try compute()
            try store(out, layer: layer, module: module, samples: samples)
            record(layer: layer, module: module, action, fraction: 1)
            return out
        case .partial, .skip:
            throw ModelError("\(method): call \(call), layer \(layer): '\(action)' for '\(moduleNames[module])' outside a token-wise or block-skipping method")
        }
    }
}
