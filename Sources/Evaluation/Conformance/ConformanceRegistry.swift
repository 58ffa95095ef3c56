/// The conformers of every implemented method. A method listed here is held to all of its
/// shared cases by `swift test` and `tokc conformance`.
public enum ConformanceRegistry {
    public static let all: [any MethodConformer.Type] = [
        // One line per method.

        // group A: dart fastv pdrop baselines
        DARTConformer.self,
        FastVConformer.self,
        PDropConformer.self,

        // group B: sparsevlm mustdrop
        SparseVLMConformer.self,
        MustDropConformer.self,

        // group C: fastervlm hired visionzip
        FasterVLMConformer.self,
        HiREDConformer.self,
        VisionZipConformer.self,

        // group D: prumerge prumerge_plus globalcom2 ficoco_v
        PruMergeConformer.self,
        PruMergePlusConformer.self,
        GlobalCom2Conformer.self,
        FiCoCoVConformer.self,

        // group E: tome evit vidcom2 dycoke
        ToMeConformer.self,
        EViTConformer.self,
        VidCom2Conformer.self,
        DyCokeConformer.self,

        // group F: fastvid prunevid framefusion holitom
        FastVIDConformer.self,
        PruneVidConformer.self,
        FrameFusionConformer.self,
        HoliTomConformer.self,

        // group G: toca duca fora
        ToCaConformer.self,
        DuCaConformer.self,
        FORAConformer.self,

        // group H: taylorseer tgate pab teacache
        TaylorSeerConformer.self,
        TGateConformer.self,
        PABConformer.self,
        TeaCacheConformer.self,

    ]
}
