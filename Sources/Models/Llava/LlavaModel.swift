import Foundation
import ModelIO
import Tensors

/// One image given to a LLaVA model, already preprocessed by the image helper.
public enum LlavaImage: @unchecked Sendable {
    /// LLaVA-1.5: `[3, S, S]` at the tower's image size.
    case single(Tensor)
    /// LLaVA-NeXT: the base thumbnail first, then the AnyRes tiles row-major (each `[3, S, S]`),
    /// and the original image size.
    case anyRes(tiles: [Tensor], imageHeight: Int, imageWidth: Int)
}

/// Result of a LLaVA prefill.
public struct LlavaPrefillResult: @unchecked Sendable {
    public var decoder: DecoderPrefillResult
    /// The prompt as the decoder saw it: image tokens repeated once per (kept) visual row.
    public var expandedInputIDs: [Int]
    /// Range of each image's rows in `expandedInputIDs`.
    public var imageSpans: [Range<Int>]
    /// OneVision: range of each video's rows in `expandedInputIDs` (empty without videos).
    public var videoSpans: [Range<Int>] = []
    /// Visual rows per image before and after the vision hook.
    public var visualTokensBefore: [Int]
    public var visualTokensAfter: [Int]
    /// OneVision: rows per video entering the LLM (after a `VideoTokenHook`).
    public var videoTokens: [Int] = []
    /// OneVision: rows per video before a `VideoTokenHook` (frames × pooled cells + one `image_newline`).
    public var videoTokensBefore: [Int] = []
    /// OneVision: per video, the video-local index each row entering the LLM stands at.
    public var videoSources: [[Int]] = []
    /// Rows per layer of the tower and the decoder, as this prefill ran them.
    public var trace: PrefillTrace
    public var logits: Tensor { decoder.logits }
    public var cache: KVCache { decoder.cache }
}

/// `LlavaForConditionalGeneration` (LLaVA-1.5) and `LlavaNextForConditionalGeneration` (AnyRes).
///
/// Pipeline: vision tower → feature layer(s) and strategy → `VisionFeatureHook` → projector
/// (linear, act, linear) → NeXT packing (thumbnail, unpadded grid with `image_newline`) →
/// splice at the image tokens → decoder prefill with `PrefillHook` → greedy decoding.
public final class LlavaModel: @unchecked Sendable {
    public let config: LlavaConfig
    public let store: WeightStore
    public let vision: VisionTower
    public let language: DecoderLM
    let projector1: LinearWeight
    let projector2: LinearWeight
    let imageNewline: String?

    /// Loads a llava-hf style folder (transformers 5 names, the names transformers 5 saves, or legacy llava-hf names).
    public static func load(folder: String, keepConverted: Bool = false) throws -> LlavaModel {
        let config = try LlavaConfig.load(folder: folder)
        return try LlavaModel(config: config, store: try WeightStore(folder: folder, keepConverted: keepConverted))
    }

    public init(config: LlavaConfig, store: WeightStore) throws {
        self.config = config
        self.store = store
        vision = try VisionTower(config: config.vision, store: store,
                                 prefixes: ["model.vision_tower.vision_model.", "model.vision_tower.", "vision_tower.vision_model.", "vision_tower."])
        language = try DecoderLM(config: config.text, store: store)
        let anchor = "multi_modal_projector.linear_1.weight"
        guard let p = store.prefix(anchor: anchor, among: ["model.", ""]) else {
            throw ModelError("\(store.location): no projector weights ('\(anchor)')")
        }
        let inWidth = config.vision.hiddenSize * config.visionFeatureLayers.count
        projector1 = try LinearWeight(store: store, prefix: p + "multi_modal_projector.linear_1", out: config.text.hiddenSize,
                                      in: inWidth, bias: config.projectorBias)
        projector2 = try LinearWeight(store: store, prefix: p + "multi_modal_projector.linear_2", out: config.text.hiddenSize,
                                      in: config.text.hiddenSize, bias: config.projectorBias)
        if config.usesAnyRes {
            let family = config.variant == .onevision ? "LLaVA-OneVision" : "LLaVA-NeXT"
            guard let n = store.firstPresent(["model.image_newline", "image_newline"]) else {
                throw ModelError("\(store.location): \(family) checkpoint has no 'image_newline'")
            }
            guard try store.info(n).shape == [config.text.hiddenSize] else {
                throw ModelError("\(store.location): 'image_newline' has shape \(try store.info(n).shape), expected [\(config.text.hiddenSize)]")
            }
            if config.visionFeatureStrategy == .full && config.vision.hasClassToken {
                throw ModelError("\(family) with a CLIP tower needs vision_feature_select_strategy 'default' (the tile grid has no room for [CLS])")
            }
            imageNewline = n
        } else {
            imageNewline = nil
        }
    }

