import Models
import TokenCompression

/// The one list of methods. Adding a method: write it (`Sources/TokenCompression/Methods/<Domain>/X.swift`),
/// its in-model adapter and conformer beside their peers, and add one line here (CONTRIBUTING.md).
public enum MethodCatalog {
    typealias S = MethodSchedules
    typealias B = MethodScoringBenchmark

    public static let all: [MethodEntry] = [
        // image VLM, inside the LLM
        MethodEntry(DART.info, adapter: DARTCompression.adapter, flops: S.dart, scoring: B.one(B.dart), conformer: DARTConformer.self),
        MethodEntry(FastV.info, adapter: AttentionRowCompression.fastVAdapter, flops: S.fastv, scoring: B.one(B.fastV), conformer: FastVConformer.self),
        MethodEntry(PDrop.info, adapter: PDropCompression.adapter, flops: S.pdrop, scoring: B.one(B.pDrop), conformer: PDropConformer.self),
        MethodEntry(SparseVLM.info, adapter: SparseVLMCompression.adapter, flops: S.sparseVLM, scoring: B.one(B.sparseVLM), conformer: SparseVLMConformer.self),
        MethodEntry(MustDrop.info, adapter: MustDropCompression.adapter, scoring: B.one(B.mustDrop), conformer: MustDropConformer.self),
        MethodEntry(FitPrune.info, adapter: FitPruneCompression.adapter, flops: S.fitPrune, scoring: B.one(B.fitPrune), conformer: FitPruneConformer.self),
        // image VLM baselines
        MethodEntry(RandomPruning.info, adapter: SignalNormCompression.randomAdapter, flops: S.llmLayer2Baseline("random"), scoring: B.one { try B.baseline($0, name: "random") }),
        MethodEntry(AttentionScorePruning.info, adapter: AttentionRowCompression.aScoreAdapter, flops: S.llmLayer2Baseline("a-score"), scoring: B.one { try B.baseline($0, name: "a-score") }),
        MethodEntry(NormPruning.keyNormInfo, adapter: SignalNormCompression.keyNormAdapter, flops: S.llmLayer2Baseline("k-norm"), scoring: B.one { try B.baseline($0, name: "k-norm") }),
        MethodEntry(NormPruning.valueNormInfo, adapter: SignalNormCompression.valueNormAdapter, flops: S.llmLayer2Baseline("v-norm"), scoring: B.one { try B.baseline($0, name: "v-norm") }),
        MethodEntry(SpatialPooling.info, adapter: VisionMethods.poolingAdapter, flops: S.pooling, scoring: B.one(B.pooling)),
        // image VLM, before the projector
        MethodEntry(FasterVLM.info, adapter: VisionMethods.fasterVLMAdapter, flops: S.fasterVLM, scoring: B.one(B.fasterVLM), conformer: FasterVLMConformer.self),
        MethodEntry(HiRED.info, adapter: HiREDCompression.adapter, flops: S.visionBudget("hired"), scoring: B.one(B.hiRED), conformer: HiREDConformer.self),
        MethodEntry(VisionZip.info, adapter: VisionMethods.visionZipAdapter, flops: S.visionZip, scoring: B.one(B.visionZip), conformer: VisionZipConformer.self),
        MethodEntry(PruMerge.info, adapter: VisionMethods.pruMergeAdapter, flops: S.visionBudget("prumerge"), scoring: B.one { try B.pruMerge($0, plus: false) }, conformer: PruMergeConformer.self),
        MethodEntry(PruMergePlus.info, adapter: VisionMethods.pruMergePlusAdapter, flops: S.visionBudget("prumerge_plus"), scoring: B.one { try B.pruMerge($0, plus: true) }, conformer: PruMergePlusConformer.self),
        MethodEntry(GlobalCom2.info, adapter: GlobalCom2Compression.adapter, flops: S.visionBudget("globalcom2"), scoring: B.one(B.globalCom2), conformer: GlobalCom2Conformer.self),
        MethodEntry(FiCoCoV.info, adapter: FiCoCoVCompression.adapter, flops: S.ficocoV, scoring: B.fiCoCoV, conformer: FiCoCoVConformer.self),
        // ViT
        MethodEntry(ToMe.info, vitAdapter: ViTToMeCompression.adapter, conformer: ToMeConformer.self),
        MethodEntry(EViT.info, vitAdapter: ViTEViTCompression.adapter, conformer: EViTConformer.self),
        MethodEntry(SparseTuning.info, vitAdapter: ViTSparseTuningCompression.adapter),
        // video LLM
        MethodEntry(VidCom2.info, videoAdapter: VideoVidCom2Compression.adapter, flops: S.vidcom2, conformer: VidCom2Conformer.self),
        MethodEntry(DyCoke.info, videoAdapter: VideoDyCokeCompression.adapter, flops: S.dycoke, conformer: DyCokeConformer.self),
        MethodEntry(FastVID.info, videoAdapter: VideoFastVIDCompression.adapter, flops: S.fastvid, conformer: FastVIDConformer.self),
        MethodEntry(PruneVid.info, videoAdapter: VideoPruneVidCompression.adapter, flops: S.prunevid, conformer: PruneVidConformer.self),
        MethodEntry(FrameFusion.info, videoAdapter: VideoFrameFusionCompression.adapter, flops: S.framefusion, conformer: FrameFusionConformer.self),
        MethodEntry(HoliTom.info, videoAdapter: VideoHoliTomCompression.adapter, flops: S.holitom, conformer: HoliTomConformer.self),
        // diffusion caching
        MethodEntry(ToCa.info, samplerCaching: true, conformer: ToCaConformer.self),
        MethodEntry(DuCa.info, samplerCaching: true, conformer: DuCaConformer.self),
        MethodEntry(FORA.info, samplerCaching: true, conformer: FORAConformer.self),
        MethodEntry(TaylorSeer.info, samplerCaching: true, conformer: TaylorSeerConformer.self),
        MethodEntry(TGate.info, samplerCaching: true, conformer: TGateConformer.self),
        MethodEntry(PAB.info, samplerCaching: true, conformer: PABConformer.self),
        MethodEntry(TeaCache.info, samplerCaching: true, conformer: TeaCacheConformer.self),
        MethodEntry(DeltaDiT.info, samplerCaching: true),  // no official code, so no conformance cases
        // diffusion merging
        MethodEntry(ToMeSD.info, diffusionAdapter: DiffusionToMeSDCompression.adapter, conformer: ToMeSDConformer.self),
    ]

