import Foundation
import ModelIO
import Tensors

/// One video given to LLaVA-OneVision: its frames, each `[3, S, S]` at the tower's image size, as
/// the video preprocessor leaves them (`ModelIO.VideoPreprocessor`).
public struct LlavaVideo: @unchecked Sendable {
    public var frames: [Tensor]

    public init(frames: [Tensor]) { self.frames = frames }

    /// From `pixel_values_videos` of one video, `[frames, 3, S, S]`.
    public init(pixelValues: Tensor) throws {
        guard pixelValues.rank == 4, pixelValues.shape[0] > 0 else {
            throw ModelError("video pixel values have shape \(pixelValues.shape), expected [frames > 0, 3, S, S]")
        }
        let s = pixelValues.shape
        let flat = try pixelValues.reshaped([s[0], s[1] * s[2] * s[3]])
        frames = try (0..<s[0]).map { try flat.rows($0..<($0 + 1)).reshaped([s[1], s[2], s[3]]) }
    }
}

/// LLaVA-OneVision (`LlavaOnevisionForConditionalGeneration`, transformers 5.25): what differs from
/// LLaVA-NeXT. The tower, feature selection, `VisionFeatureHook`, projector and AnyRes tiling are
/// NeXT's (see `LlavaModel`); the packing of an AnyRes image and the video path are here.
///
/// Images (`pack_image_features` with `vision_aspect_ratio` "anyres_max_N"): thumbnail rows, then
/// the unpadded grid, downscaled by bilinear interpolation to `⌊h / r⌋ × ⌊w / r⌋` cells when
/// `r = √(h·w / (N·side²)) > 1.1`, each row followed by `image_newline`. A single tile gets its rows
/// and one newline.
///
/// Videos (`get_video_features` + `apply_pooling`): each frame through the tower, the feature
/// layer(s) and strategy, the projector, then bilinear pooling of its `side × side` grid to
/// `⌈side/2⌉ × ⌈side/2⌉`; frames' rows concatenated, one `image_newline` after the last frame.
extension LlavaModel {
    // MARK: video

    /// Visual rows a video of `frames` frames takes: frames × ⌈side/2⌉² + 1 (the processor's count).
    public func videoTokenCount(frames: Int) throws -> Int {
        guard config.variant == .onevision else { throw ModelError("only LLaVA-OneVision takes videos (this model is \(config.variant.rawValue))") }
        guard frames > 0 else { throw ModelError("the video has no frames (a <video> prompt needs the video's frames)") }
        let pooled = (config.vision.patchesPerSide + 1) / 2
        return frames * pooled * pooled + 1
    }

    public func videoTokenCount(_ video: LlavaVideo) throws -> Int { try videoTokenCount(frames: video.frames.count) }

    /// One video's visual rows and what it took to make them.
    public struct VideoFeatures {
        /// Pooled rows of every frame, then one `image_newline`: `[rows, textHidden]`.
        public var features: Tensor
        /// Rows entering each encoder layer, per frame.
        public var towerRowsPerFrame: [[Int]]
        /// Feature rows the projector mapped (all frames, before pooling).
        public var projectedRows: Int
        /// `[F, ⌈side/2⌉²]` when asked: attention each patch of the feature layer received (mean
        /// over heads and queries), pooled like the rows.
        public var receivedAttention: Tensor? = nil
        /// Per frame, the selected tower features before the projector, when asked.
        public var towerFeatures: [Tensor]? = nil
    }

