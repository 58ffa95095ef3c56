import Foundation
import ModelIO
import Tensors

/// Writes a converted copy of a checkpoint: weight-only quantized (`tokc quantize`) or widened to
/// Float32 (the F32 baseline of `tokc bench --precisions`).
///
/// Which tensors are quantized: every 2-D float matrix of the language model whose name ends in
/// `_proj.weight` (attention and MLP projections) and `lm_head.weight`. A LLaVA checkpoint's vision
/// tower and projector stay as stored: the question this serves (issue #22) is whether quantizing the
/// LLM composes with token compression, and the tower's MLP (`fc1`/`fc2`) never matched the rule, so
/// quantizing only its attention would have been an accident of naming. Embeddings, norms and biases
/// are copied as stored: embeddings are looked up by row, not multiplied, and the rest is small. A
/// matrix whose `in` is not a multiple of 32 stays unquantized for int4 (listed in the summary).
///
/// File format (one `model.safetensors`, metadata `tokc.quantization` = `int8` or `int4-g32`): a
/// quantized `NAME` is stored as `NAME.qdata` and `NAME.qscales` (see `WeightStore.quantizedDataSuffix`
/// and `QuantizedFormat` for the layouts); every other tensor keeps its name, dtype and bytes. Tensors are
/// ordered by element size (4-byte first) so that F32 scales and F16 data stay aligned in the mapping.
/// Other files of the folder (config, tokenizer, processor) are copied alongside.
///
/// Memory: the output is streamed (`SafetensorsStreamWriter`): the header is planned from shapes alone,
/// then each tensor is converted, written and dropped, so the peak is one tensor as Float32 plus its
/// quantized copy, not the model. Because a matrix's scales (F32, written with the 4-byte tensors) and
/// its data (1-byte, written last) sit apart in the file, each quantized matrix is quantized twice —
/// CPU time traded for not holding every scale.
public enum WeightQuantizer {
    /// What the copy holds.
    public enum Target: Sendable, Equatable {
        /// Every float tensor as F32 (other dtypes as stored).
        case float32
        /// The language model's linear layers quantized.
        case quantized(QuantizedFormat)

        var metadataValue: String {
            switch self {
            case .float32: "f32"
            case .quantized(.int8): "int8"
            case .quantized(.int4): "int4-g32"
            }
        }
    }

    public struct Summary: Sendable {
        public var quantized: [String] = []
        public var keptUnquantized: [String] = []
        public var bytesBefore = 0
        public var bytesAfter = 0
    }

    /// Whether `name` is a matrix the quantizer converts.
    public static func isQuantizable(_ name: String, _ info: WeightStore.WeightInfo) -> Bool {
        info.shape.count == 2 && info.dtype.isFloatingPoint && !isVisionSide(name)
            && (name.hasSuffix("_proj.weight") || name.hasSuffix("lm_head.weight"))
    }

    /// Vision tower and multimodal projector tensors of a VLM checkpoint (every key layout the loaders read).
    static func isVisionSide(_ name: String) -> Bool {
        ["vision_tower.", "vision_model.", "multi_modal_projector."].contains { name.contains($0) }
    }

    public static func quantize(folder: String, format: QuantizedFormat, to out: String) throws -> Summary {
        try convert(folder: folder, target: .quantized(format), to: out)
    }

    /// One planned output tensor and where its bytes come from.
    private enum Source {
        case copy(String)
        case widen(String)
        case quantizedData(String, QuantizedFormat)
        case quantizedScales(String, QuantizedFormat)
    }

