/// The conformers of every implemented method. A method listed here is held to all of its
/// shared cases by `swift test` and `tokc conformance`.
public enum ConformanceRegistry {
    public static let all: [any MethodConformer.Type] = [
        // One line per method.
    ]
}
