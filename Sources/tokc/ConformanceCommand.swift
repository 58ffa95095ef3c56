import ArgumentParser
import Evaluation
import Foundation

struct ConformanceCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "conformance",
        abstract: "Run the conformance cases (authors' reference outputs) against the implemented methods.",
        discussion: """
        Finds every case.json below DIR, runs the registered method on the case's inputs and compares
        with the expected tensors (exact for indices, atol/rtol for floats). Prints one line per case
        and 'N passed, M failed'; exits with status 1 when any case fails. A case whose method is not
        implemented fails; nothing is skipped.
        """
    )

    @Argument(help: "Folder holding cases (default: ../shared/conformance/cases, else the bundled conformance/cases).")
    var directory: String?

    @Option(name: .long, help: "Only run cases of these methods (comma-separated).")
    var method: String?

    @Flag(name: .long, help: "Print every problem of a failing case, not only the first.")
    var verbose = false

    func run() throws {
        let root = directory ?? ConformanceRunner.defaultCasesDirectory()
        let filter = method.map { Set($0.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }) }
        let runner = ConformanceRunner()
        let outcomes: [CaseOutcome]
        do {
            outcomes = try runner.runAll(under: root, methods: filter) { outcome in
                if outcome.passed {
                    print("PASS \(outcome.name)")
                } else {
                    let shown = verbose ? outcome.problems : Array(outcome.problems.prefix(1))
                    print("FAIL \(outcome.name): \(shown.joined(separator: "; "))")
                }
            }
        } catch {
            printError("error: \(error)")
            throw ExitCode(1)
        }
        let passed = outcomes.filter(\.passed).count
        let failed = outcomes.count - passed
        var perMethod: [String: (Int, Int)] = [:]
        for o in outcomes { perMethod[o.method, default: (0, 0)].0 += o.passed ? 1 : 0; perMethod[o.method, default: (0, 0)].1 += 1 }
        let summary = perMethod.keys.sorted().map { "\($0) \(perMethod[$0]!.0)/\(perMethod[$0]!.1)" }.joined(separator: ", ")
        print("by method: \(summary)")
        print("\(passed) passed, \(failed) failed")
        if outcomes.isEmpty { printError("warning: no cases found below \(root)") }
        if failed > 0 || outcomes.isEmpty { throw ExitCode(1) }
    }
}
