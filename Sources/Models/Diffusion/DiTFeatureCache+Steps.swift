import Foundation
import Tensors
import TokenCompression

/// How each action stores, reads and predicts module outputs, per method.
extension DiTFeatureCache {
    /// PAB's MLP decision at the current call for a layer (nil: not PAB).
    func pabMLPDecision(layer: Int) throws -> PAB.MLPDecision? {
        guard case .pab(let p, let timesteps) = policy else { return nil }
        do {
            return try PAB.mlpDecision(timestep: timesteps[call], block: layer, temporal: false, allTimesteps: timesteps, parameters: p)
        } catch {
            throw ModelError("\(method): call \(call), layer \(layer): \(error)")
        }
    }

    /// The timestep key under which PAB stored this call's MLP output of `layer` (nil: none stored).
    func pabPendingMLPKey(layer: Int) -> Int? {
        guard case .pab(_, let timesteps) = policy, let decision = try? pabMLPDecision(layer: layer),
              decision == .computeAndStore else { return nil }
        return timesteps[call]
    }

    /// Stores a computed output as the method keeps it.
    func store(_ out: Tensor, layer: Int, module: Int, samples: Int) throws {
        var slots = stored[layer] ?? Array(repeating: nil, count: moduleNames.count)
        var counts = storedSamples[layer] ?? Array(repeating: 0, count: moduleNames.count)
        switch policy {
        case .tgate(let p):
            let f = TGate.flags(step: call, parameters: p)
            let name = moduleNames[module]
            guard name == "attn" ? f.selfCache : name == "cross-attn" ? f.crossCache : false else { return }
            if f.keepShape {
                slots[module] = out
                counts[module] = samples
            } else {
                guard samples == 2 else {
                    throw ModelError("\(method): the gate step averages the two CFG halves, but this call has \(samples) batch row(s)")
                }
                do { slots[module] = try TGate.halfMean(out) } catch { throw ModelError("\(method): \(error)") }
                counts[module] = 1
            }
        case .pab:
            if moduleNames[module] == "mlp" {
                if let key = pabPendingMLPKey(layer: layer) {
                    // The gate is set by `gate(layer:module:current:)` right after this call.
                    pabMLP[layer, default: [:]][key] = (out, out)
                    pabMLPSamples[layer, default: [:]][key] = samples
                }
                return
            }
            slots[module] = out
            counts[module] = samples
        case .taylorSeer(let p, let plans):
            var caches = factors[layer] ?? Array(repeating: TaylorSeer.FactorCache(maxOrder: p.maxOrder), count: moduleNames.count)
            do { try caches[module].update(feature: out, plan: plans[call]) } catch { throw ModelError("\(method): \(error)") }
            factors[layer] = caches
            slots[module] = out
            counts[module] = samples
        default:
            slots[module] = out
            counts[module] = samples
        }
        stored[layer] = slots
        storedSamples[layer] = counts
    }

    /// The stored output for a reuse, with the gate it was computed with (PAB; nil otherwise).
    func reused(layer: Int, module: Int, samples: Int) throws -> (Tensor, Tensor?) {
        let name = moduleNames[module]
        func missing() -> ModelError {
            ModelError("\(method): call \(call), layer \(layer): '\(name)' is reused before it was ever computed")
        }
        func checked(_ rows: Int) throws {
            guard rows == samples else {
                throw ModelError("\(method): call \(call), layer \(layer): '\(name)' was stored for \(rows) batch row(s), this call has \(samples)")
            }
        }
        if case .pab(let p, let timesteps) = policy {
            if name == "mlp" {
                guard case .reuse(let key, let last) = try pabMLPDecision(layer: layer), let entry = pabMLP[layer]?[key] else { throw missing() }
                try checked(pabMLPSamples[layer]?[key] ?? 0)
                if timesteps[call] == last { pabMLP[layer]?[key] = nil }
                return (entry.output, entry.gate)
            }
            guard let out = stored[layer]?[module] ?? nil else { throw missing() }
            try checked(storedSamples[layer]?[module] ?? 0)
            // The computing call's gate (VideoSys); none for the ungated cross-attention or with diffusers' rule.
            guard name != "cross-attn", p.reuseGate == .computing else { return (out, nil) }
            guard let gate = storedGates[layer]?[module] ?? nil else {
                throw ModelError("\(method): call \(call), layer \(layer): '\(name)' has no stored gate")
            }
            return (out, gate)
        }
        guard let out = stored[layer]?[module] ?? nil else { throw missing() }
        try checked(storedSamples[layer]?[module] ?? 0)
        return (out, nil)
    }

