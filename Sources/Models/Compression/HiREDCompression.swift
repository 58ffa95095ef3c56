import Foundation
import Tensors
import TokenCompression

/// HiRED before the projector, both paths of the authors' code.
///
/// - LLaVA-1.5: keep `int(N·rate)` patches by head-summed [CLS] attention of the feature layer.
/// - LLaVA-NeXT: the budget `int(P·N·rate)` is split between thumbnail (share α) and crops by the
///   thumbnail's layer-0 [CLS] attention (`HiRED.budgets`, row-band quirk included), then each
///   partition keeps its top tokens by the feature layer's [CLS] attention.
///
/// The budget becomes the rate: k ⇒ rate = (k + ½) / (P·N), so that `int(P·N·rate)` = k. A crop
/// whose share truncates to zero keeps its best patch (the runtime needs a row per tile; noted).
/// The kept rows are packed by the runtime (unpadded grid, `image_newline`), not by
/// `pack_HiRED_image_features`.
final class HiREDHook: CompressionHook, VisionFeatureHook {
    let budget: Budget
    let alpha: Double
    let featureLayer: Int
    let captureRequest: VisionCaptureRequest

    init(budget: Budget, alpha: Double, featureLayer: Int) throws {
        guard alpha.isFinite, alpha >= 0, alpha <= 1 else { throw ModelCompressionError.invalidParameter("hired: alpha \(alpha) must be in [0, 1]") }
        self.budget = budget
        self.alpha = alpha
        self.featureLayer = featureLayer
        captureRequest = VisionCaptureRequest(attention: [0: .probabilities(rows: [0]), featureLayer: .probabilities(rows: [0])])
        super.init(method: "hired", policy: .notApplicable)
    }

    /// [CLS] rows `[heads, 1+N]` of the earliest (layer 0) and latest (feature layer) captures.
    static func classRows(_ tile: VisionTileFeatures) throws -> (top: Tensor, bottom: Tensor) {
        let layers = tile.captures.keys.sorted()
        func row(_ l: Int) throws -> Tensor {
            guard let a = tile.captures[l]?.attention, a.rows == [0], !a.isLogits else {
                throw ModelError("hired: the vision tower did not record the [CLS] attention of layer \(l)")
            }
            return try a.values.reshaped([a.values.shape[0], a.values.shape[2]])
        }
        guard let first = layers.first, let last = layers.last else { throw ModelError("hired: no vision attention was recorded") }
        return (try row(first), try row(last))
    }

    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        let tiles = image.tiles
        let n = tiles[0].features.rows, total = tiles.count * n
        let resolution = try budget.resolve(over: total, of: "visual tokens of image \(image.imageIndex)")
        countImage(image, requested: resolution.requested)
        guard case .keep(let requested) = resolution else {
            if case .noOp(_, let why) = resolution { noOp(why) }
            keepAll(image)
            return nil
        }
        guard tiles[0].classTokenDropped else {
            throw ModelError("hired needs the vision tower's [CLS] token (a CLIP tower with the 'default' feature strategy)")
        }
        let rate = min(1, (Double(requested) + 0.5) / Double(total))
        let parameters = HiRED.Parameters(tokenBudgetRate: rate, alpha: alpha)
        let rows = try tiles.map(Self.classRows)
        let start = scoringStart()
        let result: HiRED.Result
        if tiles.count == 1 {
            result = try HiRED.select(bottomAttention: rows[0].bottom, parameters: parameters)
        } else {
            guard let grid = image.tileGrid else { throw ModelError("hired: a multi-tile image without its tile grid") }
            result = try HiRED.select(topAttention: rows[0].top, bottomAttention: rows.map(\.bottom),
                                      grid: .init(columns: grid.cols, rows: grid.rows), parameters: parameters)
            note("budget split \(result.budgets.perPartition) (thumbnail first) by layer-0 thumbnail attention; kept rows packed by the runtime, not pack_HiRED_image_features")
        }
        addScoringTime(since: start)
        var out: [KeptFeatures] = []
        for (p, t) in tiles.enumerated() {
            var kept = result.keptPerPartition[p]
            if kept.isEmpty {
                let s = try HiRED.scores(clsAttention: rows[p].bottom)
                kept = Selection.topK(s, 1)
                note("tile \(p) got no budget; its best patch is kept so the tile is not empty")
            }
            out.append(try KeptFeatures.selecting(kept, of: t))
            report.keptIndices += kept.map { p * n + $0 }
            report.achievedVisualTokens += kept.count
        }
        return out
    }
}

public enum HiREDCompression {
    public static let adapter = InModelAdapter(method: "hired", parameters: ["vision_layer", "alpha"], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let hook = try HiREDHook(budget: budget, alpha: try p.double("alpha", default: 0.5), featureLayer: try p.int("vision_layer", default: -2))
        return ModelCompression(info: HiRED.info, budget: budget, hook: hook)
    }
}
