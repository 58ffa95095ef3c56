import Foundation

/// Heap buffer of Float32 values owned by one or more `Tensor`s (copy-on-write).
///
/// A class so that its lifetime can be counted by `MemoryAccounting`.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    init(count: Int) {
        self.count = count
        pointer = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
        MemoryAccounting.allocated(count * MemoryLayout<Float>.stride)
    }

    deinit {
        pointer.deallocate()
        MemoryAccounting.freed(count * MemoryLayout<Float>.stride)
    }
}

/// A dense, row-major Float32 tensor with value semantics.
///
/// Rows are the last-but-one axis: a `[tokens, width]` tensor is what every token-compression
/// method reads and writes, so row operations (gather, scatter, softmax, norms) are first-class.
public struct Tensor: @unchecked Sendable {
    public private(set) var shape: [Int]
    @usableFromInline var storage: TensorStorage

    /// Number of elements.
    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    /// Size of the last axis (1 for scalars).
    public var columns: Int { shape.last ?? 1 }
    /// Product of all axes but the last.
    public var rows: Int { columns == 0 ? 0 : count / columns }
    /// Bytes of Float32 storage this tensor holds.
    public var byteCount: Int { count * MemoryLayout<Float>.stride }

    /// Zero-filled tensor of the given shape.
    public init(zeros shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
        storage.pointer.initialize(repeating: 0, count: storage.count)
    }

    /// A tensor whose contents are unspecified until written: for kernel outputs that write every
    /// element (a `beta = 0` sgemm, attention's output blocks). Saves a memset of the output, which
    /// is ~3% of a ViT layer at 577 tokens.
    public init(overwrittenShape shape: [Int]) {
        precondition(shape.allSatisfy { $0 >= 0 }, "negative dimension in \(shape)")
        self.shape = shape
        storage = TensorStorage(count: shape.reduce(1, *))
    }

    public init(shape: [Int], repeating value: Float) {
        self.init(zeros: shape)
        storage.pointer.update(repeating: value, count: storage.count)
    }

    /// Wraps `values` with `shape`; throws when the element count does not match.
    public init(shape: [Int], values: [Float]) throws {
        let n = shape.reduce(1, *)
        guard shape.allSatisfy({ $0 >= 0 }), n == values.count else {
            throw TensorError("Tensor(shape: \(shape)) needs \(n) values, got \(values.count)")
        }
        self.init(zeros: shape)
        values.withUnsafeBufferPointer { storage.pointer.update(from: $0.baseAddress!, count: n) }
    }

    /// A `[rows, columns]` tensor from nested arrays (tests and small fixtures).
    public init(rows: [[Float]]) throws {
        let c = rows.first?.count ?? 0
        guard rows.allSatisfy({ $0.count == c }) else { throw TensorError("ragged rows") }
        try self.init(shape: [rows.count, c], values: rows.flatMap { $0 })
    }

    /// Copies the values out.
    public var values: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    /// Read access without copying.
    @inlinable
    public func withUnsafeBufferPointer<R>(_ body: (UnsafeBufferPointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafeBufferPointer(start: storage.pointer, count: storage.count))
    }

    /// Write access; copies the storage first if another tensor shares it.
    @inlinable
    public mutating func withUnsafeMutableBufferPointer<R>(_ body: (UnsafeMutableBufferPointer<Float>) throws -> R) rethrows -> R {
        makeUnique()
        return try body(UnsafeMutableBufferPointer(start: storage.pointer, count: storage.count))
    }

    @usableFromInline
    mutating func makeUnique() {
        if !isKnownUniquelyReferenced(&storage) {
            let copy = TensorStorage(count: storage.count)
            copy.pointer.initialize(from: storage.pointer, count: storage.count)
            storage = copy
        }
    }

    /// Element at a flat index.
    public subscript(flat index: Int) -> Float {
        get { storage.pointer[index] }
        set { makeUnique(); storage.pointer[index] = newValue }
    }

    /// Element at `[row, column]` of the tensor seen as `[rows, columns]`.
    public subscript(row: Int, column: Int) -> Float {
        get { storage.pointer[row * columns + column] }
        set { makeUnique(); storage.pointer[row * columns + column] = newValue }
    }

    /// One row as an array (the tensor seen as `[rows, columns]`).
    public func row(_ r: Int) -> [Float] {
        Array(UnsafeBufferPointer(start: storage.pointer + r * columns, count: columns))
    }

    /// Same values, new shape (shares storage).
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        guard newShape.reduce(1, *) == count else {
            throw TensorError.shape("reshape", "\(shape) -> \(newShape)")
        }
        var t = self
        t.shape = newShape
        return t
    }
}

extension Tensor: CustomStringConvertible {
    public var description: String {
        let preview = values.prefix(8).map { String(format: "%.4g", $0) }.joined(separator: ", ")
        return "Tensor(\(shape): [\(preview)\(count > 8 ? ", …" : "")])"
    }
}
