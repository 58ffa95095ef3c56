import Foundation
import Tensors

/// Element types of the safetensors format.
public enum SafetensorsDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL: return 1
        }
    }

    public var isFloatingPoint: Bool { [.F64, .F32, .F16, .BF16].contains(self) }
}

/// A problem with a safetensors file, naming the file and, where it applies, the tensor.
public struct SafetensorsError: Error, CustomStringConvertible {
    public let file: String
    public let tensor: String?
    public let message: String
    public init(file: String, tensor: String? = nil, _ message: String) {
        self.file = file
        self.tensor = tensor
        self.message = message
    }
    public var description: String {
        "\(file)\(tensor.map { ": tensor '\($0)'" } ?? ""): \(message)"
    }
}

/// Where one tensor lives inside a safetensors file.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public let name: String
    public let dtype: SafetensorsDType
    public let shape: [Int]
    /// Byte range relative to the start of the data area (after the header).
    public let dataOffsets: Range<Int>
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A memory-mapped safetensors file with a fully validated header.
///
/// Tensors are converted to Float32 only when asked for, so a checkpoint stored in F16/BF16
/// stays in its own dtype in the page cache and costs memory only while a layer uses it.
public final class SafetensorsFile: @unchecked Sendable {
    public let path: String
    /// Tensors in file order (ascending offsets).
    public let tensors: [SafetensorsTensorInfo]
    /// The optional `__metadata__` string map.
    public let metadata: [String: String]
    private let index: [String: Int]
    private let mapping: UnsafeMutableRawPointer?
    private let mappedLength: Int
    private let dataStart: Int

