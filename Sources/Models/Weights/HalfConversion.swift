import ModelIO

/// F16/BF16 → Float32 for whole weight matrices, the hot path of streamed 7B checkpoints.
///
/// F16 goes through a 65 536-entry table (256 KB, built once from `DTypeConversion.halfToFloat`),
/// one load per element instead of the branchy bit decoding; BF16 is a shift.
enum HalfConversion {
    static let table: [Float] = (0..<65536).map { DTypeConversion.halfToFloat(UInt16($0)) }

    /// Converts `count` stored elements at `src` into `dst`; false for dtypes it does not handle.
    static func convert(_ src: UnsafeRawPointer, dtype: SafetensorsDType, count: Int, into dst: UnsafeMutablePointer<Float>) -> Bool {
        switch dtype {
        case .F16:
            table.withUnsafeBufferPointer { t in
                let lut = t.baseAddress!
                for i in 0..<count {
                    dst[i] = lut[Int(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)))]
                }
            }
            return true
        case .BF16:
            for i in 0..<count {
                dst[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
            return true
        default:
            return false
        }
    }
}
