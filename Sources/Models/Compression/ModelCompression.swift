import Foundation
import TokenCompression

/// A compression method ready to plug into a model run: the hooks it needs and a report of what it did.
///
/// The CLI (`tokc run`, `tokc bench`) asks `MethodCatalog.compression` (its adapter) for a method by name and
/// budget, passes `prefillHook` / `visionHook` to `LlavaModel.prefill`, then reads `report()`.
public final class ModelCompression {
    public let info: MethodInfo
    /// Budget over the visual tokens, as the user gave it.
    public let budget: Budget
    /// Decoder-side hook (LLM-side methods); nil for vision-side methods.
    public let prefillHook: PrefillHook?
    /// Vision-side hook (before the projector); nil for LLM-side methods.
    public let visionHook: VisionFeatureHook?
    /// Video hook (LLaVA-OneVision: on each video's pooled rows, before the LLM); nil for image methods.
    public let videoHook: VideoTokenHook?
    /// Decode-time hook (which cache rows each decoding step attends to: DyCoke); pass it to `generate`.
    public let decodeHook: DecodeHook?
    private let reporter: () -> CompressionRunReport

    public init(info: MethodInfo, budget: Budget, prefillHook: PrefillHook?, visionHook: VisionFeatureHook?,
                videoHook: VideoTokenHook? = nil, decodeHook: DecodeHook? = nil,
                report: @escaping () -> CompressionRunReport) {
        self.info = info
        self.budget = budget
        self.prefillHook = prefillHook
        self.visionHook = visionHook
        self.videoHook = videoHook
        self.decodeHook = decodeHook
        reporter = report
    }

    /// What the method did in the last run (call after prefill).
    public func report() -> CompressionRunReport { reporter() }
}

/// What a compressor did during one prefill: the facts a fair comparison needs.
public struct CompressionRunReport: Sendable {
    /// Visual tokens before compression.
    public var visualTokensBefore: Int
    /// Visual tokens the budget asked for.
    public var requestedVisualTokens: Int
    /// Visual tokens actually present after compression (kept + merged).
    public var achievedVisualTokens: Int
    /// Indices into the original (expanded) prompt of the tokens kept by LLM-side pruning, or, for
    /// vision-side methods, indices into the image's visual tokens (per image, concatenated).
    public var keptIndices: [Int]
    public var positionPolicy: PositionPolicy
    /// Seconds spent in the method's own scoring and selection (not the model).
    public var scoringSeconds: Double
    /// Explicit notes: no-op reasons, quirks that applied, fallbacks.
    public var notes: [String]
    /// For an LLM-side method whose vision stage already reordered or merged the visual rows
    /// (MustDrop's window merge): the patches each visual row entering the LLM stands for (a merged
    /// window: all of its patches), so keep maps show what reaches the LLM. nil: row i is patch i.
    public var visualRowPatches: [[Int]]? = nil

    public init(visualTokensBefore: Int, requestedVisualTokens: Int, achievedVisualTokens: Int, keptIndices: [Int],
                positionPolicy: PositionPolicy, scoringSeconds: Double, notes: [String]) {
        self.visualTokensBefore = visualTokensBefore
        self.requestedVisualTokens = requestedVisualTokens
        self.achievedVisualTokens = achievedVisualTokens
        self.keptIndices = keptIndices
        self.positionPolicy = positionPolicy
        self.scoringSeconds = scoringSeconds
        self.notes = notes
    }
}

extension CompressionRunReport {
    /// A report with nothing counted yet (before a prefill, or at the start of a new one).
    public static func empty(_ policy: PositionPolicy, note: String? = nil) -> CompressionRunReport {
        CompressionRunReport(visualTokensBefore: 0, requestedVisualTokens: 0, achievedVisualTokens: 0, keptIndices: [],
                             positionPolicy: policy, scoringSeconds: 0, notes: note.map { [$0] } ?? [])
    }
}

public enum ModelCompressionError: Error, CustomStringConvertible {
    case unsupportedMethod(String, String)
    case invalidParameter(String)

    public var description: String {
        switch self {
        case .unsupportedMethod(let name, let why): return "method '\(name)': \(why)"
        case .invalidParameter(let why): return "invalid parameter: \(why)"
        }
    }
}
