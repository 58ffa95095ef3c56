import Testing
@testable import Models

@Suite struct ModelsSmokeTests {
    @Test func moduleLinks() {
        #expect(Models.supportedArchitectures.allSatisfy { !$0.isEmpty })
    }
}
