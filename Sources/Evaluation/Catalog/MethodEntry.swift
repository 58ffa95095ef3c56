import Models
import TokenCompression

/// Everything the toolkit knows about one method, declared once.
///
/// The method itself (`info` and its pure functions) lives in `TokenCompression`; the pieces
/// below plug it into the rest of the package, each optional because not every method has every
/// piece yet. `MethodCatalog.all` holds one entry per method and every list the package shows
/// (`tokc methods`, runnable methods, conformance, FLOPs plans, scoring benchmarks) is derived
/// from it.
public struct MethodEntry {
    public let info: MethodInfo
    /// How it runs inside a LLaVA model (`tokc run --method`, `tokc bench`); nil: not wired yet.
    public let adapter: InModelAdapter?
    /// How it runs inside the blocks of a ViT (`ViTClassifier`, CLIP's vision tower: `tokc run`/`tokc bench`
    /// on a ViT folder); nil: not a ViT method, or not wired yet.
    public let vitAdapter: ViTAdapter?
    /// How it runs on the videos of a LLaVA-OneVision prompt (`VideoTokenHook`, and `DecodeHook` for
    /// DyCoke's decode-time stage); nil: not a video method, or not wired yet. Image methods that act
    /// in the decoder run on video prompts through `adapter`, with the video's rows as their span.
    public let videoAdapter: InModelAdapter?
    /// How it runs inside the blocks of a diffusion transformer (DiT, PixArt-α: `tokc generate --method`);
    /// nil: not wired there this way (the caching methods run from their schedules, see `samplerCaching`).
    public let diffusionAdapter: DiffusionAdapter?
    /// A caching method that runs inside the DiT / PixArt-α sampler from its schedule (`tokc generate
    /// --method`, `tokc bench --task diffusion`, built from the same options as `tokc schedule`). The
    /// diffusion bench takes its rows from this flag, so a flagged method the sampler cannot build shows
    /// up there as a failed row, never as a silent omission.
    public let samplerCaching: Bool
    /// Its analytic per-layer visual-token plan from a keep budget (`tokc flops --method`).
    let flopsPlan: MethodSchedules.Builder?
    /// Its own scoring and selection on synthetic signals of a model's shapes (`tokc bench-methods`).
    let scoring: MethodScoringBenchmark.Preparer?
    /// Runs its conformance cases (the authors' code's outputs); nil: no cases yet.
    public let conformer: (any MethodConformer.Type)?

    init(_ info: MethodInfo, adapter: InModelAdapter? = nil, vitAdapter: ViTAdapter? = nil, videoAdapter: InModelAdapter? = nil,
         diffusionAdapter: DiffusionAdapter? = nil, samplerCaching: Bool = false, flops: MethodSchedules.Builder? = nil, scoring: MethodScoringBenchmark.Preparer? = nil, conformer: (any MethodConformer.Type)? = nil) {
        self.info = info
        self.adapter = adapter
        self.vitAdapter = vitAdapter
        self.videoAdapter = videoAdapter
        self.diffusionAdapter = diffusionAdapter
        self.samplerCaching = samplerCaching
        flopsPlan = flops
        self.scoring = scoring
        self.conformer = conformer
    }

    public var name: String { info.name }
    /// Whether it runs inside some model (LLaVA, ViT, LLaVA-OneVision's video path or a diffusion transformer).
    public var runsInModel: Bool { adapter != nil || vitAdapter != nil || videoAdapter != nil || runsInDiffusion }
    /// Whether it runs inside a diffusion transformer's sampler (in the blocks, or as a caching schedule).
    public var runsInDiffusion: Bool { diffusionAdapter != nil || samplerCaching }
    public var hasFlopsPlan: Bool { flopsPlan != nil }
    public var hasScoringBenchmark: Bool { scoring != nil }
}
