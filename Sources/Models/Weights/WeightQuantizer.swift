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
/// and `QuantizedFormat` for the layouts); every other tensor keeps its name, dtype and bytes. Other
/// files of the folder (config, tokenizer, processor) are copied alongside.
///
/// Layout, so that every F32 tensor (scales included) and F16/BF16 tensor is aligned in the mapping:
/// 8- and 4-byte tensors first, then each quantized matrix's scales directly followed by its data (a data
/// size that is a multiple of 4 keeps the next scales aligned: always for int4, whose groups are 16
/// bytes), then 2-byte tensors, then 1-byte ones.
///
/// Memory: the output is streamed (`SafetensorsStreamWriter`): the header is planned from shapes alone,
/// then each matrix is converted, written and dropped, so the peak is one tensor as Float32 plus its
/// quantized copy, not the model. An int8 matrix whose data size is not a multiple of 4 has its scales
/// with the 4-byte tensors and its data with the 1-byte ones, and is quantized once for each.
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

    /// Consecutive output tensors written from one source tensor (a quantized pair is quantized once).
    private struct Unit {
        enum Source {
            case copy
            case widen
            /// The matrix's data and scales, in `entries` order, either or both.
            case quantized(QuantizedFormat)
        }
        var source: String
        var how: Source
        var entries: [SafetensorsStreamWriter.Planned]
        /// -1: 8-byte tensors; 0: 4-byte; 1: scales + data pairs; 2: 2-byte; 3: 1-byte.
        var rank: Int
    }

    public static func convert(folder: String, target: Target, to out: String) throws -> Summary {
        let checkpoint = try Checkpoint(path: folder)
        let store = WeightStore(checkpoint: checkpoint)
        guard !store.names.contains(where: { $0.hasSuffix(WeightStore.quantizedDataSuffix) }) else {
            throw ModelError("\(folder): already quantized")
        }
        func rank(_ d: SafetensorsDType) -> Int { d.size >= 8 ? -1 : d.size == 4 ? 0 : d.size == 2 ? 2 : 3 }
        var summary = Summary()
        var units: [Unit] = []
        for name in store.names {
            let info = try store.info(name)
            summary.bytesBefore += try store.storedBytes(name)
            let asStored = SafetensorsStreamWriter.Planned(name: name, dtype: info.dtype, shape: info.shape)
            switch target {
            case .quantized(let format) where isQuantizable(name, info):
                guard format == .int8 || info.shape[1] % QuantizedFormat.groupSize == 0 else {
                    summary.keptUnquantized.append(name)
                    units.append(Unit(source: name, how: .copy, entries: [asStored], rank: rank(info.dtype)))
                    continue
                }
                let (rows, columns) = (info.shape[0], info.shape[1])
                let data = SafetensorsStreamWriter.Planned(name: name + WeightStore.quantizedDataSuffix, dtype: format == .int8 ? .I8 : .U8,
                                                           shape: [rows, format == .int8 ? columns : columns / 2])
                let scales = SafetensorsStreamWriter.Planned(name: name + WeightStore.quantizedScalesSuffix, dtype: .F32,
                                                             shape: format == .int8 ? [rows] : [rows, columns / QuantizedFormat.groupSize])
                if data.byteCount % 4 == 0 {
                    units.append(Unit(source: name, how: .quantized(format), entries: [scales, data], rank: 1))
                } else {
                    units.append(Unit(source: name, how: .quantized(format), entries: [scales], rank: 0))
                    units.append(Unit(source: name, how: .quantized(format), entries: [data], rank: 3))
                }
                summary.quantized.append(name)
            case .float32 where info.dtype.isFloatingPoint && info.dtype != .F32:
                units.append(Unit(source: name, how: .widen, entries: [.init(name: name, dtype: .F32, shape: info.shape)], rank: 0))
            default:
                units.append(Unit(source: name, how: .copy, entries: [asStored], rank: rank(info.dtype)))
            }
        }
        units.sort { ($0.rank, $0.entries[0].name) < ($1.rank, $1.entries[0].name) }
        let plan = units.flatMap(\.entries)
        summary.bytesAfter = plan.reduce(0) { $0 + $1.byteCount }

        let fm = FileManager.default
        do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            throw ModelError("\(out): cannot create the output folder: \(error.localizedDescription)")
        }
        let writer = try SafetensorsStreamWriter(path: (out as NSString).appendingPathComponent("model.safetensors"), plan: plan,
                                                 metadata: ["format": "pt", "tokc.quantization": target.metadataValue])
        for unit in units {
            switch unit.how {
            case .copy:
                try writer.append(unit.entries[0].name, bytes: try checkpoint.rawBytes(unit.source))
            case .widen:
                try store.tensor(unit.source).withUnsafeBufferPointer { try writer.append(unit.entries[0].name, bytes: UnsafeRawBufferPointer($0)) }
            case .quantized(let format):
                let info = try store.info(unit.source)
                let (data, scales) = try store.tensor(unit.source).withUnsafeBufferPointer {
                    try QuantizedMatmul.quantize($0.baseAddress!, rows: info.shape[0], columns: info.shape[1], format: format)
                }
                for e in unit.entries {
                    if e.name.hasSuffix(WeightStore.quantizedScalesSuffix) {
                        try scales.withUnsafeBytes { try writer.append(e.name, bytes: $0) }
                    } else {
                        try data.withUnsafeBytes { try writer.append(e.name, bytes: $0) }
                    }
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
