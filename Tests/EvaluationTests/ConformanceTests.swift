import Foundation
import Testing
@testable import Evaluation

/// Holds every registered method to all of its shared conformance cases, forever.
@Suite struct ConformanceTests {
    static let casesRoot: String = {
        let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        return repo.appendingPathComponent("conformance/cases").path
    }()

    static let registeredMethods: [String] = MethodCatalog.conformers.map { $0.method }.sorted()

    @Test("all cases of a registered method pass", arguments: registeredMethods)
    func methodPassesItsCases(method: String) throws {
        let outcomes = try ConformanceRunner().runAll(under: Self.casesRoot, methods: [method])
        #expect(!outcomes.isEmpty, "no cases found for \(method)")
        for outcome in outcomes where !outcome.passed {
            Issue.record("\(outcome.name): \(outcome.problems.joined(separator: "; "))")
        }
    }

    @Test func unregisteredMethodFailsInsteadOfSkipping() throws {
        let runner = ConformanceRunner(conformers: [])
        let dirs = try ConformanceRunner.findCases(under: Self.casesRoot)
        #expect(dirs.count >= 100)
        let outcome = runner.run(caseAt: dirs[0])
        #expect(!outcome.passed)
        #expect(outcome.problems == ["method not implemented"])
    }

    @Test func bundledCasesMatchSharedCasesWhenPresent() throws {
        let shared = URL(fileURLWithPath: Self.casesRoot).appendingPathComponent("../../../shared/conformance/cases").standardized.path
        guard FileManager.default.fileExists(atPath: shared) else { return }
        let bundled = try ConformanceRunner.findCases(under: Self.casesRoot).map { URL(fileURLWithPath: $0).lastPathComponent }
        let original = try ConformanceRunner.findCases(under: shared).map { URL(fileURLWithPath: $0).lastPathComponent }
        #expect(bundled == original, "conformance/cases is out of date with ../shared/conformance/cases; copy it again")
    }
}
