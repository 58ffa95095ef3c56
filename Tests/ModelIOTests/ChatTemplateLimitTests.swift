import Foundation
import Testing
@testable import ModelIO

/// Hostile chat templates (a model folder is user input): huge ranges, repetitions, doubling loops
/// and loops nested to trillions of iterations are errors naming the limit, found before the memory
/// is allocated or the time spent (issue #17).
@Suite struct ChatTemplateLimitTests {
    private func renderError(_ source: String) -> String {
        do {
            _ = try ChatTemplate(source: source).render(context: [:])
            return ""
        } catch {
            return "\(error)"
        }
    }

    @Test(arguments: [
        ("{% for i in range(1000000000000) %}{% endfor %}", "range() would build a list of"),
        ("{{ range(-5, 9223372036854775807, 1) | length }}", "range() would build a list of"),
        ("{{ 'ab' * 1000000000000 }}", "'*' would build a string of"),
        ("{{ 'ab' * 9223372036854775807 }}", "more than 2^63"),
        ("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "'+' would build a string of"),
        ("{% set ns = namespace(s='xxxxxxxx') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}", "'~' would build a string of"),
        ("{{ ('x' * 1000000) | replace('x', 'yyyyyyyyyyyyyyyyyyyyyyyyy') }}", "replace() would build a string of"),
        ("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", "more than 1000000 steps"),
        ("{% for i in range(100) %}{{ 'x' * 1000000 }}{% endfor %}", "output longer than"),
    ])
    func hostileTemplateIsAnError(_ source: String, _ fragment: String) {
        let error = renderError(source)
        #expect(error.contains(fragment), "\(source) -> \(error)")
    }

    @Test func ordinaryUseStaysWithinTheLimits() throws {
        // The same constructs at sizes templates use still work exactly.
        let t = try ChatTemplate(source: "{% for i in range(3) %}{{ i }}{% endfor %}|{{ 'ab' * 3 }}|{{ range(10, 0, -3) | join(',') }}|{{ 'aXb' | replace('X', '--') }}")
        #expect(try t.render(context: [:]) == "012|ababab|10,7,4,1|a--b")
    }
}