    /// `get_video_features` of one video.
    public func videoFeatures(_ video: LlavaVideo, index: Int = 0, receivedAttention: Bool = false,
                              towerFeatures: Bool = false) throws -> VideoFeatures {
        guard config.variant == .onevision else { throw ModelError("only LLaVA-OneVision takes videos (this model is \(config.variant.rawValue))") }
        guard !video.frames.isEmpty else {
            throw ModelError("video \(index) has no frames (a <video> prompt needs the video's frames, [3, \(config.vision.imageSize), \(config.vision.imageSize)] each)")
        }
        let side = config.vision.patchesPerSide
        if config.featuresPerTile != side * side {
            throw ModelError("video pooling needs \(side)×\(side) patch rows per frame, but vision_feature_select_strategy '\(config.visionFeatureStrategy.rawValue)' keeps the [CLS] row of the CLIP tower (\(config.featuresPerTile) rows)")
        }
        let s = config.vision.imageSize, c = config.vision.channels
        let n = config.vision.layers
        let drop = config.visionFeatureStrategy == .default && config.vision.hasClassToken
        var perFrame: [Tensor] = []
        var towerRows: [[Int]] = []
        // The deepest layer the projector reads (`hidden_states[i + 1]` is layer i's output).
        let featureLayer = (config.visionFeatureLayers.map { $0 < 0 ? n + 1 + $0 : $0 }.max() ?? n) - 1
        let capture = receivedAttention ? VisionCaptureRequest(attention: [featureLayer: .probabilities(rows: nil)]) : .none
        var received: [Tensor] = []
        for (f, pixels) in video.frames.enumerated() {
            guard pixels.shape == [c, s, s] else {
                throw ModelError("video \(index) frame \(f) has shape \(pixels.shape), expected [\(c), \(s), \(s)] (resize frames to the tower's image size with the video preprocessor)")
            }
            let out = try vision.forward(pixels, hiddenStates: config.visionFeatureLayers, capture: capture)
            towerRows.append(out.rowsPerLayer)
            if receivedAttention {
                guard let a = out.captures[featureLayer]?.attention?.values else {
                    throw ModelError("video \(index) frame \(f): the tower recorded no attention at layer \(featureLayer)")
                }
                received.append(try Self.receivedAttention(a, side: side))
            }
            let parts = config.visionFeatureLayers.map { out.hiddenStates[$0 < 0 ? n + 1 + $0 : $0]! }
            var features = parts.count == 1 ? parts[0] : try Self.concatenateColumns(parts)
            if drop { features = try features.rows(1..<features.rows) }
            perFrame.append(features)
        }
        // One projector call over every frame's rows, then pooling frame by frame.
        let all = try Tensor.concatenateRows(perFrame)
        let projected = try projector2(try projector1(all, store: store).activated(config.projectorAct), store: store)
        let pooledSide = (side + 1) / 2
        var rows: [Tensor] = []
        for f in 0..<video.frames.count {
            let grid = try projected.rows((f * side * side)..<((f + 1) * side * side))
            rows.append(try Self.bilinearResize(grid, height: side, width: side, toHeight: pooledSide, toWidth: pooledSide))
        }
        rows.append(try newlineRow())
        var out = VideoFeatures(features: try Tensor.concatenateRows(rows), towerRowsPerFrame: towerRows, projectedRows: all.rows)
        if receivedAttention { out.receivedAttention = try Tensor.concatenateRows(received).reshaped([video.frames.count, pooledSide * pooledSide]) }
        if towerFeatures { out.towerFeatures = perFrame }
        return out
    }

    /// Column means of one frame's `[heads, side², side²]` attention (what each patch received,
    /// averaged over heads and queries), bilinear-pooled like the rows: `[1, ⌈side/2⌉²]`.
    static func receivedAttention(_ probabilities: Tensor, side: Int) throws -> Tensor {
        let heads = probabilities.shape[0], q = probabilities.shape[1], k = probabilities.shape[2]
        guard k == side * side else { throw ModelError("received attention: \(k) keys for a \(side)×\(side) patch grid") }
        var mean = Tensor(zeros: [k, 1])
        probabilities.withUnsafeBufferPointer { p in
            mean.withUnsafeMutableBufferPointer { m in
                for h in 0..<heads { for i in 0..<q { for j in 0..<k { m[j] += p[(h * q + i) * k + j] } } }
                for j in 0..<k { m[j] /= Float(heads * q) }
            }
        }
        let pooled = (side + 1) / 2
        return try bilinearResize(mean, height: side, width: side, toHeight: pooled, toWidth: pooled).reshaped([1, pooled * pooled])
    }

    /// The video's layout as it reaches the LLM: `frames` frames of ⌈side/2⌉² pooled cells, one newline.
    public func videoLayout(frames: Int) -> VideoLayout {
        let pooled = (config.vision.patchesPerSide + 1) / 2
        return VideoLayout(frames: frames, gridRows: pooled, gridColumns: pooled, trailingNewline: true)
    }

