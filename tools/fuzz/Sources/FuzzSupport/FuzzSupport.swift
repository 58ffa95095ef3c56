import Foundation

/// Pieces every fuzz target shares: turning libFuzzer's bytes into the parser's input shapes.
public enum FuzzInput {
    /// The raw bytes libFuzzer hands over.
    public static func data(_ bytes: UnsafePointer<UInt8>, _ size: Int) -> Data {
        size == 0 ? Data() : Data(bytes: bytes, count: size)
    }

    /// Splits at the first NUL byte: two inputs for targets that read two things (a tokenizer.json and
    /// the text it encodes, a case.json and its inputs.safetensors). Without a NUL, the second is nil.
    public static func split(_ data: Data) -> (Data, Data?) {
        guard let i = data.firstIndex(of: 0) else { return (data, nil) }
        return (data[data.startIndex..<i], data[data.index(after: i)...])
    }

    /// Bytes as text the way a file reader would see them (invalid UTF-8 repaired, not refused).
    public static func text(_ data: Data) -> String { String(decoding: data, as: UTF8.self) }
}

/// A private scratch folder per fuzzing process, for the readers that take a path (memory-mapped
/// safetensors, model folders). Files are overwritten on every input.
public enum FuzzScratch {
    public static let folder: String = {
        let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
        let dir = "\(base)/tokc-fuzz-\(getpid())"
        try? FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }()

    /// Writes `data` to `name` in the scratch folder and returns its path.
    @discardableResult
    public static func write(_ data: Data, _ name: String) -> String {
        let path = folder + "/" + name
        FileManager.default.createFile(atPath: path, contents: data)
        return path
    }

    public static func remove(_ name: String) { try? FileManager.default.removeItem(atPath: folder + "/" + name) }
}
