import Foundation
import Tensors

/// GlobalCom² (Liu et al., AAAI 2026, arXiv 2501.05179), LLaVA-NeXT only: the thumbnail's [CLS]
/// logits decide how many tokens each AnyRes crop keeps ("global to local") and, together with the
/// crop's own [CLS] logits, which ones. The thumbnail itself keeps its top `int(N·r)` tokens.
///
/// Follows `llava/model/llava_arch.py` of xuyang-liu16/GlobalCom2 (`compress_thumbnail`,
/// `generate_scale_for_crop_features`, `compress_crops`, `interpolate_and_split_cls_attn_scores`,
/// `select_topk_crop_features`), including its layout quirks (see `compress`).
public struct GlobalCom2 {
    public static let info = MethodInfo(
        name: "globalcom2", displayName: "GlobalCom²", domain: .imageVLM, families: [.prune],
        placement: .beforeProjector,
        signals: [.attentionLogits, .clsAttention, .tokenLayout, .hiddenStates],
        needsAttentionProbabilities: true,
        paper: "Compression with Global Guidance: Towards Training-free High-Resolution MLLMs Acceleration (AAAI 2026, arXiv 2501.05179)",
        repository: "xuyang-liu16/GlobalCom2",
        summary: "thumbnail [CLS] logits set per-crop retention ratios; crops keep top tokens by local + resized global [CLS] logits")

    public struct Parameters: Sendable, Equatable {
        /// r: the thumbnail keeps `int(N·r)`, crop c keeps `int(N_valid_c · r_c)` (the code's only knob, 0.25).
        public var retentionRatio: Double
        /// τ of the softmax over crop region sums (hard-coded 10).
        public var temperature: Double
        /// false (default) reproduces the code: the kept token with valid-list index v is written at
        /// crop-local raster position v. true places it at its true grid position instead.
        public var placeAtTruePositions: Bool

        public init(retentionRatio: Double = 0.25, temperature: Double = 10, placeAtTruePositions: Bool = false) {
            self.retentionRatio = retentionRatio
            self.temperature = temperature
            self.placeAtTruePositions = placeAtTruePositions
        }
    }

    /// The AnyRes layout of one image: crop grid, tokens per side, original size for unpadding.
    public struct Grid: Sendable, Equatable {
        public var numPatchWidth: Int
        public var numPatchHeight: Int
        public var patchesPerSide: Int
        public var originalWidth: Int
        public var originalHeight: Int

        public init(numPatchWidth: Int, numPatchHeight: Int, patchesPerSide: Int = 24, originalWidth: Int, originalHeight: Int) {
            self.numPatchWidth = numPatchWidth
            self.numPatchHeight = numPatchHeight
            self.patchesPerSide = patchesPerSide
            self.originalWidth = originalWidth
            self.originalHeight = originalHeight
        }
        public var crops: Int { numPatchWidth * numPatchHeight }
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        guard parameters.retentionRatio.isFinite, parameters.retentionRatio > 0, parameters.retentionRatio <= 1 else {
            throw CompressionError.invalidBudget("retention ratio \(parameters.retentionRatio) must be in (0, 1]")
        }
        guard parameters.temperature.isFinite, parameters.temperature > 0 else {
            throw CompressionError.invalidParameter("temperature \(parameters.temperature) must be > 0")
        }
        self.parameters = parameters
    }

