import Foundation
import ModelIO
import Tensors

/// Writes a weight-only quantized copy of a decoder checkpoint (`tokc quantize`).
///
/// Which tensors: every 2-D float matrix whose name ends in `_proj.weight` (attention and MLP
/// projections of the language model, and of a vision tower or projector if the checkpoint has
/// them) and `lm_head.weight`. Embeddings, norms and biases are copied as stored: embeddings are
/// looked up by row, not multiplied, and the rest is small. A matrix whose `in` is not a multiple of
/// 32 stays unquantized for int4 (listed in the summary).
///
/// File format (one `model.safetensors`, metadata `tokc.quantization` = `int8` or `int4-g32`): a
/// quantized `NAME` is stored as `NAME.qdata` and `NAME.qscales` (see `WeightStore.quantizedDataSuffix`
/// and `QuantizedFormat` for the layouts); every other tensor keeps its name, dtype and bytes. Tensors are
/// ordered by element size (4-byte first) so that F32 scales and F16 data stay aligned in the mapping.
/// Other files of the folder (config, tokenizer, processor) are copied alongside.
public enum WeightQuantizer {
    public struct Summary: Sendable {
        public var quantized: [String] = []
        public var keptUnquantized: [String] = []
        public var bytesBefore = 0
        public var bytesAfter = 0
    }

    /// Whether `name` is a matrix the quantizer converts.
    public static func isQuantizable(_ name: String, _ info: WeightStore.WeightInfo) -> Bool {
        info.shape.count == 2 && info.dtype.isFloatingPoint && (name.hasSuffix("_proj.weight") || name.hasSuffix("lm_head.weight"))
    }

    public static func quantize(folder: String, format: QuantizedFormat, to out: String) throws -> Summary {
        let checkpoint = try Checkpoint(path: folder)
        let store = WeightStore(checkpoint: checkpoint)
        guard !store.names.contains(where: { $0.hasSuffix(WeightStore.quantizedDataSuffix) }) else {
            throw ModelError("\(folder): already quantized")
        }
        var summary = Summary()
        var entries: [(name: String, dtype: SafetensorsDType, shape: [Int], bytes: Data)] = []
        for name in store.names {
            let info = try store.info(name)
            let raw = try store.storedBytes(name)
            summary.bytesBefore += raw
            if isQuantizable(name, info), format == .int8 || info.shape[1] % QuantizedFormat.groupSize == 0 {
                let (rows, columns) = (info.shape[0], info.shape[1])
                let (data, scales) = try store.tensor(name).withUnsafeBufferPointer {
                    try QuantizedMatmul.quantize($0.baseAddress!, rows: rows, columns: columns, format: format)
                }
                entries.append((name + WeightStore.quantizedDataSuffix, format == .int8 ? .I8 : .U8,
                                [rows, format == .int8 ? columns : columns / 2], Data(data)))
                entries.append((name + WeightStore.quantizedScalesSuffix, .F32,
                                format == .int8 ? [rows] : [rows, columns / QuantizedFormat.groupSize],
                                scales.withUnsafeBytes { Data($0) }))
                summary.quantized.append(name)
            } else {
                if isQuantizable(name, info) { summary.keptUnquantized.append(name) }
                guard let file = checkpoint.files.first(where: { $0.contains(name) }) else { continue }
                entries.append((name, info.dtype, info.shape, Data(try file.rawBytes(name))))
            }
        }
        var writer = SafetensorsWriter()
        writer.metadata = ["format": "pt", "tokc.quantization": format == .int8 ? "int8" : "int4-g32"]
        for e in entries.sorted(by: { ($0.dtype.size, $0.name) > ($1.dtype.size, $1.name) }) {
            try writer.add(e.name, bytes: e.bytes, dtype: e.dtype, shape: e.shape)
            summary.bytesAfter += e.bytes.count
        }
        let fm = FileManager.default
        do { try fm.createDirectory(atPath: out, withIntermediateDirectories: true) } catch {
            throw ModelError("\(out): cannot create the output folder: \(error.localizedDescription)")
        }
        try writer.write(to: (out as NSString).appendingPathComponent("model.safetensors"))
        var isFolder: ObjCBool = false
        if fm.fileExists(atPath: folder, isDirectory: &isFolder), isFolder.boolValue {
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
        return summary
    }
}
