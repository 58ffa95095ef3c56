/// Every method the package implements, for `tokc methods` and the runtime.
///
/// Each method file declares its own `info`; this list is the one place that collects them.
public enum MethodRegistry {
    public static let all: [MethodInfo] = [
        // Keep one line per method, grouped by domain.

        // group A: dart fastv pdrop baselines
        DART.info,
        FastV.info,
        PDrop.info,
        RandomPruning.info,
        AttentionScorePruning.info,
        NormPruning.keyNormInfo,
        NormPruning.valueNormInfo,
        SpatialPooling.info,

        // group B: sparsevlm mustdrop
        SparseVLM.info,
        MustDrop.info,

        // group C: fastervlm hired visionzip
        FasterVLM.info,
        HiRED.info,
        VisionZip.info,

        // group D: prumerge prumerge_plus globalcom2 ficoco_v
        PruMerge.info,
        PruMergePlus.info,
        GlobalCom2.info,
        FiCoCoV.info,

        // group E: tome evit vidcom2 dycoke
        ToMe.info,
        EViT.info,
        VidCom2.info,
        DyCoke.info,

        // group F: fastvid prunevid framefusion holitom
        FastVID.info,
        PruneVid.info,
        FrameFusion.info,
        HoliTom.info,

        // group G: toca duca fora
        ToCa.info,
        DuCa.info,
        FORA.info,

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
