import Foundation
import Synchronization
import ModelIO
import Tensors

/// The tensors of a checkpoint, kept memory-mapped in their stored dtype.
///
/// A 7B model in F16 is 14 GB as stored and 28 GB as Float32, so half-precision matrices are never
/// converted whole by default: linear layers read them from the mapping (`withHalfPrecision`,
/// `HalfMatmul` widens in registers or in reused tiles), and other uses convert one tensor for the
/// call and drop it. F32 weights whose data is 4-byte aligned are used straight from the mapping.
/// With `keepConverted`, Float32 copies are cached and every product runs on sgemm (memory allowing).
public final class WeightStore: @unchecked Sendable {
    /// The checkpoint behind the store (nil for in-memory weights).
    public let checkpoint: Checkpoint?
    /// Folder or file the weights come from, for error messages.
    public let location: String
    /// Cache converted Float32 copies of large weights (faster repeated runs, more memory).
    public let keepConverted: Bool
    private let fileOfName: [String: SafetensorsFile]
    /// In-memory weights (benchmarks, tests); they never expire.
    private let memory: [String: Tensor]
    private let cache = Mutex<[String: Tensor]>([:])

    public init(checkpoint: Checkpoint, keepConverted: Bool = false) {
        self.checkpoint = checkpoint
        location = checkpoint.location
        self.keepConverted = keepConverted
        var map: [String: SafetensorsFile] = [:]
        for f in checkpoint.files { for n in f.names { map[n] = f } }
        fileOfName = map
        memory = [:]
    }

    /// Weights held in memory as Float32 (random-weight benchmarks, tests).
    public init(tensors: [String: Tensor], location: String = "in-memory weights") {
        checkpoint = nil
        self.location = location
        keepConverted = true
        fileOfName = [:]
        memory = tensors
    }

    /// Shape and stored dtype of one tensor. A quantized matrix (`tokc quantize`) reports its logical
    /// `[out, in]` shape, the dtype of its data (I8 for int8, U8 for packed int4) and `quantization`.
    public struct WeightInfo: Sendable, Equatable {
        public let shape: [Int]
        public let dtype: SafetensorsDType
        public var quantization: QuantizedFormat? = nil
        public var elementCount: Int { shape.reduce(1, *) }
    }

    /// Suffixes of the two tensors a quantized `NAME` is stored as: `NAME.qdata` (I8 `[out, in]`, or U8
    /// `[out, in/2]` for int4) and `NAME.qscales` (F32 `[out]`, or `[out, in/32]` for int4).
    public static let quantizedDataSuffix = ".qdata"
    public static let quantizedScalesSuffix = ".qscales"

    public convenience init(folder: String, keepConverted: Bool = false) throws {
        self.init(checkpoint: try Checkpoint(path: folder), keepConverted: keepConverted)
    }

    public var names: [String] { (Array(fileOfName.keys) + Array(memory.keys)).sorted() }
    public func contains(_ name: String) -> Bool {
        fileOfName[name] != nil || memory[name] != nil || fileOfName[name + Self.quantizedDataSuffix] != nil
    }

    public func info(_ name: String) throws -> WeightInfo {
        if let t = memory[name] { return WeightInfo(shape: t.shape, dtype: .F32) }
        if fileOfName[name] == nil, let q = fileOfName[name + Self.quantizedDataSuffix] {
            let i = try q.info(name + Self.quantizedDataSuffix)
            guard i.shape.count == 2, i.dtype == .I8 || i.dtype == .U8 else {
                throw ModelError("\(location): quantized '\(name)' has data \(i.dtype.rawValue) \(i.shape), expected I8 [out, in] or U8 [out, in/2]")
            }
            let format: QuantizedFormat = i.dtype == .I8 ? .int8 : .int4
            return WeightInfo(shape: [i.shape[0], format == .int8 ? i.shape[1] : i.shape[1] * 2], dtype: i.dtype, quantization: format)
        }
        guard let f = fileOfName[name] else { throw ModelError("\(location): missing tensor '\(name)'") }
        let i = try f.info(name)
        return WeightInfo(shape: i.shape, dtype: i.dtype)
    }

    /// Bytes of converted weights currently cached.
    public var residentBytes: Int { cache.withLock { $0.values.reduce(0) { $0 + $1.byteCount } } }

