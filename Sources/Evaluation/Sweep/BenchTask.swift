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
            let video = try videoFields(obj, at: where_)
            let image = obj["image"] as? String
            guard video != nil || (image.map { !$0.isEmpty } ?? false) else {
                throw BenchError("\(where_): missing string field 'image' (or 'video')")
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
            func resolved(_ p: String) -> String { p.hasPrefix("/") ? p : baseDirectory.appendingPathComponent(p).standardizedFileURL.path }
            var sample = BenchSample(id: id, imagePath: video == nil ? resolved(image!) : "", question: question ?? "", answer: answer, type: type)
            if let video {
                sample.videoPath = resolved(video.path)
                sample.frames = video.frames
            }
            out.append(sample)
        }
        return out
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
