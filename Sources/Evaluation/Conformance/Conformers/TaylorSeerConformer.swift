import Tensors
import TokenCompression

/// TaylorSeer cases: `stage` schedule, trajectory, derivative, forecast.
public enum TaylorSeerConformer: MethodConformer {
    public static let method = "taylorseer"

    public static func run(_ testCase: ConformanceCase) throws -> [String: CaseValue] {
        let p = testCase.params
        let stage = try p.string("stage")
        let convention: TaylorSeer.StepConvention
        switch try p.string("model").lowercased() {
        case "dit": convention = .dit
        case "flux": convention = .flux
        case let other: throw ConformanceError("taylorseer: unknown model '\(other)'")
        }
        switch stage {
        case "schedule", "trajectory":
            let steps = try p.int("num_steps")
            let parameters = try TaylorSeer.Parameters(interval: try p.int("interval"), maxOrder: try p.int("max_order"),
                                                       firstEnhance: try p.int("first_enhance"), convention: convention)
            let stepIndex = try testCase.inputs.ints("step_index")
            var features: [Tensor] = []
            if stage == "trajectory" { features = try taylorSeerSplitLeading(try testCase.inputs.floats("features")) }
            let run = try TaylorSeer.runModule(steps: steps, parameters: parameters, stepIndices: stepIndex) { k in
                guard stage == "trajectory" else { return Tensor(zeros: [1]) }
                guard k < features.count else { throw ConformanceError("taylorseer: no feature row \(k)") }
                return features[k]
            }
            var out: [String: CaseValue] = [
                "types": .ints(run.plans.map { $0.action == .compute ? 0 : 1 }),
                "activated_step": .ints(run.plans.map(\.activatedStep)),
                "forecast_distance": .ints(run.plans.map(\.forecastDistance)),
                "difference_distance": .ints(run.plans.map(\.differenceDistance)),
                "num_factors": .ints(run.factorCounts),
            ]
            if stage == "trajectory" { out["output"] = .floats(try taylorSeerStack(run.outputs)) }
            return out
        case "derivative":
            let steps = try p.int("num_steps")
            let step = try p.int("step")
            let firstEnhance = try p.int("first_enhance")
            // The DiT gate of derivative_approximation (FLUX: step > first_enhance − 2).
            let gateOpen = convention == .dit ? step < steps - firstEnhance + 1 : step > firstEnhance - 2
            let factors = try TaylorSeer.derivativeApproximation(
                feature: try testCase.inputs.floats("feature"),
                oldFactors: try taylorSeerSplitLeading(try testCase.inputs.floats("old_factors")),
                distance: try p.int("activated_step") - p.int("previous_activated_step"),
                maxOrder: try p.int("max_order"), updateDerivatives: gateOpen)
            return ["new_factors": .floats(try taylorSeerStack(factors))]
        case "forecast":
            let output = try TaylorSeer.taylorFormula(factors: try taylorSeerSplitLeading(try testCase.inputs.floats("factors")),
                                                      distance: try p.int("step") - p.int("activated_step"))
            return ["output": .floats(output)]
        default:
            throw ConformanceError("taylorseer: unknown stage '\(stage)'")
        }
    }
}

/// Splits a tensor along its first axis into tensors of the remaining shape.
private func taylorSeerSplitLeading(_ t: Tensor) throws -> [Tensor] {
    guard let n = t.shape.first, n > 0 else { return [] }
    let inner = Array(t.shape.dropFirst())
    let size = inner.reduce(1, *)
    let values = t.values
    return try (0..<n).map { try Tensor(shape: inner, values: Array(values[$0 * size..<($0 + 1) * size])) }
}

/// Stacks equally shaped tensors along a new first axis.
private func taylorSeerStack(_ parts: [Tensor]) throws -> Tensor {
    guard let first = parts.first else { return Tensor(zeros: [0]) }
    return try Tensor(shape: [parts.count] + first.shape, values: parts.flatMap(\.values))
}
