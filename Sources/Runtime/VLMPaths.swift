import Foundation

/// Finds the bundled defaults (`builtin/models/llava`, `builtin/tasks/scenes`) for `tokc run`.
///
/// A relative path is tried against the current directory first (what a user typing it expects),
/// then against the repository the executable was built in (`.build/<config>/tokc` lives two or
/// three levels below the checkout), so `tokc run` works from any directory after `swift build`.
public enum VLMPaths {
    public static let builtinModel = "builtin/models/llava"
    public static let builtinSamples = "builtin/tasks/scenes/sample.jsonl"
    /// The fixed 500-sample test split of the built-in task (`tools/builtin/scenes.py --split test`).
    public static let builtinTestSplit = "builtin/tasks/scenes/test.jsonl"

    /// The first existing candidate for `path`, or nil. Absolute paths are returned as given when they exist.
    public static func resolve(_ path: String, executable: String? = nil) -> String? {
        let fm = FileManager.default
        if path.hasPrefix("/") { return fm.fileExists(atPath: path) ? path : nil }
        for base in candidateBases(executable: executable) {
            let p = URL(fileURLWithPath: base).appendingPathComponent(path).standardizedFileURL.path
            if fm.fileExists(atPath: p) { return p }
        }
        return nil
    }

    /// The current directory, then every ancestor of the executable's folder.
    static func candidateBases(executable: String?) -> [String] {
        var bases = [FileManager.default.currentDirectoryPath]
        let exe = executable ?? Bundle.main.executableURL?.resolvingSymlinksInPath().path
        guard let exe else { return bases }
        var dir = URL(fileURLWithPath: exe).deletingLastPathComponent().standardizedFileURL
        while dir.path != "/" && !dir.path.isEmpty {
            bases.append(dir.path)
            dir = dir.deletingLastPathComponent()
        }
        return bases
    }

    /// Where the default model is, or an error that says where we looked.
    public static func defaultModelFolder(executable: String? = nil) throws -> String {
        guard let p = resolve(builtinModel, executable: executable) else {
            throw VLMRunError("built-in model '\(builtinModel)' not found in the current directory or above the executable; pass --model DIR")
        }
        return p
    }
}

/// One bundled sample scene (`builtin/tasks/scenes/sample.jsonl`): image, question, expected answer.
public struct VLMSample: Sendable, Equatable {
    public var id: String
    /// Absolute path of the image (resolved against the jsonl file's folder).
    public var imagePath: String
    public var question: String
    public var answer: String
    public var type: String

    /// Reads every sample of a jsonl file; blank lines are skipped, malformed ones are errors with the line number.
    public static func load(jsonl path: String) throws -> [VLMSample] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw VLMRunError("cannot read samples file \(path)")
        }
        let dir = URL(fileURLWithPath: path).deletingLastPathComponent()
        var out: [VLMSample] = []
        for (n, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(trimmed.utf8)) as? [String: Any],
                  let image = obj["image"] as? String, let question = obj["question"] as? String else {
                throw VLMRunError("\(path):\(n + 1): expected a JSON object with 'image' and 'question'")
            }
            let imagePath = image.hasPrefix("/") ? image : dir.appendingPathComponent(image).standardizedFileURL.path
            out.append(VLMSample(id: obj["id"] as? String ?? "line-\(n + 1)", imagePath: imagePath, question: question,
                                 answer: (obj["answer"] as? String) ?? (obj["answer"].map { "\($0)" } ?? ""),
                                 type: obj["type"] as? String ?? ""))
        }
        return out
    }

    /// The bundled samples (error if the file is not found).
    public static func builtin(executable: String? = nil) throws -> [VLMSample] {
        guard let p = VLMPaths.resolve(VLMPaths.builtinSamples, executable: executable) else {
            throw VLMRunError("bundled samples '\(VLMPaths.builtinSamples)' not found in the current directory or above the executable")
        }
        let s = try load(jsonl: p)
        guard !s.isEmpty else { throw VLMRunError("\(p) has no samples") }
        return s
    }
}
