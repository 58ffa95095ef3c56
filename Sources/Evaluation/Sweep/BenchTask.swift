import Foundation

/// An error of the bench harness, with the context (file, line, option) in its message.
public struct BenchError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ message: String) { description = message }
}

/// One question of a bench task.
public struct BenchSample: Sendable, Equatable, Codable {
    public var id: String
    /// Absolute path of the image (a relative `image` is resolved against the JSONL file's folder);
    /// "" for a video sample.
    public var imagePath: String
    public var question: String
    /// Expected answer; nil when the task has none (then only fidelity is reported).
    public var answer: String?
    /// Question type for per-type accuracy ("" when the line has none).
    public var type: String
    /// Absolute path of the video (a frame folder or a video file), nil for an image sample.
    public var videoPath: String? = nil
    /// Frames to sample from the video (nil: the sweep's `--frames`, else every frame).
    public var frames: Int? = nil

    /// The file or folder the sample reads (its video, else its image).
    public var inputPath: String { videoPath ?? imagePath }
}

/// Reads a bench task: JSONL, one sample per line.
///
/// Fields: `image` (path, relative to the JSONL file) or `video` (a folder of frame images or a
/// video file, relative to the JSONL file, with an optional `frames` count to sample), `question` (alias `text`, as in POPE),
/// optional `answer` (alias `label`), `id` (alias `question_id`), `type` (alias `category`).
/// Numbers and booleans in `answer`/`id` are accepted and turned into text, because POPE-style
/// files and generated counts often store them unquoted. Blank lines are skipped; any other bad
/// line is an error naming the file and line, so a broken task never silently shrinks.
/// An image-classification task (`requireQuestion: false`) needs only `image` and `answer` (the class
/// name, or its index); a question there is kept but not used.
public enum BenchTask {
    /// The longest line a task may have. Real lines are a few hundred bytes; the cap keeps a corrupt or
    /// hostile file (one 1 GB line) from being read into memory: the reader holds at most this much
    /// of a line plus one read chunk (`readChunkBytes`).
    public static let maxLineBytes = 1 << 20
    static let readChunkBytes = 1 << 20

    /// Streams the file line by line, so memory stays bounded by the longest allowed line, not the file.
    public static func load(jsonl path: String, requireQuestion: Bool = true) throws -> [BenchSample] {
        guard let handle = FileHandle(forReadingAtPath: path) else {
            throw BenchError("cannot read task file '\(path)'")
        }
        defer { try? handle.close() }
        var parser = TaskLineParser(name: path, baseDirectory: URL(fileURLWithPath: path).deletingLastPathComponent(),
                                    requireQuestion: requireQuestion)
        var carry = Data()
        while true {
            let chunk: Data
            do { chunk = try handle.read(upToCount: readChunkBytes) ?? Data() } catch {
                throw BenchError("cannot read task file '\(path)': \(error)")
            }
            if chunk.isEmpty { break }
            var start = chunk.startIndex
            while let newline = chunk[start...].firstIndex(of: 0x0A) {
                if carry.isEmpty {
                    try parser.take(chunk[start..<newline])
                } else {
                    carry.append(chunk[start..<newline])
                    try parser.take(carry)
                    carry.removeAll(keepingCapacity: true)
                }
                start = chunk.index(after: newline)
            }
            carry.append(chunk[start...])
            try parser.checkLength(carry.count)
        }
        if !carry.isEmpty { try parser.take(carry) }
        return parser.samples
    }

    public static func parse(_ text: String, name: String, baseDirectory: URL, requireQuestion: Bool = true) throws -> [BenchSample] {
        var parser = TaskLineParser(name: name, baseDirectory: baseDirectory, requireQuestion: requireQuestion)
        for line in text.utf8.split(separator: 0x0A, omittingEmptySubsequences: false) {
            try parser.take(Data(line))
        }
        return parser.samples
    }

