import Foundation
import Tensors

/// Builds a safetensors file: tensors are added by name, then written in one go.
public struct SafetensorsWriter {
    private struct Entry {
        let name: String
        let dtype: SafetensorsDType
        let shape: [Int]
        let bytes: Data
    }
    private var entries: [Entry] = []
    public var metadata: [String: String] = [:]

    public init() {}

    /// Adds a Float32 tensor stored as `dtype` (F32, F16 or BF16).
    public mutating func add(_ name: String, _ tensor: Tensor, as dtype: SafetensorsDType = .F32) throws {
        var data = Data(capacity: tensor.count * dtype.size)
        tensor.withUnsafeBufferPointer { values in
            switch dtype {
            case .F32: for v in values { withUnsafeBytes(of: v.bitPattern.littleEndian) { data.append(contentsOf: $0) } }
            case .F16: for v in values { withUnsafeBytes(of: DTypeConversion.floatToHalf(v).littleEndian) { data.append(contentsOf: $0) } }
            case .BF16:
                for v in values {
                    // Round to nearest even on the dropped 16 bits.
                    let bits = v.bitPattern
                    let rounded = UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
                    withUnsafeBytes(of: (v.isNaN ? 0x7FC0 : rounded).littleEndian) { data.append(contentsOf: $0) }
                }
            default: break
            }
        }
        guard [.F32, .F16, .BF16].contains(dtype) else {
            throw SafetensorsError(file: "(writer)", tensor: name, "cannot store a float tensor as \(dtype.rawValue)")
        }
        try append(Entry(name: name, dtype: dtype, shape: tensor.shape, bytes: data))
    }

    /// Adds an integer tensor stored as I64.
    public mutating func add(_ name: String, int64 values: [Int64], shape: [Int]? = nil) throws {
        var data = Data(capacity: values.count * 8)
        for v in values { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
        try append(Entry(name: name, dtype: .I64, shape: shape ?? [values.count], bytes: data))
    }

    /// Adds a byte tensor stored as U8.
    public mutating func add(_ name: String, uint8 values: [UInt8], shape: [Int]? = nil) throws {
        try append(Entry(name: name, dtype: .U8, shape: shape ?? [values.count], bytes: Data(values)))
    }

    /// Adds a tensor from its stored little-endian bytes in any dtype (copied from another file, or
    /// written by a quantizer); the byte count must match the shape.
    public mutating func add(_ name: String, bytes: Data, dtype: SafetensorsDType, shape: [Int]) throws {
        try append(Entry(name: name, dtype: dtype, shape: shape, bytes: bytes))
    }

    private mutating func append(_ entry: Entry) throws {
        guard entry.shape.reduce(1, *) * entry.dtype.size == entry.bytes.count else {
            throw SafetensorsError(file: "(writer)", tensor: entry.name, "shape \(entry.shape) does not match \(entry.bytes.count) bytes of \(entry.dtype.rawValue)")
        }
        guard !entries.contains(where: { $0.name == entry.name }) else {
            throw SafetensorsError(file: "(writer)", tensor: entry.name, "added twice")
        }
        entries.append(entry)
    }

    /// The complete file contents.
    public func serialized() -> Data {
        var data = Data(Self.prelude(entries.map { ($0.name, $0.dtype, $0.shape, $0.bytes.count) }, metadata: metadata))
        for e in entries { data.append(e.bytes) }
        return data
    }

    /// The bytes before the data: the header's length (u64, little-endian) and the JSON header, with
    /// offsets for tensors laid out back to back in the order given, padded so the data starts 8-aligned.
    static func prelude(_ entries: [(name: String, dtype: SafetensorsDType, shape: [Int], byteCount: Int)],
                        metadata: [String: String]) -> [UInt8] {
        var header: [String: JSONValue] = [:]
        var offset = 0
        for e in entries {
            header[e.name] = .object([
                "dtype": .string(e.dtype.rawValue),
                "shape": .array(e.shape.map { .number(Double($0)) }),
                "data_offsets": .array([.number(Double(offset)), .number(Double(offset + e.byteCount))]),
            ])
            offset += e.byteCount
        }
        if !metadata.isEmpty { header["__metadata__"] = .object(metadata.mapValues { .string($0) }) }
        var headerBytes = Array(JSONValue.object(header).description.utf8)
        while headerBytes.count % 8 != 0 { headerBytes.append(0x20) }  // pad so data stays aligned
        return withUnsafeBytes(of: UInt64(headerBytes.count).littleEndian) { Array($0) } + headerBytes
    }

    public func write(to path: String) throws {
        do { try serialized().write(to: URL(fileURLWithPath: path)) } catch {
            throw SafetensorsError(file: path, "cannot write: \(error.localizedDescription)")
        }
    }
}
