import Foundation
import Tensors
import TokenCompression

/// Caching of whole blocks across sampler calls, around a diffusion transformer's block loop (DiT,
/// PixArt-α): TeaCache skips the entire stack and adds the stack's cached residual; Δ-DiT skips a
/// group of blocks (rear early, front late) and adds that group's cached deviation. A skipped block
/// really does not run (no modulation, norm, attention or MLP); embedders and the final layer always do.
///
/// The third policy, `calibrate`, runs every block and records, per call, the relative L1 change of
/// the modulated input and of the model output: the pairs TeaCache's polynomial is fitted from.
///
/// One instance serves one sampling run (state is per generation, unlike the authors' class-level
/// counters). `log` holds what happened per call, `blocksRun[call][layer]` which blocks ran.
public final class DiTStepCache: @unchecked Sendable {
    public enum Policy: Sendable, Equatable {
        case teaCache(TeaCache.Parameters)
        case deltaDiT(DeltaDiT.Parameters)
        case calibrate

        public var name: String {
            switch self {
            case .teaCache: return "teacache"
            case .deltaDiT: return "delta_dit"
            case .calibrate: return "teacache-calibrate"
            }
        }

        /// Whether each call computes block 0's modulated input (TeaCache, calibration).
        public var readsIndicator: Bool {
            if case .deltaDiT = self { return false }
            return true
        }
    }

    /// One call's record.
    public struct CallRecord: Sendable, Equatable {
        /// TeaCache's decision (nil for other policies).
        public var teaCache: TeaCache.Decision?
        /// Δ-DiT's plan for the call (nil for other policies).
        public var deltaDiT: DeltaDiT.CallPlan?
        /// Relative L1 change of the modulated input against the previous call (nil at the first call
        /// and for Δ-DiT). TeaCache: the distance it evaluated, also on forced calls.
        public var inputChange: Float?
        /// Calibration: relative L1 change of the model output against the previous call.
        public var outputChange: Float?
    }

    public let policy: Policy
    public let calls: Int
    public let layers: Int
    public private(set) var log: [CallRecord] = []
    /// `blocksRun[call][layer]`.
    public private(set) var blocksRun: [[Bool]] = []
    private var teaState: TeaCache.State?
    private let forced: [Bool]
    private let deltaPlans: [DeltaDiT.CallPlan]
    /// Δ-DiT's group size N_c.
    private let groupSize: Int
    /// Δ-DiT's deviations of the front and rear groups from the last full call.
    private var frontDelta: Tensor?
    private var rearDelta: Tensor?
    private var previousIndicator: Tensor?
    private var previousOutput: Tensor?

    /// `calls`: the sampler's transformer calls (steps); `layers`: the model's blocks.
    public init(policy: Policy, calls: Int, layers: Int) throws {
        guard calls >= 1, layers >= 1 else { throw ModelError("\(policy.name): needs ≥ 1 call and ≥ 1 block, got \(calls) and \(layers)") }
        self.policy = policy
        self.calls = calls
        self.layers = layers
        do {
            switch policy {
            case .teaCache(let p):
                teaState = try TeaCache.State(parameters: p)
                // First and last calls computed (TeaCache4FLUX's counter over one generation).
                forced = try TeaCache.Forcing.counter(calls: calls, steps: calls)
                deltaPlans = []
                groupSize = 0
            case .deltaDiT(let p):
                deltaPlans = try DeltaDiT.plan(calls: calls, layers: layers, parameters: p)
                groupSize = try p.resolved(calls: calls, layers: layers).cachedBlocks
                forced = []
            case .calibrate:
                forced = []
                deltaPlans = []
                groupSize = 0
            }
        } catch let e as ModelError {
            throw e
        } catch {
            throw ModelError("\(policy.name): \(error)")
        }
    }