    // MARK: views derived from the list

    public static func entry(named name: String) -> MethodEntry? {
        let n = name.lowercased()
        return all.first { $0.name == n }
    }

    public static var infos: [MethodInfo] { all.map { $0.info } }
    public static func info(named name: String) -> MethodInfo? { entry(named: name)?.info }

    /// Methods that run inside a model, LLaVA or ViT (registry names, sorted).
    public static var inModelMethods: [String] { all.filter { $0.runsInModel }.map { $0.name }.sorted() }

    /// Methods that run inside a LLaVA model (`InModelAdapter`; sorted).
    public static var llavaMethods: [String] { all.filter { $0.adapter != nil }.map { $0.name }.sorted() }

    /// Methods that run inside the blocks of a ViT (`ViTAdapter`; in list order).
    public static var vitMethods: [String] { all.filter { $0.vitAdapter != nil }.map { $0.name } }

    /// Video methods that run on LLaVA-OneVision's video path (`videoAdapter`; in list order).
    public static var videoMethods: [String] { all.filter { $0.videoAdapter != nil }.map { $0.name } }

    /// Methods that run inside a diffusion transformer's sampler: in its blocks (`diffusionAdapter`) or
    /// as a caching schedule (`samplerCaching`); in list order.
    public static var diffusionMethods: [String] { all.filter { $0.runsInDiffusion }.map { $0.name } }

    /// Methods wired into the diffusion blocks through the catalog (`diffusionAdapter`: ToMe-SD).
    public static var diffusionAdapterMethods: [String] { all.filter { $0.diffusionAdapter != nil }.map { $0.name } }

    /// The named method's setting for a DiT / PixArt-α sampling run (`tokc generate --method`), from its
    /// NAME=VALUE `parameters`; methods not wired into the diffusion blocks are refused with the list.
    public static func diffusionMethod(_ method: String, parameters: [String: String] = [:]) throws -> DiffusionMethodSetting {
        guard let adapter = entry(named: method)?.diffusionAdapter else {
            throw ModelCompressionError.unsupportedMethod(method.lowercased(), "does not run inside the diffusion blocks through the catalog; runnable there: \(diffusionAdapterMethods.joined(separator: ", "))")
        }
        return try adapter.make(parameters: parameters)
    }