    /// The video hook point: `features` (pooled rows + newline, as `videoFeatures` returns them)
    /// through `hook`, checked; without a hook (or when it declines) the rows pass unchanged.
    func compressVideo(_ features: Tensor, frames: Int, index: Int, hook: VideoTokenHook?, received: Tensor? = nil,
                       towerFeatures: [Tensor]? = nil) throws -> CompressedVideo {
        let layout = videoLayout(frames: frames)
        let unchanged = { try CompressedVideo(rows: features, sources: Array(0..<layout.rowCount), positions: .notApplicable) }
        guard let hook else { return try unchanged() }
        guard features.rows == layout.rowCount else {
            throw ModelError("video \(index): \(features.rows) pooled rows, the layout \(frames)×\(layout.tokensPerFrame) + 1 expects \(layout.rowCount)")
        }
        var video = PooledVideo(index: index, tokens: try features.rows(0..<layout.frameTokens),
                                newline: try features.rows(layout.frameTokens..<layout.rowCount), layout: layout,
                                receivedAttention: received)
        if hook.wantsPoolingHeadSignals {
            guard let towerFeatures else { throw ModelError("video \(index): the pooling head needs the frames' tower features") }
            video.poolingHead = try SigLIPPoolingHead(model: self).signals(frames: towerFeatures, pooledSide: layout.gridRows)
        }
        guard let out = try hook.compressVideo(video) else { return try unchanged() }
        guard out.rows.columns == features.columns, out.sources.allSatisfy({ (0..<layout.rowCount).contains($0) }) else {
            throw ModelError("video hook: video \(index) returned \(out.rows.shape) rows with sources outside 0..<\(layout.rowCount) (rows must be [n, \(features.columns)])")
        }
        if out.positions == .keepOriginal {
            guard zip(out.sources, out.sources.dropFirst()).allSatisfy({ $0 < $1 }) else {
                throw ModelError("video hook: video \(index) keeps original positions, so its sources must be strictly ascending")
            }
        }
        return out
    }

    // MARK: images

    /// Cells down and across an unpadded `height × width` feature grid keeps after the
    /// anyres_max_N downscale (the grid itself when no downscale applies).
    public func onevisionGridSize(height: Int, width: Int) throws -> (height: Int, width: Int, downscaled: Bool) {
        guard let maxTiles = config.anyResMaxTiles else { return (height, width, false) }
        let side = config.vision.patchesPerSide
        let ratio = (Double(height * width) / Double(maxTiles * side * side)).squareRoot()
        guard ratio > 1.1 else { return (height, width, false) }
        let h = Int(Self.pythonFloorDivide(Double(height), ratio)), w = Int(Self.pythonFloorDivide(Double(width), ratio))
        guard h > 0, w > 0 else {
            throw ModelError("anyres_max_\(maxTiles) downscale of a \(height)×\(width) feature grid gives \(h)×\(w) cells (transformers fails on this image too)")
        }
        return (h, w, true)
    }

    /// OneVision's `pack_image_features` for one image. `wholeTiles`: every tile kept all its rows
    /// in order (no vision hook, or one that only changed values). A vision hook's selection is
    /// placed as NeXT places it (a grid row keeps its newline when any of its patches survived);
    /// with a selection on a grid that needs the downscale there is no defined place for the kept
    /// rows, which is an error.
    func packOnevision(projected: [Tensor], sources: [[Int]], wholeTiles: Bool, grid: (rows: Int, cols: Int)?,
                       size: (height: Int, width: Int)?, index: Int) throws -> Tensor {
        guard let grid, let size, projected.count > 1 else {
            return try Tensor.concatenateRows([projected[0], try newlineRow()])
        }
        let side = config.vision.patchesPerSide
        let r = AnyRes.unpadRegion(imageSize: PixelSize(height: size.height, width: size.width),
                                   featureSize: PixelSize(height: grid.rows * side, width: grid.cols * side))
        let target = try onevisionGridSize(height: r.height, width: r.width)
        guard wholeTiles else {
            guard !target.downscaled else {
                throw ModelError("image \(index): a vision-side selection cannot be placed in a OneVision AnyRes grid that is downscaled (\(r.height)×\(r.width) → \(target.height)×\(target.width) cells, anyres_max_\(config.anyResMaxTiles ?? 0))")
            }
            return try pack(projected: projected, sources: sources, grid: grid, size: size)
        }
        // The unpadded grid, row-major over feature cells, gathered from the tiles.
        var offsets: [Int] = []
        var o = 0
        for p in projected { offsets.append(o); o += p.rows }
        let all = try Tensor.concatenateRows(projected)
        var cells: [Int] = []
        cells.reserveCapacity(r.height * r.width)
        for y in r.top..<(r.top + r.height) {
            for x in r.left..<(r.left + r.width) {
                let tile = 1 + (y / side) * grid.cols + x / side
                cells.append(offsets[tile] + (y % side) * side + x % side)
            }
        }
        var unpadded = try all.gatherRows(cells)
        if target.downscaled {
            unpadded = try Self.bilinearResize(unpadded, height: r.height, width: r.width, toHeight: target.height, toWidth: target.width)
        }
        // Rows of the grid, each closed by the newline.
        let withNewline = try Tensor.concatenateRows([unpadded, try newlineRow()])
        let newline = unpadded.rows
        var order: [Int] = []
        order.reserveCapacity(target.height * (target.width + 1))
        for y in 0..<target.height {
            order += Array((y * target.width)..<((y + 1) * target.width))
            order.append(newline)
        }
        return try Tensor.concatenateRows([projected[0], try withNewline.gatherRows(order)])
    }

