import ArgumentParser
import Foundation
import ModelIO

struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "List the tensors of a safetensors file or Hugging Face model folder.",
        discussion: "Prints names, dtypes and shapes, the parameter total, and the folder's config.json."
    )

    @Argument(help: "A .safetensors file or a model folder (sharded checkpoints are read as one).")
    var path: String

    @Option(name: .long, help: "Show at most this many tensors (0 = all).")
    var limit = 0

    func run() throws {
        do {
            let checkpoint = try Checkpoint(path: path)
            let names = checkpoint.names
            print("\(names.count) tensors in \(checkpoint.files.count) file(s)")
            for name in (limit > 0 ? Array(names.prefix(limit)) : names) {
                let info = try checkpoint.info(name)
                print("  \(name)  \(info.dtype.rawValue)  \(info.shape)")
            }
            if limit > 0, names.count > limit { print("  … \(names.count - limit) more") }
            print("parameters: \(checkpoint.parameterCount) (\(formatCount(checkpoint.parameterCount)))")
            var isDirectory: ObjCBool = false
            _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
            let configPath = (isDirectory.boolValue ? path : URL(fileURLWithPath: path).deletingLastPathComponent().path) + "/config.json"
            if FileManager.default.fileExists(atPath: configPath) {
                let config = try JSONValue.parse(try Data(contentsOf: URL(fileURLWithPath: configPath)))
                print("config.json:")
                print(config.formatted())
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
    }
}

func formatCount(_ n: Int) -> String {
    let d = Double(n)
    if d >= 1e9 { return String(format: "%.2fB", d / 1e9) }
    if d >= 1e6 { return String(format: "%.2fM", d / 1e6) }
    if d >= 1e3 { return String(format: "%.1fK", d / 1e3) }
    return String(n)
}
