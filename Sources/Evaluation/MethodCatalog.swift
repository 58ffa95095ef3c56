import Models
import TokenCompression

/// How many methods the package has, runs inside a model and checks against its authors' code.
///
/// The one place these counts are computed: `tokc methods` prints `summary`, and a test holds the
/// README's sentence to it, so the documented numbers cannot drift from the registries.
public enum MethodCatalog {
    public static var methodCount: Int { MethodRegistry.all.count }
    public static var inModelCount: Int { Set(ModelCompression.runnableMethods).intersection(MethodRegistry.all.map(\.name)).count }
    public static var conformanceCount: Int { Set(ConformanceRegistry.all.map { $0.method }).intersection(MethodRegistry.all.map(\.name)).count }

    /// "32 methods: 17 run inside a model, 27 have conformance cases".
    public static var summary: String {
        "\(methodCount) methods: \(inModelCount) run inside a model, \(conformanceCount) have conformance cases"
    }
}