    // MARK: image token bookkeeping

    /// Visual rows an image yields without compression (what the processor expands `<image>` to).
    public func imageTokenCount(_ image: LlavaImage) throws -> Int {
        switch image {
        case .single: return config.usesAnyRes ? config.featuresPerTile + 1 : config.featuresPerTile
        case .anyRes(_, let h, let w): return try imageTokenCount(imageHeight: h, imageWidth: w)
        }
    }

    /// NeXT: thumbnail rows + unpadded grid rows, each grid row followed by `image_newline`.
    /// OneVision: the same after the anyres_max_N downscale of the unpadded grid.
    public func imageTokenCount(imageHeight: Int, imageWidth: Int) throws -> Int {
        guard config.usesAnyRes else { return config.featuresPerTile }
        guard imageHeight > 0, imageWidth > 0 else { throw ModelError("image size \(imageHeight)×\(imageWidth) is empty") }
        let side = config.vision.patchesPerSide
        let g = try tileGrid(imageHeight: imageHeight, imageWidth: imageWidth)
        let r = AnyRes.unpadRegion(imageSize: PixelSize(height: imageHeight, width: imageWidth),
                                   featureSize: PixelSize(height: g.rows * side, width: g.cols * side))
        if config.variant == .onevision {
            let d = try onevisionGridSize(height: r.height, width: r.width)
            return config.featuresPerTile + d.height * (d.width + 1)
        }
        return config.featuresPerTile + r.height * (r.width + 1)
    }

    /// AnyRes tiles down and across for an image (thumbnail excluded), by the same geometry the
    /// image preprocessor uses (`ModelIO.AnyRes`), so the two never disagree.
    func tileGrid(imageHeight: Int, imageWidth: Int) throws -> (rows: Int, cols: Int) {
        try AnyRes.gridShape(imageSize: PixelSize(height: imageHeight, width: imageWidth),
                             pinpoints: config.gridPinpoints.map { PixelSize(height: $0.height, width: $0.width) },
                             tileSize: config.vision.imageSize)
    }

    /// Replaces each `<image>` id by `count` copies (what the HF processor does before the model).
    public static func expandImageTokens(_ ids: [Int], imageTokenID: Int, count: Int) -> [Int] {
        ids.flatMap { $0 == imageTokenID ? Array(repeating: imageTokenID, count: count) : [$0] }
    }

    // MARK: vision features