    private func checkShape(_ name: String, _ info: WeightInfo, _ shape: [Int]?) throws {
        if let shape, info.shape != shape {
            throw ModelError("\(location): tensor '\(name)' has shape \(info.shape), the config implies \(shape)")
        }
        guard info.dtype.isFloatingPoint else {
            throw ModelError("\(location): tensor '\(name)' is \(info.dtype.rawValue), expected a float weight")
        }
    }

    /// The whole tensor as Float32 (cached when `keepConverted` or when `alwaysCache`, for small vectors).
    public func tensor(_ name: String, shape: [Int]? = nil, alwaysCache: Bool = false) throws -> Tensor {
        if let t = memory[name] ?? cache.withLock({ $0[name] }) { return t }
        let info = try info(name)
        if info.quantization != nil {
            if let shape, info.shape != shape {
                throw ModelError("\(location): tensor '\(name)' has shape \(info.shape), the config implies \(shape)")
            }
            var t = Tensor(overwrittenShape: info.shape)
            try withQuantized(name) { m in t.withUnsafeMutableBufferPointer { m.dequantize(rows: 0, count: m.rows, into: $0.baseAddress!) } }
            return t
        }
        try checkShape(name, info, shape)
        let t = try fileOfName[name]!.tensor(name)
        if keepConverted || alwaysCache { cache.withLock { $0[name] = t } }
        return t
    }

