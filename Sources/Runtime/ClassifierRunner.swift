import Foundation
import ModelIO
import Models
import Tensors
import TokenCompression

/// Why a classifier run cannot go ahead: bad input caught before the model runs, naming the file,
/// option or size that is wrong.
public struct ClassifierRunError: Error, CustomStringConvertible, Equatable {
    public let message: String
    public init(_ message: String) { self.message = message }
    public var description: String { message }
}

/// One picture ready for a classifier: the decoded original, the uint8 picture the model sees (after
/// resize and crop; merge maps are drawn on it) and its pixel values `[3, S, S]`.
public struct ClassifierImage: @unchecked Sendable {
    public var path: String?
    public var original: RGBImage
    public var modelInput: RGBImage
    public var pixels: Tensor
}

/// One of the top classes of an image.
public struct ClassifierPrediction: Sendable, Equatable {
    public var index: Int
    /// `id2label` of the class (its index as text when the config has no labels).
    public var label: String
    public var probability: Float
}

/// What one batched classification produced and measured.
public struct ClassifierRunResult: @unchecked Sendable {
    /// `[B, classes]` (DeiT with teacher: the mean of its two heads).
    public var logits: Tensor
    /// Per image, the `topK` classes by probability.
    public var predictions: [[ClassifierPrediction]]
    /// Rows each block's attention and MLP ran on, per image.
    public var trace: ViTTokenTrace
    /// Wall time of the forward pass of the whole batch (preprocessed pixels in, logits out).
    public var forwardMs: Double
    /// Peak bytes held by tensors during the forward pass (`MemoryAccounting.peakBytes`).
    public var peakTensorBytes: Int
    public var processPeakRSS: Int
    /// Registry name and setting of the method that ran (nil uncompressed).
    public var method: String?
    public var setting: String?
    public var methodReport: CompressionRunReport?
    /// Per image: the patches each token after the last block stands for (nil uncompressed).
    public var tokenGroups: [[[Int]]]?
    /// Per image: FLOPs the method added beyond the blocks (Sparse-Tuning's adapters); zeros otherwise.
    public var extraFlops: [Double]
    public var notes: [String]

    public var batchSize: Int { logits.rows }
    /// Rows entering the first block (patches + class tokens).
    public var tokensIn: Int { trace.rowsEnteringBlock.first?.first ?? 0 }
    /// Per image, rows after the last block.
    public var tokensOut: [Int] { trace.rowsEnteringMLP.last ?? [] }

    /// JSON-ready dictionary (`tokc run --json` on a classifier).
    public func jsonObject(paths: [String] = []) -> [String: Any] {
        var images: [[String: Any]] = []
        for b in 0..<batchSize {
            var o: [String: Any] = [
                "top": predictions[b].map { ["index": $0.index, "label": $0.label, "probability": Double($0.probability)] as [String: Any] },
                "tokens_per_block": trace.rowsEnteringBlock.map { $0[b] },
                "tokens_entering_mlp": trace.rowsEnteringMLP.map { $0[b] },
            ]
            if b < paths.count { o["image"] = paths[b] }
            if let g = tokenGroups, b < g.count { o["token_groups"] = g[b] }
            images.append(o)
        }
        return [
            "images": images,
            "method": method.map { $0 as Any } ?? NSNull(),
            "setting": setting.map { $0 as Any } ?? NSNull(),
            "forward_ms": forwardMs,
            "batch_size": batchSize,
            "peak_tensor_bytes": peakTensorBytes,
            "process_peak_rss_bytes": processPeakRSS,
            "scoring_seconds": methodReport?.scoringSeconds ?? 0,
            "notes": notes,
        ]
    }
}

