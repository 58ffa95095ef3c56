import ArgumentParser
import Testing
@testable import tokc

@Suite struct QuantizeCommandTests {
    @Test(arguments: [8, 4])
    func supportedWidthsParse(_ bits: Int) throws {
        let c = try QuantizeCommand.parse(["--model", "in", "--bits", String(bits), "--out", "out"])
        #expect(c.model == "in" && c.out == "out" && c.bits == bits)
    }

    @Test(arguments: [0, 2, 16, -8])
    func otherWidthsAreRejected(_ bits: Int) {
        do {
            _ = try QuantizeCommand.parse(["--model", "in", "--bits=\(bits)", "--out", "out"])
            Issue.record("--bits \(bits) parsed")
        } catch {
            #expect(QuantizeCommand.message(for: error).contains("--bits must be 8 or 4 (got \(bits))"))
        }
    }

    @Test func everyOptionIsRequired() {
        #expect(throws: (any Error).self) { try QuantizeCommand.parse(["--bits", "8", "--out", "o"]) }
        #expect(throws: (any Error).self) { try QuantizeCommand.parse(["--model", "m", "--out", "o"]) }
        #expect(throws: (any Error).self) { try QuantizeCommand.parse(["--model", "m", "--bits", "8"]) }
    }
}