    /// Calls `body` with a Float32 pointer to the tensor's data: the mapping itself for aligned F32,
    /// else a converted copy that lives only for the call (or the cache).
    public func withFloats<R>(_ name: String, shape: [Int]? = nil, _ body: (UnsafePointer<Float>) throws -> R) throws -> R {
        if let t = memory[name] ?? cache.withLock({ $0[name] }) { return try t.withUnsafeBufferPointer { try body($0.baseAddress!) } }
        let info = try info(name)
        if info.quantization != nil { return try tensor(name, shape: shape).withUnsafeBufferPointer { try body($0.baseAddress!) } }
        try checkShape(name, info, shape)
        let file = fileOfName[name]!
        let raw = try file.rawBytes(name)
        if info.dtype == .F32, let base = raw.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            return try body(base.assumingMemoryBound(to: Float.self))
        }
        var t = Tensor(zeros: info.shape)
        let n = info.elementCount
        let rawBase = raw.baseAddress!
        let size = info.dtype.size
        // Conversion in parallel chunks: for a 7B model this runs once per weight per forward.
        t.withUnsafeMutableBufferPointer { dst in
            let dstBase = dst.baseAddress!
            Parallel.forEachChunk(n, minimumPerThread: 1 << 16) { range in
                DTypeConversion.toFloat32(UnsafeRawBufferPointer(start: rawBase + range.lowerBound * size, count: range.count * size),
                                          dtype: info.dtype,
                                          into: UnsafeMutableBufferPointer(start: dstBase + range.lowerBound, count: range.count))
            }
        }
        if keepConverted { cache.withLock { $0[name] = t } }
        return try t.withUnsafeBufferPointer { try body($0.baseAddress!) }
    }

    /// Calls `body` with the stored bytes of a F16 or BF16 tensor, straight from the mapping, for kernels
    /// that widen in registers (`HalfMatmul`). Nil, without calling `body`, when the tensor is held as
    /// Float32 (in memory, or cached), stored in another dtype, or not 2-byte aligned, and always with
    /// `keepConverted`: that store asks for Float32 copies kept for sgemm.
    public func withHalfPrecision<R>(_ name: String, _ body: (UnsafeRawPointer, HalfFormat) throws -> R) throws -> R? {
        if keepConverted || memory[name] != nil || cache.withLock({ $0[name] != nil }) { return nil }
        let info = try info(name)
        let format: HalfFormat
        switch info.dtype {
        case .F16: format = .f16
        case .BF16: format = .bf16
        default: return nil
        }
        let raw = try fileOfName[name]!.rawBytes(name)
        guard let base = raw.baseAddress, Int(bitPattern: base) % 2 == 0, raw.count >= info.elementCount * 2 else { return nil }
        return try body(base, format)
    }

    /// Calls `body` with a quantized matrix (`tokc quantize`) read from the mapping; nil, without calling
    /// `body`, when `name` is not stored quantized. Scales not 4-byte aligned in the file are copied.
    public func withQuantized<R>(_ name: String, _ body: (QuantizedMatrix) throws -> R) throws -> R? {
        guard fileOfName[name] == nil, memory[name] == nil, let dataFile = fileOfName[name + Self.quantizedDataSuffix] else { return nil }
        let info = try info(name)
        guard let format = info.quantization else { return nil }
        let (rows, columns) = (info.shape[0], info.shape[1])
        let scalesName = name + Self.quantizedScalesSuffix
        guard let scalesFile = fileOfName[scalesName] else { throw ModelError("\(location): quantized '\(name)' has no '\(scalesName)'") }
        let si = try scalesFile.info(scalesName)
        let expected = format == .int8 ? [rows] : [rows, columns / QuantizedFormat.groupSize]
        guard si.dtype == .F32, si.shape == expected, format == .int8 || columns % QuantizedFormat.groupSize == 0 else {
            throw ModelError("\(location): '\(scalesName)' is \(si.dtype.rawValue) \(si.shape), expected F32 \(expected) for \(format.rawValue) [\(rows), \(columns)]")
        }
        let data = try dataFile.rawBytes(name + Self.quantizedDataSuffix)
        let scales = try scalesFile.rawBytes(scalesName)
        if let base = scales.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 {
            return try body(QuantizedMatrix(format: format, rows: rows, columns: columns, data: data.baseAddress!,
                                            scales: base.assumingMemoryBound(to: Float.self)))
        }
        // Unaligned in the file: a copy, for the call.
        let copy = (0..<(scales.count / 4)).map { scales.loadUnaligned(fromByteOffset: $0 * 4, as: Float.self) }
        return try copy.withUnsafeBufferPointer {
            try body(QuantizedMatrix(format: format, rows: rows, columns: columns, data: data.baseAddress!, scales: $0.baseAddress!))
        }
    }

    /// Bytes a tensor occupies as stored (data and scales for a quantized matrix).
    public func storedBytes(_ name: String) throws -> Int {
        if let t = memory[name] { return t.byteCount }
        if fileOfName[name] == nil, fileOfName[name + Self.quantizedDataSuffix] != nil {
            return try [Self.quantizedDataSuffix, Self.quantizedScalesSuffix].reduce(0) { $0 + (try fileOfName[name + $1]?.rawBytes(name + $1).count ?? 0) }
        }
        guard let f = fileOfName[name] else { throw ModelError("\(location): missing tensor '\(name)'") }
        return try f.rawBytes(name).count
    }

    /// Selected rows of a 2-D tensor as Float32 (embedding lookup without converting the table).
    public func rows(_ name: String, _ indices: [Int]) throws -> Tensor {
        let info = try info(name)
        guard info.shape.count == 2 else { throw ModelError("\(location): '\(name)' is not a matrix (shape \(info.shape))") }
        let (count, width) = (info.shape[0], info.shape[1])
        if let bad = indices.first(where: { $0 < 0 || $0 >= count }) {
            throw ModelError("token id \(bad) is out of range for '\(name)' with \(count) rows")
        }
        if let t = memory[name] ?? cache.withLock({ $0[name] }) { return try t.gatherRows(indices) }
        let raw = try fileOfName[name]!.rawBytes(name)
        let size = info.dtype.size
        var out = Tensor(zeros: [indices.count, width])
        out.withUnsafeMutableBufferPointer { dst in
            for (i, r) in indices.enumerated() {
                DTypeConversion.toFloat32(UnsafeRawBufferPointer(start: raw.baseAddress! + r * width * size, count: width * size),
                                          dtype: info.dtype,
                                          into: UnsafeMutableBufferPointer(start: dst.baseAddress! + i * width, count: width))
            }
        }
        return out
    }

    /// The first name present among `candidates`.
    func firstPresent(_ candidates: [String]) -> String? { candidates.first(where: contains) }

    /// The prefix before `anchor` of a stored name that ends with it and starts with one of `prefixes`
    /// (the key layout of the checkpoint: standalone, transformers 5, or legacy llava-hf).
    func prefix(anchor: String, among prefixes: [String]) -> String? {
        prefixes.first { contains($0 + anchor) }
    }
}

/// A `[out, in]` linear layer whose weight stays in the store until it runs.
public struct LinearWeight: Sendable {
    public let weight: String
    public let bias: String?
    public let outFeatures: Int
    public let inFeatures: Int

    /// Checks that the weight exists with the expected shape (and the bias when `bias` is required).
    init(store: WeightStore, prefix: String, out: Int, in inFeatures: Int, bias: Bool) throws {
        weight = prefix + ".weight"
        let info = try store.info(weight)
        guard info.shape == [out, inFeatures] else {
            throw ModelError("\(store.location): '\(weight)' has shape \(info.shape), the config implies [\(out), \(inFeatures)]")
        }
        if bias {
            let b = prefix + ".bias"
            let bi = try store.info(b)
            guard bi.shape == [out] else {
                throw ModelError("\(store.location): '\(b)' has shape \(bi.shape), expected [\(out)]")
            }
            self.bias = b
        } else {
            self.bias = nil
        }
        outFeatures = out
        self.inFeatures = inFeatures
    }

