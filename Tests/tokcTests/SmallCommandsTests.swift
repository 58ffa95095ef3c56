import ArgumentParser
import Evaluation
import Testing
@testable import tokc

/// The commands with a few options and no validate(): their parsed values, and the checks in
/// `run` that fail before anything is read.
@Suite struct SmallCommandsTests {
    @Test func conformanceOptions() throws {
        let c = try ConformanceCommand.parse(["cases", "--method", "fastv,dart", "--verbose"])
        #expect(c.directory == "cases" && c.method == "fastv,dart" && c.verbose)
        #expect(try ConformanceCommand.parse([]).directory == nil)
    }

    @Test func inspectOptions() throws {
        let c = try InspectCommand.parse(["m.safetensors", "--limit", "3"])
        #expect(c.path == "m.safetensors" && c.limit == 3)
        #expect(throws: (any Error).self) { try InspectCommand.parse([]) }
    }

    @Test func countsAreFormattedWithTheirUnit() {
        #expect(formatCount(999) == "999")
        #expect(formatCount(1_500) == "1.5K")
        #expect(formatCount(7_241_732_096) == "7.24B")
        #expect(formatCount(86_000_000) == "86.00M")
    }

    @Test func reportOptions() throws {
        let c = try ReportCommand.parse(["a", "b", "--out", "merged", "--html", "r.html"])
        #expect(c.folders == ["a", "b"] && c.out == "merged" && c.html == "r.html")
    }

    @Test func methodsOptions() throws {
        #expect(try MethodsCommand.parse(["--details"]).details)
        #expect(try !MethodsCommand.parse([]).details)
    }

    @Test func fitPruneFitOptions() throws {
        let c = try FitPruneFitCommand.parse(["--samples", "4", "--ratios", "0.5,0.75", "--out", "s.json", "--threads", "1"])
        #expect(c.samples == 4 && c.ratios == "0.5,0.75" && c.out == "s.json" && c.threads == 1)
        let d = try FitPruneFitCommand.parse([])
        #expect(d.samples == 16 && d.ratios == "0.5,0.75,0.89" && d.out == "fitprune-schemes.json")
    }

    /// Both checks come before the model folder is looked up: they fail with status 1 at once.
    @Test(arguments: [["--samples", "0"], ["--ratios", "0.5,half"], ["--threads", "0"]])
    func fitPruneFitRejectsBadValuesFirst(_ arguments: [String]) throws {
        let c = try FitPruneFitCommand.parse(arguments + ["--model", "/nonexistent/never-read"])
        #expect(throws: ExitCode(1)) { try c.run() }
    }
}