    /// Runs the block stack on `h` for the next call. `indicator()` gives block 0's modulated input
    /// (asked only by TeaCache and calibration); `block(layer, h)` runs one block.
    func run(_ h: Tensor, indicator: () throws -> Tensor, block: (Int, Tensor) throws -> Tensor) throws -> Tensor {
        let call = log.count
        guard call < calls else { throw ModelError("\(policy.name): the sampler made more than the \(calls) calls it was set up for") }
        var ran = Array(repeating: false, count: layers)
        func runAll(_ x: Tensor, _ range: Range<Int>) throws -> Tensor {
            var x = x
            for layer in range {
                x = try block(layer, x)
                ran[layer] = true
            }
            return x
        }
        var record = CallRecord()
        let out: Tensor
        do {
            switch policy {
            case .teaCache:
                let m = try indicator()
                if let previousIndicator { record.inputChange = try TeaCache.relativeL1(current: m, previous: previousIndicator) }
                previousIndicator = m
                guard var state = teaState else { throw ModelError("\(policy.name): no TeaCache state") }
                let step = try state.step(indicator: m, input: h, forced: forced[call]) { try runAll($0, 0..<layers) }
                teaState = state
                record.teaCache = step.decision
                out = step.output
            case .calibrate:
                let m = try indicator()
                if let previousIndicator { record.inputChange = try TeaCache.relativeL1(current: m, previous: previousIndicator) }
                previousIndicator = m
                out = try runAll(h, 0..<layers)
            case .deltaDiT:
                let plan = deltaPlans[call]
                record.deltaDiT = plan
                out = try deltaDiT(h, plan: plan, runAll: runAll)
            }
        } catch let e as ModelError {
            throw e
        } catch {
            throw ModelError("\(policy.name): call \(call): \(error)")
        }
        log.append(record)
        blocksRun.append(ran)
        return out
    }

    /// Full call: every block, both groups' deviations stored on the side (the output is the plain
    /// loop's, bit for bit; the groups may overlap when N_c > L/2). Cached call: the stage's group is
    /// replaced by `input + Δ`.
    private func deltaDiT(_ h: Tensor, plan: DeltaDiT.CallPlan, runAll: (Tensor, Range<Int>) throws -> Tensor) throws -> Tensor {
        let n = groupSize
        if plan.full {
            var x = h
            var afterFront = h, beforeRear = h
            for layer in 0..<layers {
                if layer == layers - n { beforeRear = x }
                x = try runAll(x, layer..<(layer + 1))
                if layer == n - 1 { afterFront = x }
            }
            frontDelta = try afterFront - h
            rearDelta = try x - beforeRear
            return x
        }
        switch plan.group {
        case .front:
            guard let frontDelta else { throw ModelError("\(policy.name): front blocks skipped before any full call stored their deviation") }
            return try runAll(try h + frontDelta, plan.skipped.upperBound..<layers)
        case .rear:
            guard let rearDelta else { throw ModelError("\(policy.name): rear blocks skipped before any full call stored their deviation") }
            return try runAll(h, 0..<plan.skipped.lowerBound) + rearDelta
        }
    }

    /// Calibration: the model's outputs of the call just run (all samples of the batch), whose
    /// change against the previous call pairs with the input change.
    func endCall(outputs: [Tensor]) throws {
        guard policy == .calibrate, !log.isEmpty else { return }
        let out = try Tensor.concatenateRows(try outputs.map { try $0.reshaped([1, $0.count]) })
        if let previousOutput { log[log.count - 1].outputChange = try TeaCache.relativeL1(current: out, previous: previousOutput) }
        previousOutput = out
    }

    /// The (input change, output change) pairs recorded so far (calibration; calls after the first).
    public var calibrationPairs: [(input: Float, output: Float)] {
        log.compactMap { r in r.inputChange.flatMap { i in r.outputChange.map { (i, $0) } } }
    }

    /// Blocks skipped over the run.
    public var skippedBlocks: Int { blocksRun.joined().filter { !$0 }.count }
}
