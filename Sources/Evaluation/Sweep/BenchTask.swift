import Foundation

/// An error of the bench harness, with the context (file, line, option) in its message.
public struct BenchError: Error, CustomStringConvertible, Equatable {
    public var description: String
    public init(_ message: String) { description = message }
}

/// One question of a bench task.
public struct BenchSample: Sendable, Equatable, Codable {
    public var id: String
    /// Absolute path of the image (a relative `image` is resolved against the JSONL file's folder).
    public var imagePath: String
    public var question: String
    /// Expected answer; nil when the task has none (then only fidelity is reported).
    public var answer: String?
    /// Question type for per-type accuracy ("" when the line has none).
    public var type: String
}

/// Reads a bench task: JSONL, one sample per line.
///
/// Fields: `image` (path, relative to the JSONL file), `question` (alias `text`, as in POPE),
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
        guard let image = obj["image"] as? String, !image.isEmpty else {
            throw BenchError("\(where_): missing string field 'image'")
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
        let imagePath = image.hasPrefix("/") ? image : baseDirectory.appendingPathComponent(image).standardizedFileURL.path
        samples.append(BenchSample(id: id, imagePath: imagePath, question: question ?? "", answer: answer, type: type))
    }
}
