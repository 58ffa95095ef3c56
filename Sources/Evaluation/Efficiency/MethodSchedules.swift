import Foundation
import TokenCompression

/// Per-method visual-token plans from a keep budget, following each method's own counting rules
/// (taken from the method code where it exposes them) rather than assuming "keep N everywhere".
///
/// The budget `keep` means what the method's main knob means: DART's M (which keeps 4 + 8·⌊M/8⌋),
/// FastV's k, SparseVLM's `retained_tokens` setting (192/128/64), FasterVLM's T and VisionZip's
/// D + C *per image or crop*, PDrop's layer-averaged count (solved for λ), and so on; see
/// `describe`. Methods whose counts depend on the image (PruMerge's adaptive outliers, MustDrop's
/// thresholds) need an explicit `keep` or a custom `--schedule`.
public enum MethodSchedules {
    /// What the plan needs to know about the model and input.
    public struct Context: Sendable {
        /// Uncompressed visual tokens N in the LLM input.
        public var visual: Int
        public var llmLayers: Int
        public var visionLayers: Int
        /// LLM tokens one encoder pass yields (576 for CLIP-L/336); 0 when image-dependent.
        public var tokensPerPass: Int
        /// Encoder tokens per pass (patches + [CLS]).
        public var encoderTokensPerPass: Int
        /// A video's frames and pooled tokens per frame (then `visual` = frames × perFrame + 1); nil: an image.
        public var video: (frames: Int, tokensPerFrame: Int)?

        public init(visual: Int, llmLayers: Int, visionLayers: Int = 24, tokensPerPass: Int = 576, encoderTokensPerPass: Int = 577,
                    video: (frames: Int, tokensPerFrame: Int)? = nil) {
            self.visual = visual
            self.llmLayers = llmLayers
            self.visionLayers = visionLayers
            self.tokensPerPass = video == nil ? tokensPerPass : 0
            self.encoderTokensPerPass = encoderTokensPerPass
            self.video = video
        }

        /// Encoder passes (base + crops for AnyRes).
        var passes: Int { tokensPerPass > 0 ? max(1, (visual + tokensPerPass - 1) / tokensPerPass) : 1 }
        /// Tokens per pass used by per-image rules.
        var perPass: Int { tokensPerPass > 0 ? tokensPerPass : visual }
    }

    typealias Builder = (_ keep: Int?, _ c: Context) throws -> VisualTokenPlan

    /// Methods with an analytic plan (their `MethodCatalog` entry names the builder).
    public static var supported: [String] { MethodCatalog.all.filter { $0.hasFlopsPlan }.map { $0.name }.sorted() }

    /// The plan of `method` with budget `keep` (nil: the method's paper default, where it has one).
    public static func plan(method: String, keep: Int?, context c: Context) throws -> VisualTokenPlan {
        let name = method.lowercased()
        if name == "none" { return .uncompressed(visual: c.visual, layers: c.llmLayers) }
        guard let build = MethodCatalog.entry(named: name)?.flopsPlan else {
            let extra = name == "mustdrop" ? " (mustdrop's counts are threshold- and image-dependent: pass --schedule)" : ""
            throw FlopsError.unknownMethod("no analytic schedule for method '\(method)'\(extra); supported: \(supported.joined(separator: ", ")), none")
        }
        guard c.visual >= 0, c.llmLayers > 0 else {
            throw FlopsError.invalidRequest("visual tokens \(c.visual) and LLM layers \(c.llmLayers) must be non-negative / positive")
        }
        if let k = keep, k < 0 { throw FlopsError.invalidRequest("--keep \(k) is negative") }
        do { return try build(keep, c) } catch let e as CompressionError {
            throw FlopsError.invalidRequest("\(name): \(e)")
        }
    }

    // MARK: - LLM-side

    /// DART: M = keep (default 128) keeps 4 + 8·⌊M/8⌋ from layer 2; on AnyRes input the NeXT
    /// branch `int(min(retain, N − 4) // 8)` applies with retain = keep (default 320).
    static func dart(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let anyres = c.passes > 1
        let rule: DART.PickRule = anyres ? .nextRetain(keep ?? 320) : .truncation(keep ?? 128)
        let method = try DART(DART.Parameters(rule: rule))
        let s = try method.schedule(layers: c.llmLayers, imageCount: c.visual).tokensPerLayer
        let label = anyres ? "NeXT retain=\(keep ?? 320)" : "M=\(keep ?? 128)"
        return VisualTokenPlan(method: "dart", settings: "K=2, \(label) → keeps \(s.last ?? 0) (4 + 8·TOKEN_TOPK)",
                               llmVisual: s, projectorTokens: c.visual)
    }

    /// FastV: K = 2; keep = `fast_v_attention_rank` k, default R = 50 % (round half to even).
    static func fastv(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let p = FastV.Parameters(layer: 2, keep: keep.map { .count($0) } ?? .reductionRatio(0.5))
        let k = min(c.visual, try p.keptCount(imageCount: c.visual))
        let s = TokenSchedule.singleCut(layers: c.llmLayers, at: 2, before: c.visual, after: k).tokensPerLayer
        let r = c.visual > 0 ? 100 * Double(c.visual - k) / Double(c.visual) : 0
        return VisualTokenPlan(method: "fastv", settings: "K=2, keep \(k) (R=\(String(format: "%.1f", r))%)",
                               llmVisual: s, projectorTokens: c.visual)
    }

    /// Score-then-keep baselines of the DART table: one cut to `keep` at the input of layer 2.
    static func llmLayer2Baseline(_ name: String) -> Builder {
        { keep, c in
            guard let keep else { throw FlopsError.invalidRequest("\(name) needs --keep N") }
            let k = min(keep, c.visual)
            return VisualTokenPlan(method: name, settings: "K=2, keep \(k)",
                                   llmVisual: TokenSchedule.singleCut(layers: c.llmLayers, at: 2, before: c.visual, after: k).tokensPerLayer,
                                   projectorTokens: c.visual)
        }
    }

    /// SparseVLM v1.5: the official absolute schedules (keep ∈ 192/128/64) at layers 2/6/15,
    /// recycled cluster tokens included, exactly as `SparseVLM.tokenSchedule` counts them.
    static func sparseVLM(_ keep: Int?, _ c: Context) throws -> VisualTokenPlan {
        let setting = keep ?? 192
        let p = SparseVLM.Parameters(retainedTokens: setting)
        let (schedule, averaged) = try SparseVLM.tokenSchedule(layers: c.llmLayers, imageTokens: c.visual, parameters: p)
        return VisualTokenPlan(method: "sparsevlm",
                               settings: "retained_tokens=\(setting): keep \(p.schedule) at layers \(p.sparseLayers) + recycled; code's average \(String(format: "%.2f", averaged))",
                               llmVisual: schedule.tokensPerLayer, projectorTokens: c.visual)
    }
}