    /// - Parameters:
    ///   - clsLogits: `[P, N]` head-mean PRE-softmax [CLS] logits of the last ViT layer, CLS column
    ///     dropped; row 0 = thumbnail, rows 1… = crops in row-major crop order.
    ///   - features: `[P, N, C]` (or `[P·N, C]`) visual tokens in the same order.
    ///   - imageNewline: `[C]` the model's `image_newline` embedding.
    public func compress(clsLogits: Tensor, features: Tensor, imageNewline: [Float], grid: Grid) throws -> GlobalCom2Result {
        let s = grid.patchesPerSide, n = s * s, c = features.columns
        let parts = clsLogits.rank == 2 ? clsLogits.shape[0] : 0
        guard s >= 1, grid.numPatchWidth >= 1, grid.numPatchHeight >= 1, grid.originalWidth >= 1, grid.originalHeight >= 1 else {
            throw CompressionError.invalidParameter("grid \(grid) needs positive sizes")
        }
        guard clsLogits.rank == 2, clsLogits.columns == n, features.rows == parts * n, imageNewline.count == c else {
            throw CompressionError.shapeMismatch("cls logits \(clsLogits.shape), features \(features.shape), newline [\(imageNewline.count)] do not match P partitions of \(s)×\(s) tokens")
        }
        if parts == 1 {
            // The code compresses only multi-crop images; a lone base image passes with one newline.
            let out = try Tensor.concatenateRows([features, Tensor(shape: [1, c], values: imageNewline)])
            return GlobalCom2Result(
                cropScales: [], cropValidCounts: [], cropBudgets: [], thumbnailKept: Array(0..<n), cropKeptValid: [],
                kept: Array(0..<n), output: out, outputSource: Array(0..<n) + [-1],
                compression: .noOp(tokenCount: n, requested: n, policy: .notApplicable,
                                   reason: "single image without crops: GlobalCom² does not compress it"))
        }
        guard parts == 1 + grid.crops else {
            throw CompressionError.shapeMismatch("\(parts) partitions, but a \(grid.numPatchWidth)×\(grid.numPatchHeight) crop grid needs \(1 + grid.crops)")
        }
        let r = parameters.retentionRatio
        let thumb = clsLogits.row(0)

        // Thumbnail: top int(N·r) logits, emitted in DESCENDING score order (torch.argsort).
        let thumbnailKept = Selection.topK(thumb, Int(Double(n) * r))

        let scales = cropScales(thumbnail: thumb, grid: grid)
        let unpad = GlobalCom2Unpad(grid: grid)
        let global = GlobalCom2.resizeBilinear(thumb, side: s, height: unpad.validHeight, width: unpad.validWidth)

        // Per crop: L2-normalised local logits + L2-normalised global slice, top int(N_valid·r_c).
        var budgets: [Int] = [], keptValid: [[Int]] = []
        var rowOffset = 0
        for ci in 0..<grid.numPatchHeight {
            var colOffset = 0
            for cj in 0..<grid.numPatchWidth {
                let crop = ci * grid.numPatchWidth + cj
                let valid = unpad.validPositions[crop]
                let (w, h) = unpad.cropSize[crop]
                var slice: [Float] = []
                for y in rowOffset..<(rowOffset + h) { for x in colOffset..<(colOffset + w) { slice.append(global[y * unpad.validWidth + x]) } }
                colOffset += w
                let local = valid.map { clsLogits[1 + crop, $0] }
                guard slice.count == local.count else {
                    throw CompressionError.shapeMismatch("crop \(crop): \(local.count) valid tokens but a \(w)×\(h) global slice")
                }
                // F.normalize: x / max(‖x‖, 1e-12), float32 values.
                let a = L2Norm.normalized(local, eps: 1e-12, accumulation: .float64)
                let b = L2Norm.normalized(slice, eps: 1e-12, accumulation: .float64)
                let combined = zip(a, b).map { $0 + $1 }
                // float64 product, truncated (Python int()).
                let budget = Int(Double(valid.count) * scales[crop])
                budgets.append(budget)
                keptValid.append(Selection.topK(combined, budget).sorted())
            }
            // Quirk (code): the row offset advances by the height of the FIRST crop of the row.
            rowOffset += unpad.cropSize[ci * grid.numPatchWidth].1
        }

        // Output: thumbnail tokens, then the stitched grid in raster order with a newline after every
        // padded row (nph·s newlines, including rows removed by unpadding).
        var placed = [[Int]](repeating: [Int](repeating: -1, count: n), count: grid.crops)
        for crop in 0..<grid.crops {
            for v in keptValid[crop] {
                let truePosition = unpad.validPositions[crop][v]
                // Quirk (code): `final_image_features[img, idx] = feat` with idx the VALID-list index,
                // so in unpadded crops the kept tokens shift toward the crop's top-left.
                let at = parameters.placeAtTruePositions ? truePosition : v
                placed[crop][at] = (1 + crop) * n + truePosition
            }
        }
        var source = thumbnailKept
        for row in 0..<(grid.numPatchHeight * s) {
            for cj in 0..<grid.numPatchWidth {
                let crop = (row / s) * grid.numPatchWidth + cj
                for x in 0..<s where placed[crop][(row % s) * s + x] >= 0 { source.append(placed[crop][(row % s) * s + x]) }
            }
            source.append(-1)
        }
        var out = Tensor(zeros: [source.count, c])
        features.withUnsafeBufferPointer { fb in
            out.withUnsafeMutableBufferPointer { ob in
                for (i, src) in source.enumerated() {
                    for d in 0..<c { ob[i * c + d] = src < 0 ? imageNewline[d] : fb[src * c + d] }
                }
            }
        }
        let kept = source.filter { $0 >= 0 }.sorted()
        return GlobalCom2Result(
            cropScales: scales, cropValidCounts: unpad.validPositions.map(\.count), cropBudgets: budgets,
            thumbnailKept: thumbnailKept, cropKeptValid: keptValid, kept: kept, output: out, outputSource: source,
            compression: CompressionResult(kept: kept, requestedCount: kept.count, achievedCount: source.count,
                                           positionPolicy: .notApplicable))
    }

