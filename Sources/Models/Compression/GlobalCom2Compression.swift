import Foundation
import Tensors
import TokenCompression

/// GlobalCom² on LLaVA-NeXT images: the thumbnail's head-mean pre-softmax [CLS] logits of the
/// last ViT layer set each crop's retention ratio, crops keep their top tokens by local + resized
/// global logits, the thumbnail keeps its top `int(N·r)` (in descending score order).
///
/// The budget becomes the retention ratio r (a count k ⇒ r = k / all patch rows of the image).
/// The selection is the method's; the layout is the runtime's NeXT packing (true grid positions,
/// unpadded, one `image_newline` per row that kept a patch), not the code's quirks (valid-index
/// placement, a newline after every padded row) — the report says so. A single-tile image
/// (LLaVA-1.5) is an explicit no-op: the method only compresses AnyRes crops.
final class GlobalCom2Hook: CompressionHook, VisionFeatureHook {
    let budget: Budget
    let captureRequest = VisionCaptureRequest(attention: [-1: .logits(rows: [0])])
    /// Single-tile images are a no-op: record nothing there (the tower keeps its fused path).
    func captureRequest(tileCount: Int) -> VisionCaptureRequest { tileCount > 1 ? captureRequest : .none }

    init(budget: Budget) throws {
        self.budget = budget
        super.init(method: "globalcom2", policy: .notApplicable)
    }

    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]? {
        let tiles = image.tiles
        let total = image.visualRows
        let resolution = try budget.resolve(over: total)
        countImage(image, requested: resolution.requested)
        func unchanged(_ why: String) -> [KeptFeatures]? {
            noOp("image \(image.imageIndex): \(why)")
            keepAll(image)
            return nil
        }
        guard tiles.count > 1, let grid = image.tileGrid, let size = image.imageSize else {
            return unchanged("GlobalCom² compresses LLaVA-NeXT AnyRes crops only; a single-tile (LLaVA-1.5) image is passed unchanged")
        }
        guard case .keep(let requested) = resolution else {
            if case .noOp(_, let why) = resolution { return unchanged(why) }
            return nil
        }
        guard tiles[0].classTokenDropped else {
            throw ModelError("globalcom2 needs the vision tower's [CLS] token (a CLIP tower with the 'default' feature strategy)")
        }
        let n = tiles[0].features.rows, side = tiles[0].patchGrid.rows
        // [P, N] head-mean logits of the [CLS] row, [CLS] column dropped.
        var logits = Tensor(zeros: [tiles.count, n])
        for (p, t) in tiles.enumerated() {
            guard let c = t.captures.values.first?.attention, c.isLogits, c.rows == [0] else {
                throw ModelError("globalcom2: the vision tower did not record the [CLS] logits of the last layer")
            }
            let heads = c.values.shape[0], keys = c.values.shape[2]
            let v = c.values.values
            for h in 0..<heads { for j in 0..<n { logits[p, j] += v[h * keys + 1 + j] / Float(heads) } }
        }
        let ratio = min(1, Double(requested) / Double(total))
        let start = scoringStart()
        let features = try Tensor.concatenateRows(tiles.map(\.features))
        let method = try GlobalCom2(.init(retentionRatio: ratio))
        let r = try method.compress(clsLogits: logits, features: features, imageNewline: [Float](repeating: 0, count: features.columns),
                                    grid: .init(numPatchWidth: grid.cols, numPatchHeight: grid.rows, patchesPerSide: side,
                                                originalWidth: size.width, originalHeight: size.height))
        addScoringTime(since: start)
        var perTile = [[Int]](repeating: [], count: tiles.count)
        perTile[0] = r.thumbnailKept
        for k in r.kept where k >= n { perTile[k / n].append(k % n) }
        var out: [KeptFeatures] = []
        for (p, t) in tiles.enumerated() {
            // A crop that kept nothing still needs one row for the runtime; keep its first valid patch.
            let idx = perTile[p].isEmpty ? [0] : perTile[p]
            if perTile[p].isEmpty { note("crop \(p) kept no token; its patch 0 is kept so the tile is not empty") }
            out.append(try KeptFeatures.selecting(idx, of: t))
            report.keptIndices += idx.map { p * n + $0 }
            report.achievedVisualTokens += idx.count
        }
        note("retention ratio r = \(String(format: "%.4f", ratio)), crop ratios \(r.cropScales.map { String(format: "%.3f", $0) }), crop budgets \(r.cropBudgets); thumbnail keeps \(r.thumbnailKept.count)")
        note("kept rows packed by the runtime (true grid positions, unpadded, image_newline per kept row), not the code's valid-index placement and per-padded-row newlines")
        return out
    }
}

public enum GlobalCom2Compression {
    public static let adapter = InModelAdapter(method: "globalcom2", parameters: [], build: make)

    static func make(budget: Budget, parameters p: MethodParameters) throws -> ModelCompression {
        let hook = try GlobalCom2Hook(budget: budget)
        return ModelCompression(info: GlobalCom2.info, budget: budget, hook: hook)
    }
}
