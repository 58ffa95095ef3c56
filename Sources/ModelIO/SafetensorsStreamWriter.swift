import Foundation

/// Writes a safetensors file one tensor at a time: the header is fixed up front from the planned
/// names, dtypes and shapes, then each tensor's bytes are appended in plan order and dropped.
///
/// Why: `SafetensorsWriter` holds every tensor until it serializes, so converting a 7B checkpoint
/// would need the whole output in memory. Here the peak is the one tensor being written.
public final class SafetensorsStreamWriter {
    public struct Planned: Sendable, Equatable {
        public let name: String
        public let dtype: SafetensorsDType
        public let shape: [Int]
        public var byteCount: Int { shape.reduce(1, *) * dtype.size }

        public init(name: String, dtype: SafetensorsDType, shape: [Int]) {
            self.name = name
            self.dtype = dtype
            self.shape = shape
        }
    }

    public let path: String
    public let plan: [Planned]
    private let handle: FileHandle
    private var next = 0

    /// Creates (or truncates) `path` and writes the header of `plan`; names must be unique.
    public init(path: String, plan: [Planned], metadata: [String: String] = [:]) throws {
        var seen = Set<String>()
        for p in plan where !seen.insert(p.name).inserted {
            throw SafetensorsError(file: path, tensor: p.name, "planned twice")
        }
        self.path = path
        self.plan = plan
        guard FileManager.default.createFile(atPath: path, contents: nil), let h = FileHandle(forWritingAtPath: path) else {
            throw SafetensorsError(file: path, "cannot create the file")
        }
        handle = h
        try write(Data(SafetensorsWriter.prelude(plan.map { ($0.name, $0.dtype, $0.shape, $0.byteCount) }, metadata: metadata)))
    }

    deinit { try? handle.close() }

    /// The planned tensor that `append` expects next (nil when all are written).
    public var expected: Planned? { next < plan.count ? plan[next] : nil }

    /// Appends the bytes of the next planned tensor, which must be `name` with exactly its byte count.
    public func append(_ name: String, bytes: UnsafeRawBufferPointer) throws {
        guard let e = expected else { throw SafetensorsError(file: path, tensor: name, "every planned tensor is already written") }
        guard e.name == name else { throw SafetensorsError(file: path, tensor: name, "written out of plan order (expected '\(e.name)')") }
        guard bytes.count == e.byteCount else {
            throw SafetensorsError(file: path, tensor: name, "\(bytes.count) bytes, the plan's \(e.dtype.rawValue) \(e.shape) needs \(e.byteCount)")
        }
        if let base = bytes.baseAddress, bytes.count > 0 {
            // No copy: the write finishes before `bytes` can go away.
            try write(Data(bytesNoCopy: UnsafeMutableRawPointer(mutating: base), count: bytes.count, deallocator: .none))
        }
        next += 1
    }

    /// Closes the file; throws when planned tensors were never written (the header would lie).
    public func finish() throws {
        guard next == plan.count else {
            throw SafetensorsError(file: path, tensor: plan[next].name, "closed with \(plan.count - next) planned tensors not written")
        }
        do { try handle.close() } catch {
            throw SafetensorsError(file: path, "cannot finish writing: \(error.localizedDescription)")
        }
    }

    private func write(_ data: Data) throws {
        do { try handle.write(contentsOf: data) } catch {
            throw SafetensorsError(file: path, "cannot write: \(error.localizedDescription)")
        }
    }
}