    /// Projected (and, for NeXT, packed) visual rows of one image, `[rows, textHidden]`, after the hook.
    public func imageFeatures(_ image: LlavaImage, index: Int = 0, hook: VisionFeatureHook? = nil) throws -> ImageFeatures {
        let tiles: [Tensor]
        var grid: (rows: Int, cols: Int)?
        var size: (height: Int, width: Int)?
        switch image {
        case .single(let t): tiles = [t]
        case .anyRes(let ts, let h, let w):
            guard config.usesAnyRes else { throw ModelError("LLaVA-1.5 takes a single image tensor, not AnyRes tiles") }
            let g = try tileGrid(imageHeight: h, imageWidth: w)
            guard ts.count == g.rows * g.cols + 1 else {
                throw ModelError("image \(index): \(ts.count) tiles given, the \(h)×\(w) image needs \(g.rows * g.cols + 1) (thumbnail + \(g.rows)×\(g.cols) grid)")
            }
            tiles = ts
            grid = g
            size = (h, w)
        }
        let request = hook?.captureRequest(tileCount: tiles.count) ?? .none
        let drop = config.visionFeatureStrategy == .default && config.vision.hasClassToken
        var tileFeatures: [VisionTileFeatures] = []
        var towerRows: [[Int]] = []
        let n = config.vision.layers
        let featureLayer = (config.visionFeatureLayers.map { $0 < 0 ? n + 1 + $0 : $0 }.max() ?? n) - 1
        let patchCount = config.vision.patchesPerSide * config.vision.patchesPerSide
        for (t, pixels) in tiles.enumerated() {
            func step(_ layer: Int, _ hidden: Tensor, _ q: Tensor, _ k: Tensor) -> VisionLayerStep {
                VisionLayerStep(imageIndex: index, tile: t, tileCount: tiles.count, layer: layer, hidden: hidden, queries: q, keys: k,
                                heads: config.vision.heads, headDim: config.vision.headDim,
                                towerLayers: n, featureLayer: featureLayer, patchCount: patchCount)
            }
            let out = try vision.forward(pixels, hiddenStates: config.visionFeatureLayers, capture: request,
                                         afterAttention: hook.map { h in { try h.afterAttention(step($0, $1, $2, $3)) } },
                                         afterLayer: hook.map { h in { try h.afterLayer(step($0, $1, $2, $3)) } })
            towerRows.append(out.rowsPerLayer)
            let parts = config.visionFeatureLayers.map { out.hiddenStates[$0 < 0 ? n + 1 + $0 : $0]! }
            var f = parts.count == 1 ? parts[0] : try Self.concatenateColumns(parts)
            if drop { f = try f.rows(1..<f.rows) }
            tileFeatures.append(VisionTileFeatures(tile: t, features: f, classTokenDropped: drop,
                                                   patchGrid: (config.vision.patchesPerSide, config.vision.patchesPerSide),
                                                   captures: out.captures))
        }
        let before = config.usesAnyRes
            ? (size.map { try? imageTokenCount(imageHeight: $0.height, imageWidth: $0.width) } ?? nil) ?? (config.featuresPerTile + 1)
            : config.featuresPerTile
        var kept: [KeptFeatures]
        if let hook, let selected = try hook.selectFeatures(VisionImageFeatures(imageIndex: index, tiles: tileFeatures, tileGrid: grid, imageSize: size)) {
            guard selected.count == tileFeatures.count else {
                throw ModelError("vision hook returned \(selected.count) tiles for image \(index) with \(tileFeatures.count)")
            }
            for (k, tf) in zip(selected, tileFeatures) {
                let bound = max(tf.features.rows, tf.patchGrid.rows * tf.patchGrid.cols)
                guard k.rows.columns == tf.features.columns, k.rows.rows > 0,
                      k.sourceIndices.allSatisfy({ $0 >= 0 && $0 < bound }) else {
                    throw ModelError("vision hook: tile \(tf.tile) of image \(index) returned \(k.rows.shape) rows with sources outside 0..<\(bound)")
                }
            }
            kept = selected
        } else {
            kept = try tileFeatures.map { try KeptFeatures(rows: $0.features, sourceIndices: Array(0..<$0.features.rows)) }
        }
        let act = config.projectorAct
        let projected = try kept.map { try projector2(try projector1($0.rows, store: store).activated(act), store: store) }
        let projectedRows = kept.reduce(0) { $0 + $1.rows.rows }
        let sources = kept.map(\.sourceIndices)
        let features: Tensor
        switch config.variant {
        case .llava15: features = projected[0]
        case .next: features = try pack(projected: projected, sources: sources, grid: grid, size: size)
        case .onevision:
            let whole = zip(sources, tileFeatures).allSatisfy { $0.0 == Array(0..<$0.1.features.rows) }
            features = try packOnevision(projected: projected, sources: sources, wholeTiles: whole, grid: grid, size: size, index: index)
        }
        return ImageFeatures(features: features, before: before, towerRowsPerTile: towerRows, projectedRows: projectedRows)
    }