/// Loads a ViT/DeiT image-classification folder once (model, `id2label`, the folder's image
/// preprocessing) and classifies batches of images, with or without a ViT method in the blocks.
///
/// Preprocessing follows the folder's `preprocessor_config.json` (`ViTImageProcessor`,
/// `DeiTImageProcessor`, … : resize, centre crop, rescale, normalise; a config that names no class is
/// read as `ViTImageProcessor`); without the file, `ViTImageProcessor`'s defaults at the model's
/// `image_size` (noted). The model is fixed-size: preprocessing that does not end at `image_size` is
/// refused with both sizes named.
public final class ClassifierRunner: @unchecked Sendable {
    public let folder: String
    public let model: ViTClassifier
    public let preprocessor: ImagePreprocessor
    public private(set) var loadNotes: [String] = []

    /// Whether `folder`'s config.json names a ViT/DeiT image classifier (false for anything unreadable).
    public static func isClassifier(folder: String) -> Bool {
        guard let arch = try? Models.architecture(ofFolder: folder) else { return false }
        return ViTClassifierConfig.architectures[arch] != nil
    }

    public init(folder: String) throws {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDir), isDir.boolValue else {
            throw ClassifierRunError("model folder '\(folder)' does not exist")
        }
        self.folder = folder
        guard case .imageClassifier(let m) = try Models.load(folder: folder) else {
            throw ClassifierRunError("\(folder): architecture '\(try Models.architecture(ofFolder: folder))' is not an image classifier (ViTForImageClassification, DeiTForImageClassification, DeiTForImageClassificationWithTeacher)")
        }
        model = m
        let s = m.config.imageSize
        let ppPath = (folder as NSString).appendingPathComponent("preprocessor_config.json")
        if let d = FileManager.default.contents(atPath: ppPath) {
            do {
                preprocessor = try ImagePreprocessor(config: try JSONValue.parse(d), defaultType: "ViTImageProcessor")
            } catch {
                throw ClassifierRunError("\(ppPath): \(error)")
            }
            if [.llavaNext, .llavaOnevision].contains(preprocessor.kind) {
                throw ClassifierRunError("\(ppPath): \(preprocessor.kind.rawValue) preprocessing (AnyRes tiles) does not feed an image classifier")
            }
        } else {
            preprocessor = try ImagePreprocessor(config: try JSONValue.parse(Data(#"{"image_processor_type": "ViTImageProcessor", "size": {"height": \#(s), "width": \#(s)}}"#.utf8)))
            loadNotes.append("no preprocessor_config.json: ViTImageProcessor defaults at \(s)×\(s) (bilinear resize, mean/std 0.5)")
        }
        if m.labels.isEmpty { loadNotes.append("config.json has no id2label: classes are named by their index") }
    }

    /// The model's shape as a ViT method needs it.
    public var shape: ViTModelShape { ViTModelShape(model.config) }

    /// Class `i`'s name (`id2label`, or the index as text).
    public func label(_ i: Int) -> String { i < model.labels.count ? model.labels[i] : String(i) }

    /// Decodes an image file; failures name the file.
    public static func loadImage(path: String) throws -> RGBImage {
        guard FileManager.default.fileExists(atPath: path) else { throw ClassifierRunError("image '\(path)' does not exist") }
        do { return try RGBImage.load(path: path) } catch { throw ClassifierRunError("cannot decode image '\(path)': \(error)") }
    }

    /// Runs the folder's preprocessing; refuses a result that is not the model's fixed size.
    public func prepare(_ image: RGBImage, path: String? = nil) throws -> ClassifierImage {
        let input = try preprocessor.geometricPipeline(image)
        let pixels = try preprocessor(image)
        let s = model.config.imageSize, c = model.config.channels
        guard pixels.shape == [c, s, s] else {
            throw ClassifierRunError("\(path.map { "'\($0)': " } ?? "")preprocessing gives pixel values \(pixels.shape), but the model is fixed-size: it takes [\(c), \(s), \(s)] (image_size \(s); position embeddings are not interpolated). Check size/crop_size in the folder's preprocessor_config.json")
        }
        return ClassifierImage(path: path, original: image, modelInput: input, pixels: pixels)
    }

    /// Loads and prepares an image file.
    public func prepare(path: String) throws -> ClassifierImage { try prepare(try Self.loadImage(path: path), path: path) }

    /// Pixel values of several prepared images, `[B, 3, S, S]`.
    public func batch(_ images: [ClassifierImage]) throws -> Tensor {
        guard !images.isEmpty else { throw ClassifierRunError("no images to classify") }
        let per = images[0].pixels.count
        var values: [Float] = []
        values.reserveCapacity(per * images.count)
        for i in images { values += i.pixels.values }
        return try Tensor(shape: [images.count] + images[0].pixels.shape, values: values)
    }

    /// Classifies prepared images in one batch, through `compression`'s hook when given.
    public func classify(_ images: [ClassifierImage], compression: ViTCompression? = nil, topK: Int = 5) throws -> ClassifierRunResult {
        try classify(pixels: try batch(images), compression: compression, topK: topK)
    }

    /// Classifies preprocessed pixel values `[B, 3, S, S]` (a wrong size is a clear error from the model).
    public func classify(pixels: Tensor, compression: ViTCompression? = nil, topK: Int = 5) throws -> ClassifierRunResult {
        guard topK >= 1 else { throw ClassifierRunError("top-k must be at least 1, got \(topK)") }
        if let compression { try check(compression) }
        MemoryAccounting.resetPeak()
        let t0 = DispatchTime.now().uptimeNanoseconds
        let out = try model.forward(pixels, hook: compression?.hook)
        // A method's own head (Sparse-Tuning's) replaces the model's on the final [CLS] features.
        let logits = try compression?.head.map { try $0(out.classFeatures) } ?? out.logits
        let ms = Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6
        let peak = MemoryAccounting.peakBytes
        let probabilities = logits.softmaxRows()
        let k = min(topK, model.classCount)
        var predictions: [[ClassifierPrediction]] = []
        for b in 0..<logits.rows {
            let row = probabilities.row(b)
            let order = row.indices.sorted { row[$0] > row[$1] || (row[$0] == row[$1] && $0 < $1) }
            predictions.append(order.prefix(k).map { ClassifierPrediction(index: $0, label: label($0), probability: row[$0]) })
        }
        let report = compression?.report()
        return ClassifierRunResult(logits: logits, predictions: predictions, trace: out.trace, forwardMs: ms, peakTensorBytes: peak,
                                   processPeakRSS: MemoryAccounting.processPeakRSS, method: compression?.info.name,
                                   setting: compression?.setting, methodReport: report, tokenGroups: compression?.tokenGroups(),
                                   extraFlops: compression?.extraFlops() ?? Array(repeating: 0, count: logits.rows),
                                   notes: loadNotes + (report?.notes ?? []))
    }

    /// Logits `[B, classes]` and the pooled pre-logit features `[B, hidden]` (the [CLS] rows after the
    /// final norm, what the head reads) of prepared images, uncompressed: the feature space of the
    /// diffusion bench's Fréchet distance.
    public func logitsAndFeatures(_ images: [ClassifierImage]) throws -> (logits: Tensor, features: Tensor) {
        let out = try model.forward(try batch(images))
        return (out.logits, out.classFeatures)
    }

    /// Refuses a method built for another model, or one whose own head has another number of classes.
    public func check(_ compression: ViTCompression) throws {
        guard compression.shape == shape else {
            throw ClassifierRunError("\(compression.info.name) was built for a model of shape \(compression.shape), this one is \(shape)")
        }
        if let head = compression.head, head.classes != model.classCount {
            throw ClassifierRunError("\(compression.info.name): its head has \(head.classes) classes, the model \(model.classCount) (id2label): the adapters file was trained for another task")
        }
    }

    /// The merge map of one image: its model-input picture with each token's patches as one region.
    public func mergeMap(_ image: ClassifierImage, groups: [[Int]]) throws -> RGBImage {
        let side = model.config.patchesPerSide
        return try MergeMap.draw(image: image.modelInput, grid: (side, side), groups: groups)
    }
}
