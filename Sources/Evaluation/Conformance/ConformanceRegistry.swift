/// The conformers of every implemented method. A method listed here is held to all of its
/// shared cases by `swift test` and `tokc conformance`.
public enum ConformanceRegistry {
    public static let all: [any MethodConformer.Type] = [
        // One line per method.

        // group A: dart fastv pdrop baselines

        // group B: sparsevlm mustdrop

        // group C: fastervlm hired visionzip

        // group D: prumerge prumerge_plus globalcom2 ficoco_v

        // group E: tome evit vidcom2 dycoke

        // group F: fastvid prunevid framefusion holitom

        // group G: toca duca fora

        // group H: taylorseer tgate pab teacache
        TaylorSeerConformer.self,
        TGateConformer.self,
        PABConformer.self,
        TeaCacheConformer.self,

    ]
}
