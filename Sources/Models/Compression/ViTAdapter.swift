import Foundation
import Tensors
import TokenCompression

/// What a ViT method needs to know about the model before it runs: depth (schedules, pruning blocks),
/// width (adapter files), the patch grid (merge maps) and the class tokens in front of the patches.
public struct ViTModelShape: Sendable, Equatable {
    public var layers: Int
    public var width: Int
    public var heads: Int
    public var patchesPerSide: Int
    /// [CLS] (ViT, CLIP) or [CLS] + distillation token (DeiT).
    public var classTokens: Int

    public var patchCount: Int { patchesPerSide * patchesPerSide }
    public var tokenCount: Int { patchCount + classTokens }

    public init(layers: Int, width: Int, heads: Int, patchesPerSide: Int, classTokens: Int) {
        self.layers = layers
        self.width = width
        self.heads = heads
        self.patchesPerSide = patchesPerSide
        self.classTokens = classTokens
    }

    /// A ViT or DeiT image classifier.
    public init(_ c: ViTClassifierConfig) {
        self.init(layers: c.layers, width: c.hiddenSize, heads: c.heads, patchesPerSide: c.patchesPerSide, classTokens: c.specialTokens)
    }

    /// CLIP's vision tower (`CLIPModel`).
    public init(clipVision c: CLIPVisionConfig) {
        self.init(layers: c.layers, width: c.hiddenSize, heads: c.heads, patchesPerSide: c.patchesPerSide, classTokens: c.hasClassToken ? 1 : 0)
    }
}

/// The parameter a classifier sweep varies for a method, with its default values (`tokc bench` on a
/// ViT folder: ToMe `r` 2…16, EViT `keep_rate` 0.9/0.7/0.5).
public struct ViTSweep: Sendable, Equatable {
    public let parameter: String
    public let values: [String]
}

/// How one method runs inside the blocks of a ViT (`ViTClassifier`, CLIP's vision tower): the `--param`
/// names it accepts, what it cannot run without, the values a classifier sweep tries, and how its
/// `ViTBlockHook` is built. The ViT counterpart of `InModelAdapter` (which builds LLaVA hooks); a
/// method's catalog entry names either or both.
public struct ViTAdapter {
    public let method: String
    public let parameters: [String]
    /// What the method cannot run without (Sparse-Tuning: its adapters file), in words; nil when its
    /// parameters' defaults are enough. Such a method joins a sweep only when that is given.
    public let requires: String?
    public let sweep: ViTSweep
    let build: (MethodParameters, ViTModelShape) throws -> ViTCompression

    init(method: String, parameters: [String], requires: String? = nil, sweep: ViTSweep,
         build: @escaping (MethodParameters, ViTModelShape) throws -> ViTCompression) {
        self.method = method
        self.parameters = parameters
        self.requires = requires
        self.sweep = sweep
        self.build = build
    }

    /// The method for a model of `shape` with its NAME=VALUE `parameters`; unknown names are refused
    /// with the accepted list before the builder runs.
    public func make(parameters values: [String: String] = [:], shape: ViTModelShape) throws -> ViTCompression {
        let unknown = Set(values.keys).subtracting(parameters)
        guard unknown.isEmpty else {
            throw ModelCompressionError.invalidParameter("\(method): unknown parameter(s) \(unknown.sorted().joined(separator: ", ")); accepted: \(parameters.sorted().joined(separator: ", "))")
        }
        guard shape.layers >= 1, shape.patchesPerSide >= 1, shape.classTokens >= 0 else {
            throw ModelCompressionError.invalidParameter("\(method): model shape \(shape) has no blocks or no patches")
        }
        return try build(MethodParameters(method, values), shape)
    }
}

/// A ViT method ready to plug into a forward pass: pass `hook` to `ViTClassifier.forward` (or CLIP's
/// `imageFeatures`/`zeroShot`), then read what it did. One instance serves any number of forwards; each
/// forward starts its report afresh.
public final class ViTCompression {
    public let info: MethodInfo
    public let shape: ViTModelShape
    /// The setting in a table's words ("r=8", "r=8 decreasing", "keep_rate=0.7").
    public let setting: String
    /// A head the method brings in place of the classifier's own (Sparse-Tuning's trained head), applied
    /// by the caller to `ViTClassifierOutput.classFeatures`; nil: the model's head.
    public internal(set) var head: ViTReplacementHead?
    let methodHook: ViTMethodHook

    init(info: MethodInfo, shape: ViTModelShape, setting: String, hook: ViTMethodHook) {
        self.info = info
        self.shape = shape
        self.setting = setting
        methodHook = hook
    }

    public var hook: ViTBlockHook { methodHook }

    /// Notes, token counts per image (entering → after the last block) and the method's own time, of the last forward.
    public func report() -> CompressionRunReport { methodHook.lastReport() }

