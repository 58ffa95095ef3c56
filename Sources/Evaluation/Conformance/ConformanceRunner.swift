import Foundation
import ModelIO
import Tensors

/// The verdict on one case.
public struct CaseOutcome: Sendable {
    public let name: String
    public let method: String
    public let passed: Bool
    /// Empty when passed; otherwise one line per problem.
    public let problems: [String]
}

/// Finds cases, runs the registered conformer of each, and compares with the expected tensors
/// following FORMAT.md. A case whose method has no conformer fails; nothing is skipped.
public struct ConformanceRunner {
    public let conformers: [String: any MethodConformer.Type]

    public init(conformers: [any MethodConformer.Type] = MethodCatalog.conformers) {
        var map: [String: any MethodConformer.Type] = [:]
        for c in conformers { map[c.method] = c }
        self.conformers = map
    }

    /// Every folder below `root` holding a `case.json`, sorted.
    public static func findCases(under root: String) throws -> [String] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: root, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ConformanceError("no conformance folder at \(root)")
        }
        guard let enumerator = FileManager.default.enumerator(atPath: root) else {
            throw ConformanceError("cannot list \(root)")
        }
        var found: [String] = []
        while let item = enumerator.nextObject() as? String {
            if item == "case.json" || item.hasSuffix("/case.json") {
                found.append(root + "/" + String(item.dropLast("case.json".count)).trimmingCharacters(in: CharacterSet(charactersIn: "/")))
            }
        }
        return found.map { $0.hasSuffix("/") ? String($0.dropLast()) : $0 }.sorted()
    }

    /// Runs one case folder.
    public func run(caseAt directory: String) -> CaseOutcome {
        let fallbackName = URL(fileURLWithPath: directory).lastPathComponent
        let testCase: ConformanceCase
        do { testCase = try ConformanceCase(directory: directory) } catch {
            return CaseOutcome(name: fallbackName, method: "?", passed: false, problems: ["cannot read case: \(error)"])
        }
        guard let conformer = conformers[testCase.method] else {
            return CaseOutcome(name: testCase.name, method: testCase.method, passed: false, problems: ["method not implemented"])
        }
        do {
            let outputs = try conformer.run(testCase)
            let expected = try testCase.expected()
            var problems: [String] = []
            for info in expected.tensors {
                let rule = testCase.compare[info.name] ?? .string("exact")
                guard let actual = outputs[info.name] else {
                    problems.append("\(info.name): not produced")
                    continue
                }
                if let p = try Self.compare(name: info.name, actual: actual, expected: expected, info: info, rule: rule) {
                    problems.append(p)
                }
            }
            return CaseOutcome(name: testCase.name, method: testCase.method, passed: problems.isEmpty, problems: problems)
        } catch {
            return CaseOutcome(name: testCase.name, method: testCase.method, passed: false, problems: ["error: \(error)"])
        }
    }

    /// Compares one output with its expected tensor; nil when it matches.
    static func compare(name: String, actual: CaseValue, expected: SafetensorsFile, info: SafetensorsTensorInfo, rule: JSONValue) throws -> String? {
        let expectedShape = info.shape
        let actualShape = actual.shape
        let sameCount = expectedShape.reduce(1, *) == actualShape.reduce(1, *)
        let iou = rule["iou"]?.doubleValue
        if iou == nil, !(actualShape == expectedShape || (sameCount && (expectedShape.count <= 1 || actualShape.count <= 1))) {
            return "\(name): shape \(actualShape), expected \(expectedShape)"
        }
        if !info.dtype.isFloatingPoint {
            let want = try expected.integers(name).map { Int($0) }
            let got: [Int]
            switch actual {
            case .ints(let v, _): got = v
            case .floats(let t): got = t.values.map { Int($0) }
            }
            if let threshold = iou {
                let a = Set(got), b = Set(want)
                let union = a.union(b).count
                let value = union == 0 ? 1 : Double(a.intersection(b).count) / Double(union)
                return value + 1e-12 >= threshold ? nil : "\(name): IoU \(String(format: "%.4f", value)) < \(threshold)"
            }
            guard got.count == want.count else { return "\(name): \(got.count) values, expected \(want.count)" }
            if let i = got.indices.first(where: { got[$0] != want[$0] }) {
                let mismatches = zip(got, want).filter { $0 != $1 }.count
                return "\(name): \(mismatches) of \(want.count) differ; first at \(i): got \(got[i]), expected \(want[i])\(want.count <= 40 ? " (got \(got), expected \(want))" : "")"
            }
            return nil
        }
        let want = try expected.tensor(name).values
        let got: [Float]
        switch actual {
        case .floats(let t): got = t.values
        case .ints(let v, _): got = v.map { Float($0) }
        }
        guard got.count == want.count else { return "\(name): \(got.count) values, expected \(want.count)" }
        var atol = 0.0, rtol = 0.0
        if case .object = rule {
            atol = rule["atol"]?.doubleValue ?? 0
            rtol = rule["rtol"]?.doubleValue ?? 0
        }
        var worst = -1, worstExcess = 0.0, failures = 0
        for i in 0..<want.count {
            let a = Double(got[i]), b = Double(want[i])
            if a == b || (a.isNaN && b.isNaN) { continue }
            let excess = abs(a - b) - (atol + rtol * abs(b))
            if excess > 0 || a.isNaN != b.isNaN {
                failures += 1
                if worst < 0 || excess > worstExcess { worst = i; worstExcess = excess }
            }
        }
        guard failures > 0 else { return nil }
        return "\(name): \(failures) of \(want.count) outside atol \(atol) rtol \(rtol); worst at \(worst): got \(got[worst]), expected \(want[worst])"
    }

    /// Runs every case below `root`, calling `report` as each finishes.
    public func runAll(under root: String, methods: Set<String>? = nil, report: (CaseOutcome) -> Void = { _ in }) throws -> [CaseOutcome] {
        var outcomes: [CaseOutcome] = []
        for dir in try Self.findCases(under: root) {
            if let methods {
                let method = (try? ConformanceCase(directory: dir).method) ?? ""
                if !methods.contains(method) { continue }
            }
            let outcome = run(caseAt: dir)
            report(outcome)
            outcomes.append(outcome)
        }
        return outcomes
    }

    /// Where the shared cases are: `../shared/conformance/cases` beside the checkout, else the copy
    /// bundled in the repository (`conformance/cases`).
    public static func defaultCasesDirectory(from workingDirectory: String = FileManager.default.currentDirectoryPath) -> String {
        let shared = URL(fileURLWithPath: workingDirectory).appendingPathComponent("../shared/conformance/cases").standardized.path
        if FileManager.default.fileExists(atPath: shared) { return shared }
        return URL(fileURLWithPath: workingDirectory).appendingPathComponent("conformance/cases").standardized.path
    }
}