    /// `x · Wᵀ + b` for `x` of shape `[rows, in]`.
    ///
    /// Half-precision weights (F16, BF16) are read from the mapping by `HalfMatmul` — the direct
    /// kernel for few rows (decoding), widened tiles + sgemm for many (prefill) — so no step converts
    /// a whole matrix; Float32 weights (and `keepConverted` caches) go to one threaded sgemm.
    public func callAsFunction(_ x: Tensor, store: WeightStore) throws -> Tensor {
        guard x.columns == inFeatures else {
            throw ModelError("linear '\(weight)': input has \(x.columns) features, expected \(inFeatures)")
        }
        let m = x.rows, n = outFeatures, k = inFeatures
        var out = Tensor(overwrittenShape: Array(x.shape.dropLast()) + [n])  // bias rows or beta = 0
        if let bias {
            let b = try store.tensor(bias, alwaysCache: true)
            out.withUnsafeMutableBufferPointer { c in
                b.withUnsafeBufferPointer { bp in
                    for r in 0..<m { (c.baseAddress! + r * n).update(from: bp.baseAddress!, count: n) }
                }
            }
        }
        let cBase = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        let quantized: Void? = try store.withQuantized(weight) { matrix in
            x.withUnsafeBufferPointer { a in
                QuantizedMatmul.linear(x: a.baseAddress!, rows: m, matrix: matrix, into: cBase, accumulate: bias != nil)
            }
        }
        if quantized != nil { return out }
        let half: Void? = try store.withHalfPrecision(weight) { w, format in
            x.withUnsafeBufferPointer { a in
                HalfMatmul.linear(x: a.baseAddress!, rows: m, weight: w, format: format, outFeatures: n, inFeatures: k,
                                  into: cBase, accumulate: bias != nil)
            }
        }
        if half != nil { return out }
        let beta: Float = bias == nil ? 0 : 1
        try store.withFloats(weight) { w in
            x.withUnsafeBufferPointer { a in
                let aBase = a.baseAddress!
                BLAS.parallelSgemm(transposeB: true, m: m, n: n, k: k,
                                   a: aBase, lda: k, b: w, ldb: k, beta: beta, c: cBase, ldc: n)
            }
        }
        return out
    }
}

extension Tensor {
    /// Applies a config activation (the Tensors activations, parallel over element chunks).
    func activated(_ a: Activation) -> Tensor {
        switch a {
        case .gelu: return gelu()
        case .geluTanh: return geluTanh()
        case .quickGelu: return quickGelu()
        case .silu: return silu()
        case .relu: return map { max($0, 0) }
        }
    }

    /// In-place `self += other` (same shape), rows in parallel: residual connections.
    mutating func addInPlace(_ other: Tensor) throws {
        guard shape == other.shape else { throw ModelError("residual add: shape \(shape) vs \(other.shape)") }
        let n = count
        let o = withUnsafeMutableBufferPointer { $0.baseAddress! }
        other.withUnsafeBufferPointer { b in
            let bb = b.baseAddress!
            Parallel.forEachChunk(n, minimumPerThread: 1 << 15) { r in for i in r { o[i] += bb[i] } }
        }
    }

    /// `silu(gate) * up`, fused and parallel (the LLaMA MLP).
    static func swiGLU(gate: Tensor, up: Tensor) throws -> Tensor {
        guard gate.shape == up.shape else { throw ModelError("SwiGLU: shape \(gate.shape) vs \(up.shape)") }
        // A fresh output rather than `var out = gate`: the caller still holds `gate`, so writing
        // into it would first copy it (14 MB per layer at 640 × 5632).
        var out = Tensor(overwrittenShape: gate.shape)
        let n = out.count
        let o = out.withUnsafeMutableBufferPointer { $0.baseAddress! }
        gate.withUnsafeBufferPointer { g in
            up.withUnsafeBufferPointer { u in
                let gb = g.baseAddress!, ub = u.baseAddress!
                Parallel.forEachChunk(n, minimumPerThread: 1 << 15) { r in
                    FastMath.swiGLU(gate: gb + r.lowerBound, up: ub + r.lowerBound, into: o + r.lowerBound, count: r.count)
                }
            }
        }
        return out
    }
}