    /// Per image of the last forward: for each row after the last block, the patches it stands for
    /// (class-token rows left out; ToMe's source map, EViT's kept patches and its fused token).
    public func tokenGroups() -> [[[Int]]] {
        let n = shape.classTokens
        return methodHook.sources.map { rows in rows.map { $0.filter { $0 >= n }.map { $0 - n } }.filter { !$0.isEmpty } }
    }

    /// Per image of the last forward: patches no row holds any more (EViT without fusion).
    public func droppedPatches() -> [Set<Int>] {
        tokenGroups().map { groups in Set(0..<shape.patchCount).subtracting(groups.joined()) }
    }

    /// FLOPs the method added to each image of the last forward beyond the blocks (Sparse-Tuning's adapters).
    public func extraFlops() -> [Double] { methodHook.extraFlops }
}

/// The lifecycle every ViT hook shares: a report per forward (started at the first image's embedded
/// rows), the source map of every row (original token indices, class tokens included), notes given once
/// per forward, and the four hook points as overridable methods (the protocol's defaults would not
/// dispatch to a subclass).
class ViTMethodHook: CompressionHook, ViTBlockHook {
    let shape: ViTModelShape
    /// Per image, per current row: the original tokens it holds.
    var sources: [[[Int]]] = []
    var extraFlops: [Double] = []
    /// Notes every forward repeats (settings found when the hook was built).
    var startNotes: [String] = []
    private var noted = Set<String>()

    init(method: String, shape: ViTModelShape) {
        self.shape = shape
        super.init(method: method, policy: .notApplicable)
    }

    func attentionRecord(block: Int) -> AttentionRecord { .none }
    var proportionalAttention: Bool { false }
    func afterAttention(_ step: ViTBlockStep) throws -> ViTTokenUpdate? { nil }
    func afterBlock(_ step: ViTBlockStep, output: Tensor) throws -> Tensor? { nil }

    func beforeBlocks(image: Int, hidden: Tensor) throws {
        if image == 0 {
            beginReport(visualBefore: hidden.rows, requested: hidden.rows, achieved: hidden.rows, policy: .notApplicable)
            sources = []
            extraFlops = []
            noted = []
            for n in startNotes { noteOnce(n) }
        }
        guard image == sources.count else {
            throw ModelError("\(method): images must arrive in order (got image \(image) after \(sources.count))")
        }
        sources.append((0..<hidden.rows).map { [$0] })
        extraFlops.append(0)
        try embedded(image: image, hidden: hidden)
    }

    /// Each image's embedded rows, after the shared bookkeeping.
    func embedded(image: Int, hidden: Tensor) throws {}

    /// A note once per forward, however many images or blocks repeat it.
    func noteOnce(_ text: String) {
        if noted.insert(text).inserted { note(text) }
    }

    /// Call after every change of an image's rows: keeps the report's token count (the first image's;
    /// the methods here give every image the same count).
    func recordRows(_ rows: Int, image: Int) {
        if image == 0 {
            report.achievedVisualTokens = rows
            report.requestedVisualTokens = rows
        }
    }

    /// The block's keys averaged over heads, `[rows, headDim]` (ToMe's metric `k.mean(1)`).
    static func headMeanKeys(_ step: ViTBlockStep) -> Tensor {
        let n = step.keys.rows, h = step.heads, d = step.headDim
        var out = Tensor(zeros: [n, d])
        let inv = 1 / Float(h)
        out.withUnsafeMutableBufferPointer { o in
            step.keys.withUnsafeBufferPointer { k in
                for i in 0..<n {
                    for head in 0..<h {
                        let row = i * h * d + head * d
                        for j in 0..<d { o[i * d + j] += k[row + j] }
                    }
                    for j in 0..<d { o[i * d + j] *= inv }
                }
            }
        }
        return out
    }
}

/// Parsing shared by the ViT adapters.
enum ViTAdapterParameters {
    /// `blocks=3,6,9`: ascending, distinct, inside the model.
    static func blocks(_ p: MethodParameters, shape: ViTModelShape, default d: [Int]) throws -> [Int] {
        guard let list = try p.intList("blocks") else { return d }
        guard !list.isEmpty, list == list.sorted(), Set(list).count == list.count, list.allSatisfy({ $0 >= 0 && $0 < shape.layers }) else {
            throw ModelCompressionError.invalidParameter("\(p.method): blocks=\(p.string("blocks") ?? "") must be ascending, distinct block indices in 0..<\(shape.layers)")
        }
        return list
    }

    /// A keep rate in (0, 1].
    static func keepRate(_ p: MethodParameters, default d: Double) throws -> Double {
        let k = try p.double("keep_rate", default: d)
        guard k > 0, k <= 1 else { throw ModelCompressionError.invalidParameter("\(p.method): keep_rate=\(k) must be in (0, 1]") }
        return k
    }

    /// "0.7" for 0.7, "0.75" for 0.75: the shortest text of a rate.
    static func rateText(_ v: Double) -> String {
        let s = String(format: "%.4f", v)
        var t = Substring(s)
        while t.last == "0" { t.removeLast() }
        if t.last == "." { t.removeLast() }
        return String(t)
    }
}
