/// The second kind of method: a step policy for diffusion transformers.
///
/// Token methods decide *which tokens* survive; caching methods decide, for each sampling step,
/// layer and module, *whether to compute at all*. They keep the same two-stage shape: a criterion
/// scores (staleness, attention, relative L1 change of the input) and a strategy acts (compute,
/// reuse the cache, recompute only chosen tokens, forecast from earlier steps).

/// What a caching policy does for one module at one step.
public enum CacheAction: Sendable, Equatable, CustomStringConvertible {
    /// Compute the module and refresh its cache.
    case compute
    /// Reuse the cached output (or residual) unchanged.
    case reuse
    /// Recompute only some tokens, reuse the rest from the cache (ToCa / DuCa partial steps).
    case partial
    /// Predict the output from cached history (TaylorSeer).
    case forecast
    /// Skip the module entirely (e.g. DuCa aggressive steps, T-GATE after the gate).
    case skip

    /// One-letter code for compact schedule tables.
    public var code: Character {
        switch self {
        case .compute: return "C"
        case .reuse: return "R"
        case .partial: return "P"
        case .forecast: return "F"
        case .skip: return "-"
        }
    }

    public var description: String {
        switch self {
        case .compute: return "compute"
        case .reuse: return "reuse"
        case .partial: return "partial"
        case .forecast: return "forecast"
        case .skip: return "skip"
        }
    }

    /// Share of a full computation this action costs (partial counts as its fresh-token ratio
    /// separately; here it counts as 0 to keep the table a plain upper bound of skipped work).
    public var isFullComputation: Bool { self == .compute }
}

/// Decisions of a caching policy over a whole sampling run: `actions[step][layer][module]`.
public struct CacheSchedule: Sendable, Equatable {
    public var moduleNames: [String]
    public var actions: [[[CacheAction]]]

    public init(moduleNames: [String], actions: [[[CacheAction]]]) {
        self.moduleNames = moduleNames
        self.actions = actions
    }

    public var steps: Int { actions.count }

    /// Fraction of (step, layer, module) slots computed in full.
    public var computedFraction: Double {
        var total = 0, computed = 0
        for step in actions { for layer in step { for a in layer { total += 1; if a == .compute { computed += 1 } } } }
        return total == 0 ? 0 : Double(computed) / Double(total)
    }

    /// Compact table: one row per step, one letter per layer (first module), `C R P F -`.
    public func table(maxLayers: Int = 64) -> String {
        var lines: [String] = ["step  " + moduleNames.joined(separator: "/") + " per layer (C compute, R reuse, P partial, F forecast, - skip)"]
        for (s, step) in actions.enumerated() {
            let cells = step.prefix(maxLayers).map { String($0.map(\.code)) }.joined(separator: " ")
            lines.append(String(s).padding(toLength: 5, withPad: " ", startingAt: 0) + " " + cells)
        }
        lines.append("fraction of full computation: \(String(format: "%.3f", computedFraction))")
        return lines.joined(separator: "\n")
    }
}