    /// One image's visual rows and what it took to make them.
    public struct ImageFeatures {
        /// Projected (and, for NeXT, packed) visual rows, `[rows, textHidden]`.
        public var features: Tensor
        /// Visual rows the image has without compression.
        public var before: Int
        /// Rows entering each encoder layer, per tile.
        public var towerRowsPerTile: [[Int]]
        /// Feature rows the projector mapped (all tiles).
        public var projectedRows: Int
    }

    /// NeXT `pack_image_features`: thumbnail rows, then the unpadded grid row by row, each row
    /// closed by `image_newline` (kept when the row kept any patch). A single tile gets one newline.
    func pack(projected: [Tensor], sources: [[Int]], grid: (rows: Int, cols: Int)?, size: (height: Int, width: Int)?) throws -> Tensor {
        let newline = try store.tensor(imageNewline!, alwaysCache: true).reshaped([1, config.text.hiddenSize])
        guard let grid, let size, projected.count > 1 else {
            return try Tensor.concatenateRows([projected[0], newline])
        }
        let all = try Tensor.concatenateRows(projected + [newline])
        var offsets: [Int] = []
        var o = 0
        for p in projected { offsets.append(o); o += p.rows }
        let newlineRow = o
        let side = config.vision.patchesPerSide
        var slot: [[Int: Int]] = sources.enumerated().map { t, s in
            var m: [Int: Int] = [:]
            for (i, src) in s.enumerated() where m[src] == nil { m[src] = offsets[t] + i }
            return m
        }
        slot[0] = [:]
        var order = Array(0..<projected[0].rows)
        let r = AnyRes.unpadRegion(imageSize: PixelSize(height: size.height, width: size.width),
                                   featureSize: PixelSize(height: grid.rows * side, width: grid.cols * side))
        for y in r.top..<(r.top + r.height) {
            var any = false
            for x in r.left..<(r.left + r.width) {
                let tile = 1 + (y / side) * grid.cols + x / side
                if let row = slot[tile][(y % side) * side + x % side] { order.append(row); any = true }
            }
            if any { order.append(newlineRow) }
        }
        return try all.gatherRows(order)
    }

    static func concatenateColumns(_ parts: [Tensor]) throws -> Tensor {
        let rows = parts[0].rows
        guard parts.allSatisfy({ $0.rows == rows }) else { throw ModelError("feature layers have different row counts") }
        let width = parts.reduce(0) { $0 + $1.columns }
        var out = Tensor(zeros: [rows, width])
        out.withUnsafeMutableBufferPointer { dst in
            var col = 0
            for p in parts {
                let c = p.columns
                p.withUnsafeBufferPointer { src in
                    for r in 0..<rows { for j in 0..<c { dst[r * width + col + j] = src[r * c + j] } }
                }
                col += c
            }
        }
        return out
    }

    // MARK: prompt assembly, prefill, decoding

    /// Input embeddings with the visual rows spliced in.
    ///
    /// `inputIDs` holds, per image in order, either one image token (a placeholder, expanded to the
    /// visual rows) or the run the processor expanded it to (`imageTokenCount` copies).
    public func embedPrompt(inputIDs: [Int], images: [LlavaImage], visionHook: VisionFeatureHook? = nil) throws
        -> (embeddings: Tensor, expandedIDs: [Int], imageSpans: [Range<Int>], before: [Int], after: [Int],
            towerRowsPerTile: [[Int]], projectedRows: Int) {
        let p = try embedPrompt(inputIDs: inputIDs, images: images, videos: [], visionHook: visionHook)
        return (p.embeddings, p.expandedIDs, p.imageSpans, p.before, p.after, p.towerRowsPerTile, p.projectedRows)
    }

