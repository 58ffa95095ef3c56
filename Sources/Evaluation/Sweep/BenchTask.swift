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
    public static func load(jsonl path: String, requireQuestion: Bool = true) throws -> [BenchSample] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw BenchError("cannot read task file '\(path)'")
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw BenchError("task file '\(path)' is not UTF-8")
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        return try parse(text, name: path, baseDirectory: dir, requireQuestion: requireQuestion)
    }

    public static func parse(_ text: String, name: String, baseDirectory: URL, requireQuestion: Bool = true) throws -> [BenchSample] {
        var out: [BenchSample] = []
        var seen: [String: Int] = [:]
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let where_ = "\(name):\(n + 1)"
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
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
            let answer = try scalarText(obj["answer"] ?? obj["label"], field: "answer", at: where_)
            let id = try scalarText(obj["id"] ?? obj["question_id"], field: "id", at: where_) ?? "line-\(n + 1)"
            if let first = seen[id] { throw BenchError("\(where_): id '\(id)' already used on line \(first)") }
            seen[id] = n + 1
            let type = try scalarText(obj["type"] ?? obj["category"], field: "type", at: where_) ?? ""
            let imagePath = image.hasPrefix("/") ? image : baseDirectory.appendingPathComponent(image).standardizedFileURL.path
            out.append(BenchSample(id: id, imagePath: imagePath, question: question ?? "", answer: answer, type: type))
        }
        return out
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
