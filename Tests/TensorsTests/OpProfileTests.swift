import Testing
@testable import Tensors

// OpProfile is process-global and other suites may run models meanwhile: only this test's labels are checked.
@Suite struct OpProfileTests {
    @Test func recordsOnlyWhileEnabledInFirstSeenOrder() {
        OpProfile.reset()
        OpProfile.isEnabled = false
        _ = OpProfile.measure("test.off") { 1 }
        #expect(!OpProfile.entries().contains { $0.label == "test.off" })
        OpProfile.isEnabled = true
        defer { OpProfile.isEnabled = false }
        let v = OpProfile.measure("test.b") { 41 + 1 }
        _ = OpProfile.measure("test.a") { 0 }
        _ = OpProfile.measure("test.b") { 0 }
        #expect(v == 42)
        let entries = OpProfile.entries().filter { $0.label.hasPrefix("test.") }
        #expect(entries.map(\.label) == ["test.b", "test.a"])
        #expect(entries.map(\.calls) == [2, 1])
        #expect(entries.allSatisfy { $0.milliseconds >= 0 })
    }
}