    /// A prompt with its images and videos embedded (see `embedPrompt(inputIDs:images:videos:visionHook:)`).
    public struct PromptEmbedding: @unchecked Sendable {
        public var embeddings: Tensor
        /// The prompt as the decoder sees it: each image (video) token run as long as its rows.
        public var expandedIDs: [Int]
        public var imageSpans: [Range<Int>]
        public var videoSpans: [Range<Int>]
        /// Every image and video span in prompt order: the visual rows the decoder's hook sees.
        public var visualSpans: [Range<Int>]
        /// Visual rows per image before and after the vision hook.
        public var before: [Int]
        public var after: [Int]
        /// Visual rows per video entering the LLM (after the video hook).
        public var videoTokens: [Int]
        /// Visual rows per video before the video hook (frames × pooled cells + one newline).
        public var videoTokensBefore: [Int]
        /// Per video, the video-local index each of its rows stands at (see `CompressedVideo.sources`).
        public var videoSources: [[Int]]
        /// Position id of every row, or nil for `0..<rows`: a video hook that keeps original
        /// positions (FastVID) leaves gaps where its dropped rows were.
        public var positions: [Int]?
        /// Rows entering each tower layer: every tile of every image, then every frame of every video.
        public var towerRowsPerTile: [[Int]]
        public var projectedRows: Int
    }