    /// TaylorSeer's forecast from the module's factors.
    func forecast(layer: Int, module: Int) throws -> Tensor {
        guard case .taylorSeer(let p, let plans) = policy else {
            throw ModelError("\(method): call \(call), layer \(layer): forecast without TaylorSeer's plans")
        }
        let cache = factors[layer]?[module] ?? TaylorSeer.FactorCache(maxOrder: p.maxOrder)
        guard !cache.isEmpty else {
            throw ModelError("\(method): call \(call), layer \(layer): '\(moduleNames[module])' is forecast before any full step")
        }
        do { return try cache.forecast(plan: plans[call]) } catch { throw ModelError("\(method): \(error)") }
    }

    /// ToCa's and DuCa's path: full steps store the module output per batch row (and the attention or
    /// cross-attention map), partial steps reuse the attention and recompute the fresh rows of the
    /// partial modules (MLP; PixArt-ToCa also cross-attention, whose fresh map rows refresh the map); aggressive steps
    /// never get here (`skipsBlock`). `input` is the module input `[B·N, D]`, `computeRows(rows, b)`
    /// runs the module on some rows of batch row `b`. Returns the output and the share of rows computed.
    func tokenOutput(plan: TokenCachePlan, layer: Int, module: Int, input: Tensor, samples: Int, compute: () throws -> Tensor,
                     computeRows: (Tensor, Int) throws -> Tensor) throws -> (Tensor, Double) {
        let name = moduleNames[module]
        let n = input.rows / samples
        func split(_ t: Tensor) throws -> [Tensor] { try (0..<samples).map { try t.rows(($0 * n)..<(($0 + 1) * n)) } }
        do {
            switch plan.kinds[call][layer] {
            case .full:
                let out = try compute()
                let maps = name == plan.mapModule ? pendingAttentionMaps : nil
                if name == plan.mapModule {
                    guard maps != nil else { throw ModelError("\(method): layer \(layer): the full step did not record the '\(name)' map") }
                    pendingAttentionMaps = nil
                }
                let cross = plan.mapModule == "cross-attn"
                try ToCa.storeFullStep(layer: layer, moduleOutputs: [name: try split(out)], attentionMap: cross ? nil : maps,
                                       crossAttentionMap: cross ? maps : nil, cache: &tokenCache)
                return (out, 1)
            case .aggressive:
                throw ModelError("\(method): call \(call), layer \(layer): an aggressive step reached '\(name)' (the block should be skipped)")
            case .partial:
                guard plan.partialModules.contains(name) else {
                    return (try Tensor.concatenateRows(try tokenCache.read(.init(layer: layer, module: name))), 0)
                }
                // cut_fresh, the module on the fresh rows only, scattered back into the cached output.
                let selection = try plan.cutFresh(try split(input), &tokenCache, plan.stepIndices[call], layer, name)
                let slot = TokenFeatureCache.Slot(layer: layer, module: name)
                let outputs = try selection.freshTokens.enumerated().map { b, fresh in
                    fresh.rows == 0 ? Tensor(zeros: [0, input.columns]) : try computeRows(fresh, b)
                }
                try tokenCache.scatter(outputs, at: selection.freshIndices, into: slot)
                if name == plan.mapModule, plan.mapModule == "cross-attn", selection.count > 0 {
                    // PixArt-ToCa: the fresh rows of the new cross-attention map refresh the stored map.
                    let rows = try (0..<samples).map { b in
                        guard let r = pendingFreshMapRows[b] else { throw ModelError("\(method): layer \(layer): no cross-attention map rows for batch row \(b)") }
                        return r
                    }
                    pendingFreshMapRows = [:]
                    try tokenCache.scatter(rows, at: selection.freshIndices, into: .init(layer: layer, module: ToCa.crossAttentionMapModule))
                }
                return (try Tensor.concatenateRows(try tokenCache.read(slot)), Double(selection.count) / Double(n))
            }
        } catch let e as ModelError {
            throw e
        } catch {
            throw ModelError("\(method): layer \(layer), \(name): \(error)")
        }
    }
}
