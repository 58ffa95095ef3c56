import Foundation
import Tensors
import TokenCompression

/// Feature caching inside the DiT blocks, driven by a caching method's schedule (`CacheSchedule`,
/// the same decisions `tokc schedule` prints): at each sampler call and block, the attention and the
/// MLP either compute (and store their output *before the adaLN gate*) or reuse the stored output,
/// gated by the CURRENT step's gate — FORA's rule. A reused module really does not run: no norm,
/// no projection, no attention, no MLP; only the block's modulation (the gates) is computed.
///
/// Supports the schedules made of `compute` and `reuse` (FORA, the full steps of the others); a
/// schedule with partial, forecast or skip actions is refused before sampling starts.
/// `executed` logs what really ran, for comparison with the schedule.
public final class DiTFeatureCache: @unchecked Sendable {
    public let method: String
    public let schedule: CacheSchedule
    /// `executed[call][layer][module]`: the action taken, module order `attn`, `mlp`.
    public private(set) var executed: [[[CacheAction]]] = []
    public private(set) var computedModules = 0
    public private(set) var reusedModules = 0
    private var stored: [Int: [Tensor?]] = [:]
    private var call = -1

    public static let moduleNames = ["attn", "mlp"]

    public init(method: String, schedule: CacheSchedule, layers: Int) throws {
        guard schedule.moduleNames == Self.moduleNames else {
            throw ModelError("\(method): its schedule has modules \(schedule.moduleNames); the DiT cache runs \(Self.moduleNames)")
        }
        for (s, step) in schedule.actions.enumerated() {
            guard step.count == layers else {
                throw ModelError("\(method): step \(s) of its schedule has \(step.count) layers, the model \(layers)")
            }
            if let bad = step.joined().first(where: { $0 != .compute && $0 != .reuse }) {
                throw ModelError("\(method): '\(bad)' actions are not runnable in the DiT sampler yet (compute and reuse are)")
            }
        }
        self.method = method
        self.schedule = schedule
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
        var slots = stored[layer] ?? [nil, nil]
        defer { executed[call][layer].append(action) }
        if action == .reuse {
            guard let cached = slots[module] else {
                throw ModelError("\(method): call \(call), layer \(layer): '\(Self.moduleNames[module])' is reused before it was ever computed")
            }
            reusedModules += 1
            return cached
        }
        let out = try compute()
        slots[module] = out
        stored[layer] = slots
        computedModules += 1
        return out
    }
}
