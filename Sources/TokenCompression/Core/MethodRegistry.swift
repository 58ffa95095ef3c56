/// Every method the package implements, for `tokc methods` and the runtime.
///
/// Each method file declares its own `info`; this list is the one place that collects them.
public enum MethodRegistry {
    public static let all: [MethodInfo] = [
        // Keep one line per method, grouped by domain.

        // group A: dart fastv pdrop baselines

        // group B: sparsevlm mustdrop

        // group C: fastervlm hired visionzip

        // group D: prumerge prumerge_plus globalcom2 ficoco_v

        // group E: tome evit vidcom2 dycoke

        // group F: fastvid prunevid framefusion holitom

        // group G: toca duca fora

        // group H: taylorseer tgate pab teacache
        TaylorSeer.info,
        TGate.info,
        PAB.info,
        TeaCache.info,

    ]

    public static func info(named name: String) -> MethodInfo? {
        all.first { $0.name == name.lowercased() }
    }
}