    public static func convert(folder: String, target: Target, to out: String) throws -> Summary {
        let checkpoint = try Checkpoint(path: folder)
        let store = WeightStore(checkpoint: checkpoint)
        guard !store.names.contains(where: { $0.hasSuffix(WeightStore.quantizedDataSuffix) }) else {
            throw ModelError("\(folder): already quantized")
        }
        var summary = Summary()
        var planned: [(SafetensorsStreamWriter.Planned, Source)] = []
        for name in store.names {
            let info = try store.info(name)
            summary.bytesBefore += try store.storedBytes(name)
            switch target {
            case .quantized(let format) where isQuantizable(name, info):
                guard format == .int8 || info.shape[1] % QuantizedFormat.groupSize == 0 else {
                    summary.keptUnquantized.append(name)
                    planned.append((.init(name: name, dtype: info.dtype, shape: info.shape), .copy(name)))
                    continue
                }
                let (rows, columns) = (info.shape[0], info.shape[1])
                planned.append((.init(name: name + WeightStore.quantizedDataSuffix, dtype: format == .int8 ? .I8 : .U8,
                                      shape: [rows, format == .int8 ? columns : columns / 2]), .quantizedData(name, format)))
                planned.append((.init(name: name + WeightStore.quantizedScalesSuffix, dtype: .F32,
                                      shape: format == .int8 ? [rows] : [rows, columns / QuantizedFormat.groupSize]),
                                .quantizedScales(name, format)))
                summary.quantized.append(name)
            case .float32 where info.dtype.isFloatingPoint && info.dtype != .F32:
                planned.append((.init(name: name, dtype: .F32, shape: info.shape), .widen(name)))
            default:
                planned.append((.init(name: name, dtype: info.dtype, shape: info.shape), .copy(name)))
            }
        }
        planned.sort { ($0.0.dtype.size, $0.0.name) > ($1.0.dtype.size, $1.0.name) }
        summary.bytesAfter = planned.reduce(0) { $0 + $1.0.byteCount }

        let fm = FileManager.default
        do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            throw ModelError("\(out): cannot create the output folder: \(error.localizedDescription)")
        }
        let writer = try SafetensorsStreamWriter(path: (out as NSString).appendingPathComponent("model.safetensors"),
                                                 plan: planned.map(\.0),
                                                 metadata: ["format": "pt", "tokc.quantization": target.metadataValue])
        for (entry, source) in planned {
            switch source {
            case .copy(let name):
                try writer.append(entry.name, bytes: try checkpoint.rawBytes(name))
            case .widen(let name):
                try store.tensor(name).withUnsafeBufferPointer { try writer.append(entry.name, bytes: UnsafeRawBufferPointer($0)) }
            case .quantizedData(let name, let format), .quantizedScales(let name, let format):
                let info = try store.info(name)
                let (data, scales) = try store.tensor(name).withUnsafeBufferPointer {
                    try QuantizedMatmul.quantize($0.baseAddress!, rows: info.shape[0], columns: info.shape[1], format: format)
                }
                if case .quantizedData = source {
                    try data.withUnsafeBytes { try writer.append(entry.name, bytes: $0) }
                } else {
                    try scales.withUnsafeBytes { try writer.append(entry.name, bytes: $0) }
                }
            }
        }
        try writer.finish()
        try copyOtherFiles(from: folder, to: out)
        return summary
    }

    /// Config, tokenizer, processor and the like: every plain file of the folder but the weights.
    private static func copyOtherFiles(from folder: String, to out: String) throws {
        let fm = FileManager.default
        var isFolder: ObjCBool = false
        guard fm.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue else { return }
        for f in try fm.contentsOfDirectory(atPath: folder).sorted()
        where !f.hasSuffix(".safetensors") && f != "model.safetensors.index.json" && !f.hasPrefix(".") {
            let src = (folder as NSString).appendingPathComponent(f), dst = (out as NSString).appendingPathComponent(f)
            var sub: ObjCBool = false
            guard fm.fileExists(atPath: src, isDirectory: &sub), !sub.boolValue else { continue }
            if fm.fileExists(atPath: dst) { try? fm.removeItem(atPath: dst) }
            do { try fm.copyItem(atPath: src, toPath: dst) } catch {
                throw ModelError("\(dst): cannot copy \(f): \(error.localizedDescription)")
            }
        }
    }
}