    /// r_c = min(r·(1 + p_c − mean p), 1) with p = softmax over crops of the thumbnail logit sums of the
    /// crop's region (float64 like numpy). Region blocks are `s // npw` × `s // nph` tokens, the last
    /// block absorbing the remainder; logits (possibly negative) are summed, not probabilities.
    func cropScales(thumbnail: [Float], grid: Grid) -> [Double] {
        let side = Int(Double(thumbnail.count).squareRoot())
        let pw = max(side / grid.numPatchWidth, 1), ph = max(side / grid.numPatchHeight, 1)
        var sums = [Double](repeating: 0, count: grid.crops)
        for (idx, score) in thumbnail.enumerated() {
            let i = idx / side, j = idx % side
            let region = min(i / ph, grid.numPatchHeight - 1) * grid.numPatchWidth + min(j / pw, grid.numPatchWidth - 1)
            sums[region] += Double(score)
        }
        let m = sums.max()!
        let e = sums.map { Foundation.exp(($0 - m) / parameters.temperature) }
        let z = e.reduce(0, +) + 1e-8
        let p = e.map { $0 / z }
        let total = p.reduce(0, +)
        if total == 0 { return [Double](repeating: parameters.retentionRatio, count: grid.crops) }
        let mean = total / Double(p.count)
        return p.map { min(parameters.retentionRatio * (1 + $0 - mean), 1.0) }
    }

    /// `F.interpolate(mode: bilinear, align_corners: false)` of a side×side map to height×width, as
    /// PyTorch computes it in float32 (source index clamped at 0, upper neighbour clamped at the edge).
    static func resizeBilinear(_ x: [Float], side: Int, height: Int, width: Int) -> [Float] {
        func taps(_ out: Int) -> [(Int, Int, Float, Float)] {
            let scale = Float(side) / Float(out)
            return (0..<out).map { d in
                let src = max(scale * (Float(d) + 0.5) - 0.5, 0)
                let i0 = Int(src)
                let l1 = min(max(src - Float(i0), 0), 1)
                return (i0, i0 < side - 1 ? i0 + 1 : i0, 1 - l1, l1)
            }
        }
        let ty = taps(height), tx = taps(width)
        var out = [Float](repeating: 0, count: height * width)
        for (y, (y0, y1, h0, h1)) in ty.enumerated() {
            for (xx, (x0, x1, w0, w1)) in tx.enumerated() {
                out[y * width + xx] = h0 * (w0 * x[y0 * side + x0] + w1 * x[y0 * side + x1])
                    + h1 * (w0 * x[y1 * side + x0] + w1 * x[y1 * side + x1])
            }
        }
        return out
    }
}

