import Tensors
import TokenCompression

/// Builders of the vision-side methods. All read the feature layer (LLaVA's default −2, i.e. the
/// encoder layer whose output is `hidden_states[-2]`; `vision_layer` changes it) unless the
/// method's code reads another layer (PruMerge: the last layer's q/k).
public enum VisionMethods {
    public static let fasterVLMAdapter = InModelAdapter(method: "fastervlm", parameters: ["vision_layer"], build: fasterVLM)
    public static let visionZipAdapter = InModelAdapter(method: "visionzip", parameters: ["vision_layer", "contextual"], build: visionZip)
    public static let pruMergeAdapter = InModelAdapter(method: "prumerge", parameters: ["vision_layer", "adaptive"]) {
        try pruMerge(plus: false, budget: $0, parameters: $1)
    }
    public static let pruMergePlusAdapter = InModelAdapter(method: "prumerge_plus", parameters: ["vision_layer"]) {
        try pruMerge(plus: true, budget: $0, parameters: $1)
    }
    public static let poolingAdapter = InModelAdapter(method: "pooling", parameters: ["window"], build: pooling)

    static func featureLayer(_ p: MethodParameters) throws -> Int { try p.int("vision_layer", default: -2) }

    static func clsCapture(_ layer: Int, qkv: Bool = false) -> VisionCaptureRequest {
        VisionCaptureRequest(attention: [layer: .probabilities(rows: [0])], qkvLayers: qkv ? [layer] : [])
    }

    /// FasterVLM: top-T patches by head-mean [CLS] attention, raster order.
    static func fasterVLM(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let hook = try VisionSideHook(name: "fastervlm", budget: budget, capture: clsCapture(try featureLayer(p)), needsClassToken: true) { tile, target in
            let r = try FasterVLM.prune(clsAttention: try VisionSideHook.classRow(tile, method: "fastervlm"), features: tile.features,
                                        parameters: .init(visualTokenNum: target))
            return TileChoice(kept: try KeptFeatures(rows: r.keptFeatures, sourceIndices: r.compression.kept))
        }
        return ModelCompression(info: FasterVLM.info, budget: budget, hook: hook)
    }

    /// VisionZip: [CLS] + dominant patches by head-summed [CLS] attention, plus contextual tokens
    /// merged by key similarity. The runtime's 'default' strategy drops [CLS] before the
    /// projector, so the method runs with D = dominant patches + 1 and the [CLS] row is removed
    /// from its output: k = dominant patches + contextual. `contextual` defaults to the README's
    /// 10/64 share of k (at least 1).
    static func visionZip(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let layer = try featureLayer(p)
        let fixedContextual = try p.int("contextual")
        let hook = try VisionSideHook(name: "visionzip", budget: budget, capture: clsCapture(layer, qkv: true), needsClassToken: true) { tile, target in
            let c = fixedContextual ?? max(1, Int((Double(target) * 10 / 64).rounded()))
            guard target > c else {
                throw ModelCompressionError.invalidParameter("visionzip: budget \(target) per tile leaves no dominant token beside \(c) contextual")
            }
            let cls = try VisionSideHook.classRow(tile, method: "visionzip")
            guard let keys = try VisionSideHook.capture(tile, method: "visionzip").keys else {
                throw ModelError("visionzip: the vision tower did not keep the keys of the feature layer")
            }
            let heads = cls.shape[0], width = keys.columns / heads
            // metric = keys averaged over heads, [1+N, headDim].
            var metric = Tensor(zeros: [keys.rows, width])
            for i in 0..<keys.rows {
                for h in 0..<heads { for d in 0..<width { metric[i, d] += keys[i, h * width + d] / Float(heads) } }
            }
            let hidden = try Tensor.concatenateRows([Tensor(zeros: [1, tile.features.columns]), tile.features])
            let r = try VisionZip.compress(clsAttention: cls, hidden: hidden, metric: metric,
                                           parameters: .init(dominant: target - c + 1, contextual: c))
            let rows = try r.tokens.rows(1..<r.tokens.rows)
            let sources = Array(r.dominantKept.dropFirst()).map { $0 - 1 } + r.contextualTargets.map { $0 - 1 }
            return TileChoice(kept: try KeptFeatures(rows: rows, sourceIndices: sources))
        }
        return ModelCompression(info: VisionZip.info, budget: budget, hook: hook)
    }

