import TokenCompression

/// How one method runs inside a LLaVA model: the `--param` names it accepts and how its hooks
/// are built.
///
/// Each adapter file declares its adapter beside the hooks it builds (`DARTCompression.adapter`);
/// `MethodCatalog` (Evaluation) lists them with the rest of each method's entry. `make` does what
/// every adapter needs once: it checks the budget (a count of at least one token, or a ratio in
/// (0, 1]) and refuses parameter names the adapter does not accept, before the builder runs.
public struct InModelAdapter {
    /// Registry name of the method.
    public let method: String
    /// Accepted NAME=VALUE parameter names.
    public let parameters: [String]
    /// What the method cannot run without (FitPrune: a fitted scheme), in words; nil when a budget
    /// alone is enough. Such methods are left out of a sweep unless named (`tokc bench --methods`).
    public let requires: String?
    let build: (Budget, MethodParameters) throws -> ModelCompression

    init(method: String, parameters: [String], requires: String? = nil,
         build: @escaping (Budget, MethodParameters) throws -> ModelCompression) {
        self.method = method
        self.parameters = parameters
        self.requires = requires
        self.build = build
    }

    /// The method with `budget` over the visual tokens and its NAME=VALUE `parameters`.
    public func make(budget: Budget, parameters values: [String: String] = [:]) throws -> ModelCompression {
        _ = try budget.tokens(outOf: 1)
        if case .count(let k) = budget, k < 1 {
            throw ModelCompressionError.invalidParameter("\(method): keep count \(k) must be ≥ 1")
        }
        let unknown = Set(values.keys).subtracting(parameters)
        guard unknown.isEmpty else {
            let accepted = parameters.isEmpty ? "none" : parameters.sorted().joined(separator: ", ")
            throw ModelCompressionError.invalidParameter("\(method): unknown parameter(s) \(unknown.sorted().joined(separator: ", ")); accepted: \(accepted)")
        }
        return try build(budget, MethodParameters(method, values))
    }
}
