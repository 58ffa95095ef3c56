import ArgumentParser
import Testing
@testable import tokc

/// Every subcommand of `tokc`: a minimal invocation parses to that command through the root (so a
/// broken option declaration, a renamed command or a validation that rejects the defaults fails
/// here), and its help screen renders with its name, abstract and options.
@Suite struct TokcSubcommandTests {
    /// One minimal invocation per subcommand: only what it requires (a placeholder path where it takes
    /// one; nothing is read while parsing).
    static let minimal: [(command: ParsableCommand.Type, arguments: [String])] = [
        (RunCommand.self, []),
        (BenchCommand.self, []),
        (ReportCommand.self, ["bench-out"]),
        (ConformanceCommand.self, []),
        (MethodsCommand.self, []),
        (ScheduleCommand.self, ["--method", "fora"]),
        (FlopsCommand.self, ["--preset", "llava-1.5-7b"]),
        (GenerateCommand.self, []),
        (InspectCommand.self, ["model.safetensors"]),
        (FitPruneFitCommand.self, []),
        (QuantizeCommand.self, ["--model", "in", "--bits", "8", "--out", "out"]),
        (TeaCacheCalibrateCommand.self, ["--model", "pipeline"]),
        (BenchDecodeCommand.self, ["--model", "decoder"]),
        (BenchKernelsCommand.self, []),
        (BenchMethodsCommand.self, []),
        (BenchPrefillCommand.self, []),
    ]

    static var names: [String] { minimal.map { $0.command._commandName } }

    @Test func tableCoversEverySubcommand() {
        let registered = Tokc.configuration.subcommands.map { $0._commandName }
        #expect(registered.sorted() == Self.names.sorted())
        #expect(Set(registered).count == registered.count, "two subcommands share a name")
    }

    @Test(arguments: minimal.indices)
    func minimalInvocationParses(_ index: Int) throws {
        let (command, arguments) = Self.minimal[index]
        let parsed = try Tokc.parseAsRoot([command._commandName] + arguments)
        #expect(type(of: parsed) == command, "tokc \(command._commandName) parsed as \(type(of: parsed))")
    }

    @Test(arguments: minimal.indices)
    func helpRenders(_ index: Int) {
        let command = Self.minimal[index].command
        let name = command._commandName
        let help = Tokc.helpMessage(for: command, columns: 120)
        #expect(help.contains("USAGE: tokc \(name)"), "\(name): \(help.prefix(200))")
        #expect(help.contains(command.configuration.abstract.prefix(30)))
        #expect(help.contains("-h, --help"))
        for option in Self.minimal[index].arguments where option.hasPrefix("--") {
            #expect(help.contains(option), "\(name) requires \(option) but its help omits it")
        }
    }

    @Test func rootHelpListsEverySubcommand() {
        let help = Tokc.helpMessage(columns: 200)
        for name in Self.names { #expect(help.contains(name), "tokc --help omits \(name)") }
    }

    @Test func unknownSubcommandAndOptionAreRejected() {
        #expect(throws: (any Error).self) { try Tokc.parseAsRoot(["no-such-command"]) }
        #expect(throws: (any Error).self) { try Tokc.parseAsRoot(["methods", "--no-such-option"]) }
    }

    @Test func versionIsTheToolkits() {
        #expect(Tokc.configuration.version == ToolkitVersion.string)
        #expect(ToolkitVersion.string.split(separator: ".").count == 3)
    }
}
