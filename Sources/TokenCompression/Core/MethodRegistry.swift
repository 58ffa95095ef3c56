/// Every method the package implements, for `tokc methods` and the runtime.
///
/// Each method file declares its own `info`; this list is the one place that collects them.
public enum MethodRegistry {
    public static let all: [MethodInfo] = [
        // Keep one line per method, grouped by domain.
    ]

    public static func info(named name: String) -> MethodInfo? {
        all.first { $0.name == name.lowercased() }
    }
}