/// LLaVA's `unpad_image` rule on the stitched (nph·s)×(npw·s) token grid, as `compress_crops` builds it.
struct GlobalCom2Unpad {
    /// Per crop (row-major), the crop-local raster positions inside the mask, ascending.
    var validPositions: [[Int]] = []
    /// Per crop, (width, height) of its valid rectangle ((0, 0) when empty).
    var cropSize: [(Int, Int)] = []
    /// Bounding box of the whole mask.
    var validWidth = 0, validHeight = 0

    init(grid: GlobalCom2.Grid) {
        let s = grid.patchesPerSide
        let height = grid.numPatchHeight * s, width = grid.numPatchWidth * s
        var rows = 0..<height, cols = 0..<width
        let originalAspect = Double(grid.originalWidth) / Double(grid.originalHeight)
        let currentAspect = Double(width) / Double(height)
        if originalAspect > currentAspect {
            let newHeight = Int(Double(grid.originalHeight) * (Double(width) / Double(grid.originalWidth)))
            let pad = GlobalCom2Unpad.floorDiv(height - newHeight, 2)
            rows = max(pad, 0)..<max(min(height - pad, height), max(pad, 0))
        } else {
            let newWidth = Int(Double(grid.originalWidth) * (Double(height) / Double(grid.originalHeight)))
            let pad = GlobalCom2Unpad.floorDiv(width - newWidth, 2)
            cols = max(pad, 0)..<max(min(width - pad, width), max(pad, 0))
        }
        validHeight = rows.count
        validWidth = cols.count
        for ci in 0..<grid.numPatchHeight {
            for cj in 0..<grid.numPatchWidth {
                var positions: [Int] = []
                var ys = Set<Int>(), xs = Set<Int>()
                for y in 0..<s where rows.contains(ci * s + y) {
                    for x in 0..<s where cols.contains(cj * s + x) { positions.append(y * s + x); ys.insert(y); xs.insert(x) }
                }
                validPositions.append(positions)
                cropSize.append(positions.isEmpty ? (0, 0) : (xs.max()! - xs.min()! + 1, ys.max()! - ys.min()! + 1))
            }
        }
    }

    static func floorDiv(_ a: Int, _ b: Int) -> Int { Int((Double(a) / Double(b)).rounded(.down)) }
}

/// What GlobalCom² produced for one image.
public struct GlobalCom2Result: Sendable {
    /// r_c per crop (row-major crop order).
    public var cropScales: [Double]
    /// Tokens of each crop inside the unpadding mask.
    public var cropValidCounts: [Int]
    /// `int(N_valid_c · r_c)` per crop.
    public var cropBudgets: [Int]
    /// Thumbnail tokens kept, in descending-logit (= output) order.
    public var thumbnailKept: [Int]
    /// Per crop, kept tokens as ascending indices into that crop's list of valid tokens.
    public var cropKeptValid: [[Int]]
    /// Every kept input token as an ascending index into the flattened `[P·N]` input (true positions).
    public var kept: [Int]
    /// `[M, C]` the final sequence: thumbnail part, then crops with newlines.
    public var output: Tensor
    /// For each output row, the flattened input index it copies, or −1 for an `image_newline`.
    public var outputSource: [Int]
    /// `kept` = visual tokens kept; `achievedCount` = output rows including the newline tokens.
    public var compression: CompressionResult
    public var count: Int { outputSource.count }
}