    public init(path: String) throws {
        self.path = path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw SafetensorsError(file: path, "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw SafetensorsError(file: path, "cannot stat file") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw SafetensorsError(file: path, "not a regular file") }
        let size = Int(st.st_size)
        guard size >= 8 else {
            throw SafetensorsError(file: path, "truncated: \(size) bytes, a safetensors file needs at least 8 (header length)")
        }
        guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED else {
            throw SafetensorsError(file: path, "mmap failed: \(String(cString: strerror(errno)))")
        }
        mapping = base
        mappedLength = size
        do {
            // Checked as the unsigned number it is (2^63 must not wrap to 0 or go negative), against the
            // file first and then against the format's 100 MB cap, which bounds what parsing can allocate.
            let declared = base.loadUnaligned(as: UInt64.self).littleEndian
            guard declared <= UInt64(size - 8) else {
                throw SafetensorsError(file: path, "header length \(declared) runs past the end of the file (\(size) bytes): truncated or not a safetensors file")
            }
            let headerLength = Int(declared)
            guard headerLength <= Self.maxHeaderBytes else {
                throw SafetensorsError(file: path, "header length \(headerLength) bytes exceeds the format's limit of \(Self.maxHeaderBytes) bytes")
            }
            dataStart = 8 + headerLength
            let headerData = Data(bytes: base + 8, count: headerLength)
            let (tensors, metadata) = try Self.parseHeader(headerData, dataLength: size - dataStart, path: path)
            self.tensors = tensors
            self.metadata = metadata
            index = Dictionary(uniqueKeysWithValues: tensors.enumerated().map { ($1.name, $0) })
        } catch {
            munmap(base, size)
            throw error
        }
    }

    /// The safetensors format caps the JSON header at 100 MB (the reference reader refuses more).
    public static let maxHeaderBytes = 100_000_000

    deinit {
        if let mapping { munmap(mapping, mappedLength) }
    }

    static func parseHeader(_ data: Data, dataLength: Int, path: String) throws -> ([SafetensorsTensorInfo], [String: String]) {
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch {
            throw SafetensorsError(file: path, "header is not valid JSON (\(error))")
        }
        guard let object = json.objectValue else { throw SafetensorsError(file: path, "header is not a JSON object") }
        var metadata: [String: String] = [:]
        var infos: [SafetensorsTensorInfo] = []
        for (name, entry) in object {
            if name == "__metadata__" {
                guard let m = entry.objectValue else { throw SafetensorsError(file: path, "__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v.stringValue else { throw SafetensorsError(file: path, "__metadata__ value for '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            func bad(_ message: String) -> SafetensorsError { SafetensorsError(file: path, tensor: name, message) }
            guard let e = entry.objectValue else { throw bad("entry is not an object") }
            guard let dtypeName = e["dtype"]?.stringValue else { throw bad("missing dtype") }
            guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
                throw bad("unknown dtype '\(dtypeName)' (known: \(SafetensorsDType.allCases.map(\.rawValue).joined(separator: ", ")))")
            }
            guard let shapeValues = e["shape"]?.arrayValue else { throw bad("missing shape") }
            let shape = shapeValues.compactMap(\.intValue)
            guard shape.count == shapeValues.count, shape.allSatisfy({ $0 >= 0 }) else {
                throw bad("shape \(e["shape"]!) must be a list of non-negative integers")
            }
            guard let offsets = e["data_offsets"]?.arrayValue, offsets.count == 2,
                  let begin = offsets[0].intValue, let end = offsets[1].intValue else {
                throw bad("data_offsets must be [begin, end]")
            }
            guard begin >= 0, begin <= end else { throw bad("data_offsets [\(begin), \(end)] are reversed or negative") }
            guard end <= dataLength else {
                throw bad("data_offsets [\(begin), \(end)] run past the data area (\(dataLength) bytes): file truncated?")
            }
            // Bytes checked for overflow (a shape like [2^61] in F64 must be an error, not a trap), and the
            // non-zero dimensions too, so strides of an empty tensor such as [0, 2^62, 2^62] cannot overflow later.
            func product(_ dims: [Int]) -> (Int, Bool) {
                dims.reduce((dtype.size, false)) { acc, d in
                    let (p, o) = acc.0.multipliedReportingOverflow(by: d)
                    return (p, acc.1 || o)
                }
            }
            let (bytes, bytesOverflow) = product(shape)
            let overflow = bytesOverflow || product(shape.filter { $0 > 0 }).1
            guard !overflow, bytes == end - begin else {
                throw bad("shape \(shape) × \(dtype.rawValue) (\(dtype.size) B) needs \(overflow ? "more than 2^63" : String(bytes)) bytes but data_offsets span \(end - begin)")
            }
            infos.append(SafetensorsTensorInfo(name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end))
        }
        infos.sort { ($0.dataOffsets.lowerBound, $0.dataOffsets.upperBound, $0.name) < ($1.dataOffsets.lowerBound, $1.dataOffsets.upperBound, $1.name) }
        for (a, b) in zip(infos, infos.dropFirst()) where a.dataOffsets.overlaps(b.dataOffsets) {
            throw SafetensorsError(file: path, tensor: b.name, "data overlaps tensor '\(a.name)' (\(a.dataOffsets) and \(b.dataOffsets))")
        }
        return (infos, metadata)
    }

    /// Names in file order.
    public var names: [String] { tensors.map(\.name) }

    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let i = index[name] else { throw SafetensorsError(file: path, tensor: name, "no such tensor") }
        return tensors[i]
    }

    public func contains(_ name: String) -> Bool { index[name] != nil }

    /// The raw bytes of a tensor, in the file's dtype (valid while this file object lives).
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        let info = try info(name)
        return UnsafeRawBufferPointer(start: mapping! + dataStart + info.dataOffsets.lowerBound, count: info.dataOffsets.count)
    }

    /// The tensor converted to Float32 (any floating or integer dtype).
    public func tensor(_ name: String) throws -> Tensor {
        let info = try info(name)
        let raw = try rawBytes(name)
        var out = Tensor(zeros: info.shape)
        out.withUnsafeMutableBufferPointer { dst in
            DTypeConversion.toFloat32(raw, dtype: info.dtype, into: dst)
        }
        return out
    }

    /// The tensor's values as Int64 (integer and bool dtypes; floats are rejected).
    public func integers(_ name: String) throws -> [Int64] {
        let info = try info(name)
        guard !info.dtype.isFloatingPoint else {
            throw SafetensorsError(file: path, tensor: name, "expected an integer tensor, found \(info.dtype.rawValue)")
        }
        return DTypeConversion.toInt64(try rawBytes(name), dtype: info.dtype)
    }
}

/// Element conversions between stored dtypes and the runtime's Float32 / Int64.
public enum DTypeConversion {
    /// IEEE half → single, by bits (portable: no reliance on `Float16` availability).
    @inlinable
    public static func halfToFloat(_ h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = Int((h >> 10) & 0x1F)
        let mantissa = UInt32(h & 0x3FF)
        if exponent == 0 {
            if mantissa == 0 { return Float(bitPattern: sign) }
            // Subnormal half: value = mantissa · 2^-24.
            let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
            return sign != 0 ? -magnitude : magnitude
        }
        if exponent == 31 { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
        return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
    }

    /// Single → IEEE half, round to nearest even.
    public static func floatToHalf(_ f: Float) -> UInt16 {
        let bits = f.bitPattern
        let sign = UInt16((bits >> 16) & 0x8000)
        let exponent = Int((bits >> 23) & 0xFF)
        var mantissa = bits & 0x7F_FFFF
        if exponent == 0xFF { return sign | 0x7C00 | (mantissa != 0 ? 0x200 : 0) }
        let e = exponent - 127 + 15
        if e >= 31 { return sign | 0x7C00 }
        if e <= 0 {
            if e < -10 { return sign }
            mantissa |= 0x80_0000
            let shift = UInt32(14 - e)
            var half = mantissa >> shift
            let remainder = mantissa & ((1 << shift) - 1)
            let halfway = UInt32(1) << (shift - 1)
            if remainder > halfway || (remainder == halfway && (half & 1) == 1) { half += 1 }
            return sign | UInt16(half)
        }
        var half = UInt32(e) << 10 | (mantissa >> 13)
        let remainder = mantissa & 0x1FFF
        if remainder > 0x1000 || (remainder == 0x1000 && (half & 1) == 1) { half += 1 }
        return sign | UInt16(truncatingIfNeeded: half)
    }

    /// bfloat16 → single: the top half of a Float32.
    @inlinable
    public static func bfloat16ToFloat(_ b: UInt16) -> Float { Float(bitPattern: UInt32(b) << 16) }

    /// Every IEEE half's Float32 value: one load per element instead of the branchy bit decoding,
    /// the hot path when streamed F16 checkpoints convert each weight at every forward.
    static let halfTable: [Float] = (0..<65536).map { halfToFloat(UInt16($0)) }

    public static func toFloat32(_ raw: UnsafeRawBufferPointer, dtype: SafetensorsDType, into dst: UnsafeMutableBufferPointer<Float>) {
        let n = dst.count
        func each<T>(_ type: T.Type, _ f: (T) -> Float) {
            for i in 0..<n { dst[i] = f(raw.loadUnaligned(fromByteOffset: i * MemoryLayout<T>.size, as: T.self)) }
        }
        switch dtype {
        case .F32: each(UInt32.self) { Float(bitPattern: UInt32(littleEndian: $0)) }
        case .F16:
            halfTable.withUnsafeBufferPointer { table in
                let lut = table.baseAddress!
                each(UInt16.self) { lut[Int(UInt16(littleEndian: $0))] }
            }
        case .BF16: each(UInt16.self) { bfloat16ToFloat(UInt16(littleEndian: $0)) }
        case .F64: each(UInt64.self) { Float(Double(bitPattern: UInt64(littleEndian: $0))) }
        case .I64: each(Int64.self) { Float(Int64(littleEndian: $0)) }
        case .I32: each(Int32.self) { Float(Int32(littleEndian: $0)) }
        case .I16: each(Int16.self) { Float(Int16(littleEndian: $0)) }
        case .I8: each(Int8.self) { Float($0) }
        case .U64: each(UInt64.self) { Float(UInt64(littleEndian: $0)) }
        case .U32: each(UInt32.self) { Float(UInt32(littleEndian: $0)) }
        case .U16: each(UInt16.self) { Float(UInt16(littleEndian: $0)) }
        case .U8, .BOOL: each(UInt8.self) { Float($0) }
        }
    }

    public static func toInt64(_ raw: UnsafeRawBufferPointer, dtype: SafetensorsDType) -> [Int64] {
        let n = raw.count / dtype.size
        func each<T>(_ type: T.Type, _ f: (T) -> Int64) -> [Int64] {
            (0..<n).map { f(raw.loadUnaligned(fromByteOffset: $0 * MemoryLayout<T>.size, as: T.self)) }
        }
        switch dtype {
        case .I64: return each(Int64.self) { Int64(littleEndian: $0) }
        case .I32: return each(Int32.self) { Int64(Int32(littleEndian: $0)) }
        case .I16: return each(Int16.self) { Int64(Int16(littleEndian: $0)) }
        case .I8: return each(Int8.self) { Int64($0) }
        case .U64: return each(UInt64.self) { Int64(truncatingIfNeeded: UInt64(littleEndian: $0)) }
        case .U32: return each(UInt32.self) { Int64(UInt32(littleEndian: $0)) }
        case .U16: return each(UInt16.self) { Int64(UInt16(littleEndian: $0)) }
        case .U8, .BOOL: return each(UInt8.self) { Int64($0) }
        case .F64, .F32, .F16, .BF16: return []
        }
    }
}