    /// Input embeddings with the visual rows of images and (OneVision) videos spliced in.
    ///
    /// For each modality separately, `inputIDs` holds per item in order either one token (the
    /// config's image or video token: a placeholder, expanded to the rows) or the run the processor
    /// expanded it to (`imageTokenCount` / `videoTokenCount` copies). A `VisionFeatureHook` acts on
    /// images only; with videos in the prompt it is refused (video methods have their own hook,
    /// `videoHook`, which replaces each video's pooled rows before the splice).
    public func embedPrompt(inputIDs: [Int], images: [LlavaImage], videos: [LlavaVideo], visionHook: VisionFeatureHook? = nil,
                            videoHook: VideoTokenHook? = nil) throws -> PromptEmbedding {
        if !videos.isEmpty {
            guard config.variant == .onevision, config.videoTokenID != nil else {
                throw ModelError("\(videos.count) video(s) given, but only LLaVA-OneVision takes videos (this model is \(config.variant.rawValue))")
            }
            if visionHook != nil {
                throw ModelError("a vision-feature hook (vision-side method) acts on images; this prompt has \(videos.count) video(s) whose frames it would leave uncompressed — run video prompts without it")
            }
        }
        let imageID = config.imageTokenID
        let videoID = config.videoTokenID
        let expectedImage = try images.map(imageTokenCount)
        let expectedVideo = try videos.map { try videoTokenCount($0) }
        func placeholders(_ id: Int, _ name: String, _ expected: [Int]) throws -> Bool {
            let found = inputIDs.filter { $0 == id }.count
            if found == expected.count { return true }
            if found == expected.reduce(0, +) { return false }
            throw ModelError("prompt has \(found) \(name) tokens (id \(id)) for \(expected.count) \(name)(s); expected \(expected.count) placeholder(s) or \(expected.reduce(0, +)) expanded tokens (\(expected.map(String.init).joined(separator: " + ")))")
        }
        let imagePlaceholders = try placeholders(imageID, "image", expectedImage)
        let videoPlaceholders = try videoID.map { try placeholders($0, "video", expectedVideo) } ?? true

        var imageFeatures: [Tensor] = []
        var before: [Int] = []
        var towerRows: [[Int]] = []
        var projectedRows = 0
        for (i, image) in images.enumerated() {
            let f = try self.imageFeatures(image, index: i, hook: visionHook)
            imageFeatures.append(f.features)
            before.append(f.before)
            towerRows += f.towerRowsPerTile
            projectedRows += f.projectedRows
        }
        var videoFeatures: [Tensor] = []
        var videoSources: [[Int]] = []
        var videoKeepsPositions: [Bool] = []
        for (i, video) in videos.enumerated() {
            let f = try self.videoFeatures(video, index: i, receivedAttention: videoHook?.wantsReceivedAttention ?? false,
                                           towerFeatures: videoHook?.wantsPoolingHeadSignals ?? false)
            towerRows += f.towerRowsPerFrame
            projectedRows += f.projectedRows
            let c = try compressVideo(f.features, frames: video.frames.count, index: i, hook: videoHook, received: f.receivedAttention,
                                      towerFeatures: f.towerFeatures)
            videoFeatures.append(c.rows)
            videoSources.append(c.sources)
            videoKeepsPositions.append(c.positions == .keepOriginal)
        }
        // Walk the prompt: text ids stay, each image's (video's) run becomes its feature rows.
        enum Piece { case text([Int]), image(Int), video(Int) }
        var expanded: [Int] = []
        var pieces: [Piece] = []
        var imageSpans: [Range<Int>] = [], videoSpans: [Range<Int>] = [], visualSpans: [Range<Int>] = []
        var text: [Int] = []
        // Position of each expanded row as the uncompressed prompt counts it; only a video hook
        // that keeps original positions makes it differ from 0..<rows.
        var positions: [Int] = []
        var original = 0
        var i = 0
        var image = 0, video = 0
        while i < inputIDs.count {
            let id = inputIDs[i]
            if id == imageID || id == videoID {
                let isImage = id == imageID
                let item = isImage ? image : video
                let name = isImage ? "image" : "video"
                let rows = isImage ? imageFeatures[item].rows : videoFeatures[item].rows
                let run = (isImage ? imagePlaceholders : videoPlaceholders) ? 1 : (isImage ? expectedImage[item] : expectedVideo[item])
                guard i + run <= inputIDs.count, inputIDs[i..<(i + run)].allSatisfy({ $0 == id }) else {
                    throw ModelError("\(name) \(item): expected \(run) consecutive \(name) tokens at prompt index \(i)")
                }
                if !text.isEmpty { pieces.append(.text(text)); text = [] }
                let span = expanded.count..<(expanded.count + rows)
                if isImage { imageSpans.append(span); pieces.append(.image(item)); image += 1 } else {
                    videoSpans.append(span); pieces.append(.video(item)); video += 1
                }
                visualSpans.append(span)
                expanded += Array(repeating: id, count: rows)
                if !isImage, videoKeepsPositions[item] {
                    positions += videoSources[item].map { original + $0 }
                    original += expectedVideo[item]
                } else {
                    positions += Array(original..<(original + rows))
                    original += rows
                }
                i += run
            } else {
                text.append(id); expanded.append(id); positions.append(original); original += 1; i += 1
            }
        }
        if !text.isEmpty { pieces.append(.text(text)) }
        let parts = try pieces.map { p -> Tensor in
            switch p {
            case .text(let t): return try language.embed(t)
            case .image(let k): return imageFeatures[k]
            case .video(let k): return videoFeatures[k]
            }
        }
        return PromptEmbedding(embeddings: try Tensor.concatenateRows(parts), expandedIDs: expanded, imageSpans: imageSpans,
                               videoSpans: videoSpans, visualSpans: visualSpans, before: before,
                               after: imageFeatures.map(\.rows), videoTokens: videoFeatures.map(\.rows), videoTokensBefore: expectedVideo,
                               videoSources: videoSources, positions: positions == Array(0..<positions.count) ? nil : positions,
                               towerRowsPerTile: towerRows, projectedRows: projectedRows)
    }

    /// Prefill of a prompt with images (see `embedPrompt` for the image token convention).
    public func prefill(inputIDs: [Int], images: [LlavaImage], hook: PrefillHook? = nil,
                        visionHook: VisionFeatureHook? = nil) throws -> LlavaPrefillResult {
        try prefill(inputIDs: inputIDs, images: images, videos: [], hook: hook, visionHook: visionHook)
    }