    /// PruMerge / PruMerge+: IQR outliers of the last layer's [CLS] attention (from its raw q/k),
    /// key-kNN merged, plus a summary token. Adaptive by default (the budget is then reported
    /// but not enforced); `adaptive=false` (PruMerge only) keeps k − 1 tokens + the summary.
    static func pruMerge(plus: Bool, budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let name = plus ? "prumerge_plus" : "prumerge"
        let layer = try p.int("vision_layer", default: -1)
        let adaptive = plus ? true : try p.bool("adaptive", default: true)
        let capture = VisionCaptureRequest(qkvLayers: [layer])
        let hook = try VisionSideHook(name: name, budget: budget, capture: capture, needsClassToken: true, usesBudget: !adaptive) { tile, target in
            let c = try VisionSideHook.capture(tile, method: name)
            guard let q = c.queries, let k = c.keys else { throw ModelError("\(name): the vision tower did not keep q/k of layer \(layer)") }
            let n = tile.features.rows
            let r: PruMergeResult
            if plus {
                do {
                    r = try PruMergePlus().compress(clsQuery: q.row(0), keys: k, features: tile.features)
                } catch CompressionError.unsupportedSetting(let why) {
                    // The reference would fail here; keep the tile whole and say so.
                    return TileChoice(kept: try KeptFeatures.selecting(Array(0..<n), of: tile),
                                      notes: ["\(name): tile \(tile.tile) kept whole (no-op): \(why)"])
                }
            } else {
                let ratio = min(1, (Double(max(target - 1, 1)) + 0.5) / Double(n))
                r = try PruMerge(.init(adaptive: adaptive, reductionRatio: ratio)).compress(clsQuery: q.row(0), keys: k, features: tile.features)
            }
            // The summary token stands at the first patch no kept token occupies (unique, for NeXT packing).
            let used = Set(r.kept)
            let summary = (0..<n).first { !used.contains($0) } ?? r.kept[0]
            var notes: [String] = []
            if adaptive {
                notes.append("\(name): adaptive (IQR outliers): \(r.count) tokens from tile \(tile.tile) whatever the budget asks")
            }
            return TileChoice(kept: try KeptFeatures(rows: r.features, sourceIndices: r.kept + [summary]), notes: notes)
        }
        return ModelCompression(info: plus ? PruMergePlus.info : PruMerge.info, budget: budget, hook: hook)
    }

    /// Spatial pooling: bilinear resampling of the patch grid to the largest aspect-preserving
    /// grid within the budget (`window=W` selects W×W average pooling instead).
    static func pooling(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let window = try p.int("window")
        let hook = try VisionSideHook(name: "pooling", budget: budget, capture: .none, needsClassToken: false, usesBudget: window == nil) { tile, target in
            let mode: SpatialPooling.Mode = window.map { .average(window: $0) } ?? .bilinear(budget: .count(target))
            let (rows, cols) = tile.patchGrid
            let r = try SpatialPooling(.init(mode: mode)).pool(tile.features, rows: rows, cols: cols)
            if r.compression.noOpReason != nil {
                return TileChoice(kept: try KeptFeatures.selecting(Array(0..<tile.features.rows), of: tile),
                                  notes: ["pooling: \(r.compression.noOpReason!)"])
            }
            // Each pooled token stands at the patch under its centre (distinct for a smaller grid).
            var sources: [Int] = []
            for y in 0..<r.outRows {
                for x in 0..<r.outCols {
                    let sy = min(rows - 1, Int((Double(y) + 0.5) * Double(rows) / Double(r.outRows)))
                    let sx = min(cols - 1, Int((Double(x) + 0.5) * Double(cols) / Double(r.outCols)))
                    sources.append(sy * cols + sx)
                }
            }
            return TileChoice(kept: try KeptFeatures(rows: r.features, sourceIndices: sources),
                              notes: tile.tile == 0 ? ["pooling: \(rows)×\(cols) grid → \(r.outRows)×\(r.outCols)"] : [])
        }
        return ModelCompression(info: SpatialPooling.info, budget: budget, hook: hook)
    }
}