    func newlineRow() throws -> Tensor {
        guard let imageNewline else { throw ModelError("this LLaVA variant has no image_newline") }
        return try store.tensor(imageNewline, alwaysCache: true).reshaped([1, config.text.hiddenSize])
    }

    // MARK: arithmetic as transformers does it

    /// `torch.nn.functional.interpolate(mode="bilinear", align_corners=False)` of a feature grid
    /// stored as `[height·width, channels]` (row-major cells) to `toHeight × toWidth` cells, with
    /// torch's CPU index and weight rule in Float32: source `s = (in/out)·(i + 0.5) − 0.5` clamped
    /// at 0, `i0 = ⌊s⌋`, `i1 = i0 + 1` unless at the edge, weights `1 − λ` and `λ`; each output is
    /// `(x00·w0 + x01·w1)·h0 + (x10·w0 + x11·w1)·h1` (width inside, height outside).
    static func bilinearResize(_ grid: Tensor, height: Int, width: Int, toHeight: Int, toWidth: Int) throws -> Tensor {
        guard grid.rank == 2, grid.rows == height * width, toHeight > 0, toWidth > 0 else {
            throw ModelError("bilinear resize: grid \(grid.shape) is not \(height)×\(width) cells, or the target \(toHeight)×\(toWidth) is empty")
        }
        func taps(_ input: Int, _ output: Int) -> [(i0: Int, i1: Int, w0: Float, w1: Float)] {
            if input == output { return (0..<output).map { ($0, $0, 1, 0) } }
            let scale = Float(input) / Float(output)
            return (0..<output).map { i in
                var src = scale * (Float(i) + 0.5) - 0.5
                if src < 0 { src = 0 }
                let i0 = min(Int(src.rounded(.down)), input - 1)
                let lambda = min(max(src - Float(i0), 0), 1)
                return (i0, i0 + (i0 < input - 1 ? 1 : 0), 1 - lambda, lambda)
            }
        }
        let ys = taps(height, toHeight), xs = taps(width, toWidth)
        let c = grid.columns
        var out = Tensor(zeros: [toHeight * toWidth, c])
        grid.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for (oy, ty) in ys.enumerated() {
                    for (ox, tx) in xs.enumerated() {
                        let a = (ty.i0 * width + tx.i0) * c, b = (ty.i0 * width + tx.i1) * c
                        let d = (ty.i1 * width + tx.i0) * c, e = (ty.i1 * width + tx.i1) * c
                        let o = (oy * toWidth + ox) * c
                        for k in 0..<c {
                            let top = src[a + k] * tx.w0 + src[b + k] * tx.w1
                            let bottom = src[d + k] * tx.w0 + src[e + k] * tx.w1
                            dst[o + k] = top * ty.w0 + bottom * ty.w1
                        }
                    }
                }
            }
        }
        return out
    }

    /// Python's float floor division `a // b` (CPython's `float_floor_div`: fmod, correction, floor
    /// with the half-way fix), which can differ from `floor(a / b)` by one near integers.
    static func pythonFloorDivide(_ a: Double, _ b: Double) -> Double {
        var mod = fmod(a, b)
        var div = (a - mod) / b
        if mod != 0 {
            if (b < 0) != (mod < 0) { mod += b; div -= 1 }
        }
        guard div != 0 else { return a / b < 0 ? -0.0 : 0.0 }
        var floored = div.rounded(.down)
        if div - floored > 0.5 { floored += 1 }
        return floored
    }
}