    /// What runs on a video prompt (sorted): the video methods and the image methods that act in
    /// the decoder (their visual span is then the video's rows).
    public static var videoPromptMethods: [String] {
        all.filter(runsOnVideo).map { $0.name }.sorted()
    }

    /// A video method, or a LLaVA method without a vision-feature hook (that hook acts on images
    /// before the projector and is refused on video prompts). Methods that cannot be built from a
    /// budget alone (FitPrune's scheme) are judged by where they are placed.
    static func runsOnVideo(_ entry: MethodEntry) -> Bool {
        if entry.videoAdapter != nil { return true }
        guard let adapter = entry.adapter else { return false }
        if let built = try? adapter.make(budget: .ratio(0.5)) { return built.visionHook == nil }
        return actsInDecoder(entry.info.placement)
    }

    /// Placed in the decoder only.
    static func actsInDecoder(_ placement: Placement) -> Bool {
        switch placement {
        case .llmLayer, .llmLayers, .decodeStep: return true
        case .multiple(let parts): return parts.allSatisfy(actsInDecoder)
        default: return false
        }
    }

    /// What `tokc bench` sweeps on a LLaVA model by default: the LLaVA methods that run on a budget alone.
    public static var defaultSweepMethods: [String] {
        all.filter { $0.adapter != nil && $0.adapter?.requires == nil }.map { $0.name }.sorted()
    }

    /// Methods with conformance cases' runners, in list order.
    public static var conformers: [any MethodConformer.Type] { all.compactMap { $0.conformer } }

    /// The named method ready to plug into a LLaVA run, with `budget` over the visual tokens and
    /// its NAME=VALUE `parameters`; unknown names, unsupported settings and unknown parameters throw.
    public static func compression(method: String, budget: Budget, parameters: [String: String] = [:]) throws -> ModelCompression {
        guard let entry = entry(named: method) else {
            throw ModelCompressionError.unsupportedMethod(method.lowercased(), "unknown method; runnable in LLaVA: \(llavaMethods.joined(separator: ", "))")
        }
        guard let adapter = entry.adapter ?? entry.videoAdapter else {
            if entry.vitAdapter != nil {
                throw ModelCompressionError.unsupportedMethod(entry.name, "runs inside the blocks of a ViT (a ViT/DeiT classifier folder), not in LLaVA; runnable in LLaVA: \(llavaMethods.joined(separator: ", "))")
            }
            if entry.runsInDiffusion {
                throw ModelCompressionError.unsupportedMethod(entry.name, "runs inside a diffusion transformer's sampler (tokc generate --method, tokc bench --task diffusion), not in LLaVA; runnable in LLaVA: \(llavaMethods.joined(separator: ", "))")
            }
            throw ModelCompressionError.unsupportedMethod(entry.name, "registered, but not wired into the model runtime yet; runnable in LLaVA: \(llavaMethods.joined(separator: ", "))")
        }
        return try adapter.make(budget: budget, parameters: parameters)
    }

    /// The named method ready to plug into a ViT forward pass (`ViTClassifier`, CLIP's vision tower) of
    /// a model of `shape`, with its NAME=VALUE `parameters` (ToMe `r=8`, EViT `keep_rate=0.7`, …).
    public static func vitCompression(method: String, parameters: [String: String] = [:], shape: ViTModelShape) throws -> ViTCompression {
        guard let entry = entry(named: method) else {
            throw ModelCompressionError.unsupportedMethod(method.lowercased(), "unknown method; runnable in ViTs: \(vitMethods.joined(separator: ", "))")
        }
        guard let adapter = entry.vitAdapter else {
            let why = entry.adapter != nil ? "runs in LLaVA models, not inside a ViT classifier" : "not wired into a model yet"
            throw ModelCompressionError.unsupportedMethod(entry.name, "\(why); runnable in ViTs: \(vitMethods.joined(separator: ", "))")
        }
        return try adapter.make(parameters: parameters, shape: shape)
    }

    /// "35 methods: 28 run inside a model (18 in LLaVA, 3 in ViTs, 6 on LLaVA-OneVision videos, 1 in diffusion
    /// transformers), 29 have conformance cases" (`tokc methods`' last line; a test holds the README to it).
    public static var summary: String {
        "\(all.count) methods: \(inModelMethods.count) run inside a model (\(llavaMethods.count) in LLaVA, \(vitMethods.count) in ViTs, \(videoMethods.count) on LLaVA-OneVision videos, \(diffusionMethods.count) in diffusion transformers), \(conformers.count) have conformance cases"
    }
}
