import ArgumentParser
import Foundation

struct Tokc: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokc",
        abstract: "Token compression for transformers: methods, conformance, and measurement.",
        discussion: """
        Methods prune, merge or cache tokens (ViT patches, VLM visual tokens, video frames,
        diffusion steps). Every method is checked against its authors' code by conformance cases.
        """,
        version: ToolkitVersion.string,
        subcommands: [
            RunCommand.self, BenchCommand.self, ReportCommand.self, ConformanceCommand.self, MethodsCommand.self,
            ScheduleCommand.self, FlopsCommand.self, GenerateCommand.self, InspectCommand.self, FitPruneFitCommand.self,
            QuantizeCommand.self, TeaCacheCalibrateCommand.self, BenchDecodeCommand.self, BenchKernelsCommand.self, BenchMethodsCommand.self, BenchPrefillCommand.self,
        ]
    )
}

enum ToolkitVersion {
    static let string = "0.1.0"
}

/// Writes to standard error (progress and diagnostics stay out of piped output).
func printError(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