    /// Prefill of a prompt with images and (OneVision) videos. The decoder's `PrefillHook` sees every
    /// visual span (image and video rows, in prompt order, after the `videoHook`) as its image spans.
    public func prefill(inputIDs: [Int], images: [LlavaImage], videos: [LlavaVideo], hook: PrefillHook? = nil,
                        visionHook: VisionFeatureHook? = nil, videoHook: VideoTokenHook? = nil) throws -> LlavaPrefillResult {
        let p = try embedPrompt(inputIDs: inputIDs, images: images, videos: videos, visionHook: visionHook, videoHook: videoHook)
        let d = try language.prefill(embeddings: p.embeddings, positions: p.positions, imageSpans: p.visualSpans, hook: hook)
        let videoRenumbered = p.positions == nil && p.videoTokens.reduce(0, +) < p.videoTokensBefore.reduce(0, +)
        let trace = PrefillTrace(towerRowsPerTile: p.towerRowsPerTile, towerLayers: config.vision.layers, projectedRows: p.projectedRows,
                                 decoderRowsPerLayer: d.tokensPerLayer, decoderVisualRowsPerLayer: d.visualRowsPerLayer,
                                 insertedRows: d.insertedRows,
                                 positionsRenumbered: d.positionsRenumbered || p.after.reduce(0, +) < p.before.reduce(0, +) || videoRenumbered)
        return LlavaPrefillResult(decoder: d, expandedInputIDs: p.expandedIDs, imageSpans: p.imageSpans, videoSpans: p.videoSpans,
                                  visualTokensBefore: p.before, visualTokensAfter: p.after, videoTokens: p.videoTokens,
                                  videoTokensBefore: p.videoTokensBefore, videoSources: p.videoSources, trace: trace)
    }

    /// LLaVA-1.5 convenience: one `[3, S, S]` image.
    public func prefill(inputIDs: [Int], pixelValues: Tensor, hook: PrefillHook? = nil,
                        visionHook: VisionFeatureHook? = nil) throws -> LlavaPrefillResult {
        try prefill(inputIDs: inputIDs, images: [.single(pixelValues)], hook: hook, visionHook: visionHook)
    }

    /// One decoding step on the prefill's cache.
    /// One greedy decoding step; `hook` picks the cache rows each layer attends to (DyCoke).
    public func decodeStep(token: Int, cache: KVCache, hook: DecodeHook? = nil) throws -> Tensor {
        try language.decodeStep(token: token, cache: cache, hook: hook)
    }

    /// Prefill then greedy decoding (stops after an EOS of the text config or `stopTokens`).
    public func generate(inputIDs: [Int], images: [LlavaImage], maxNewTokens: Int, stopTokens: Set<Int>? = nil,
                         hook: PrefillHook? = nil, visionHook: VisionFeatureHook? = nil) throws -> (tokens: [Int], prefill: LlavaPrefillResult) {
        let p = try prefill(inputIDs: inputIDs, images: images, hook: hook, visionHook: visionHook)
        return (try language.generate(after: p.decoder, maxNewTokens: maxNewTokens, stopTokens: stopTokens), p)
    }

    /// Prefill of a prompt with images and (OneVision) videos, then greedy decoding (a
    /// `DecodeHook` may restrict what each step attends to: DyCoke's KV pruning).
    public func generate(inputIDs: [Int], images: [LlavaImage], videos: [LlavaVideo], maxNewTokens: Int, stopTokens: Set<Int>? = nil,
                         hook: PrefillHook? = nil, visionHook: VisionFeatureHook? = nil, videoHook: VideoTokenHook? = nil,
                         decodeHook: DecodeHook? = nil) throws -> (tokens: [Int], prefill: LlavaPrefillResult) {
        let p = try prefill(inputIDs: inputIDs, images: images, videos: videos, hook: hook, visionHook: visionHook, videoHook: videoHook)
        return (try language.generate(after: p.decoder, maxNewTokens: maxNewTokens, stopTokens: stopTokens, decodeHook: decodeHook), p)
    }
}