    /// A line's `video` and `frames`: nil without `video`; a line with both `image` and `video`, a
    /// `frames` that is not a whole number ≥ 1, or `frames` without `video` is an error.
    static func videoFields(_ obj: [String: Any], at where_: String) throws -> (path: String, frames: Int?)? {
        var frames: Int?
        if let raw = obj["frames"], !(raw is NSNull) {
            guard let n = raw as? NSNumber, String(cString: n.objCType) != "c", n.doubleValue == n.doubleValue.rounded(),
                  n.doubleValue >= 1, n.doubleValue < 1e6 else {
                throw BenchError("\(where_): field 'frames' must be a whole number ≥ 1")
            }
            frames = n.intValue
        }
        guard let value = obj["video"], !(value is NSNull) else {
            if frames != nil { throw BenchError("\(where_): field 'frames' needs a 'video'") }
            return nil
        }
        guard let path = value as? String, !path.isEmpty else { throw BenchError("\(where_): field 'video' must be a non-empty path") }
        if obj["image"] != nil { throw BenchError("\(where_): a line has an 'image' or a 'video', not both") }
        return (path, frames)
    }

    /// A string, number or boolean as text; nil when absent or null; other JSON is an error.
    static func scalarText(_ value: Any?, field: String, at where_: String) throws -> String? {
        guard let value, !(value is NSNull) else { return nil }
        if let s = value as? String { return s }
        if let n = value as? NSNumber {
            if String(cString: n.objCType) == "c" { return n.boolValue ? "yes" : "no" }
            return n.stringValue
        }
        throw BenchError("\(where_): field '\(field)' must be a string or number")
    }
}

/// One task file's lines in order: numbers them, checks their length and encoding, parses each
/// into a sample and keeps ids unique.
struct TaskLineParser {
    let name: String
    let baseDirectory: URL
    let requireQuestion: Bool
    private(set) var samples: [BenchSample] = []
    private var seen: [String: Int] = [:]
    private var lineNumber = 0

    init(name: String, baseDirectory: URL, requireQuestion: Bool) {
        self.name = name
        self.baseDirectory = baseDirectory
        self.requireQuestion = requireQuestion
    }

    /// Refuses a line (or the unfinished part of one) longer than `BenchTask.maxLineBytes`.
    func checkLength(_ bytes: Int) throws {
        guard bytes <= BenchTask.maxLineBytes else {
            throw BenchError("\(name):\(lineNumber + 1): line longer than \(BenchTask.maxLineBytes) bytes (a task line holds one sample of a few hundred bytes; is this a task file?)")
        }
    }

    mutating func take(_ bytes: Data) throws {
        try checkLength(bytes.count)
        lineNumber += 1
        let n = lineNumber
        let where_ = "\(name):\(n)"
        guard let line = String(data: bytes, encoding: .utf8) else { throw BenchError("\(where_): not UTF-8") }
        let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
        if trimmed.isEmpty { return }
        let parsed: Any
        do { parsed = try JSONSerialization.jsonObject(with: Data(trimmed.utf8)) } catch {
            throw BenchError("\(where_): not valid JSON")
        }
        guard let obj = parsed as? [String: Any] else { throw BenchError("\(where_): expected a JSON object") }
        let video = try BenchTask.videoFields(obj, at: where_)
        let image = obj["image"] as? String
        guard video != nil || (image.map { !$0.isEmpty } ?? false) else {
            throw BenchError("\(where_): missing string field 'image' (or 'video')")
        }
        let question = (obj["question"] ?? obj["text"]) as? String
        guard question != nil || !requireQuestion else {
            throw BenchError("\(where_): missing string field 'question' (or POPE's 'text')")
        }
        let answer = try BenchTask.scalarText(obj["answer"] ?? obj["label"], field: "answer", at: where_)
        let id = try BenchTask.scalarText(obj["id"] ?? obj["question_id"], field: "id", at: where_) ?? "line-\(n)"
        if let first = seen[id] { throw BenchError("\(where_): id '\(id)' already used on line \(first)") }
        seen[id] = n
        let type = try BenchTask.scalarText(obj["type"] ?? obj["category"], field: "type", at: where_) ?? ""
        func resolved(_ p: String) -> String { p.hasPrefix("/") ? p : baseDirectory.appendingPathComponent(p).standardizedFileURL.path }
        var sample = BenchSample(id: id, imagePath: video == nil ? resolved(image!) : "", question: question ?? "", answer: answer, type: type)
        if let video {
            sample.videoPath = resolved(video.path)
            sample.frames = video.frames
        }
        samples.append(sample)
    }
}
