import Foundation
import Tensors
import TokenCompression

/// What a vision-side method did to one tile.
struct TileChoice {
    var kept: KeptFeatures
    var notes: [String] = []
}

/// A `VisionFeatureHook` for methods that reduce each tile's features before the projector
/// (FasterVLM, VisionZip, PruMerge(+), pooling; HiRED and GlobalCom² need the whole image and
/// have their own hooks).
///
/// The budget counts visual rows of one image. LLaVA-1.5 has one tile; for LLaVA-NeXT a ratio
/// applies to every tile and a count is split evenly over the tiles (thumbnail + crops), and
/// the runtime packs the kept rows into its unpadded grid with `image_newline` (the methods'
/// own NeXT layouts are not reproduced; the report says so). The report's kept indices are
/// `tile·featuresPerTile + patch`, per image, concatenated over images.
final class VisionSideHook: CompressionHook, VisionFeatureHook {
    typealias SelectTile = (_ tile: VisionTileFeatures, _ target: Int) throws -> TileChoice

    let budget: Budget
    let captureRequest: VisionCaptureRequest
    /// The method needs the [CLS] row (CLIP towers with the 'default' strategy).
    let needsClassToken: Bool
    let select: SelectTile
    /// Whether the method takes its size from the budget (false: adaptive methods such as PruMerge).
    let usesBudget: Bool

    init(name: String, budget: Budget, capture: VisionCaptureRequest, needsClassToken: Bool, usesBudget: Bool = true,
         select: @escaping SelectTile) throws {
        self.budget = budget
        captureRequest = capture
        self.needsClassToken = needsClassToken
        self.usesBudget = usesBudget
        self.select = select
        super.init(method: name, policy: .notApplicable)
    }

    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        let tiles = image.tiles
        let total = image.visualRows
        let targets = try budget.split(over: tiles.map { $0.features.rows })
        let requested = budget.isCount ? try budget.requested(outOf: total) : targets.reduce(0, +)
        countImage(image, requested: requested)
        if needsClassToken, let t = tiles.first, !t.classTokenDropped {
            throw ModelError("\(method) needs the vision tower's [CLS] token (a CLIP tower with the 'default' feature strategy); this model has none")
        }
        if tiles.count > 1 {
            note("LLaVA-NeXT image \(image.imageIndex): budget applied per tile (\(tiles.count) tiles), kept rows packed in the runtime's unpadded grid with image_newline; the method's own AnyRes layout is not reproduced")
        }
        if usesBudget, case .noOp(_, let why) = try budget.resolve(over: total, of: "visual tokens of image \(image.imageIndex)") {
            noOp(why)
            keepAll(image)
            return nil
        }
        var out: [KeptFeatures] = []
        for (t, target) in zip(tiles, targets) {
            let start = scoringStart()
            let choice = try select(t, target)
            addScoringTime(since: start)
            report.notes += choice.notes
            report.achievedVisualTokens += choice.kept.rows.rows
            report.keptIndices += choice.kept.sourceIndices.map { t.tile * t.features.rows + $0 }
            out.append(choice.kept)
        }
        return out
    }

    /// The single capture of the tile (methods here request one layer; the tower keys captures
    /// by non-negative layer index).
    static func capture(_ tile: VisionTileFeatures, method: String) throws -> VisionLayerCapture {
        guard tile.captures.count == 1, let c = tile.captures.values.first else {
            throw ModelError("\(method): expected one captured vision layer, found \(tile.captures.keys.sorted())")
        }
        return c
    }

    /// The [CLS] query row of the captured attention, `[heads, 1+N]`.
    static func classRow(_ tile: VisionTileFeatures, method: String) throws -> Tensor {
        guard let a = try capture(tile, method: method).attention, a.rows == [0], !a.isLogits else {
            throw ModelError("\(method): the vision tower did not record the [CLS] attention probabilities")
        }
        return try a.values.reshaped([a.values.shape[0], a.values.shape[2]])
    }
}

extension VisionImageFeatures {
    /// Feature rows over all tiles (the image's visual tokens before any selection).
    var visualRows: Int { tiles.reduce(0) { $0 + $1.features.rows } }
}

extension CompressionHook {
    /// Counts one image of a vision-side selection: a fresh report at the prompt's first image,
    /// then this image's visual tokens and the count asked for.
    func countImage(_ image: VisionImageFeatures, requested: Int) {
        if image.imageIndex == 0 { beginReport(visualBefore: 0, requested: 0, achieved: 0, policy: .notApplicable) }
        report.visualTokensBefore += image.visualRows
        report.requestedVisualTokens += requested
    }

    /// Records that every row of the image was kept (a no-op on it), tile-offset indices.
    func keepAll(_ image: VisionImageFeatures) {
        report.achievedVisualTokens += image.visualRows
        for t in image.tiles { report.keptIndices += (0..<t.features.rows).map { t.tile * t.features.rows + $0 } }
    }
}

