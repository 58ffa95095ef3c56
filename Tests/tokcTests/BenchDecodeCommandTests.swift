import ArgumentParser
import Testing
@testable import tokc

@Suite struct BenchDecodeCommandTests {
    @Test func defaultsAndGivenValues() throws {
        let d = try BenchDecodeCommand.parse(["--model", "m"])
        #expect(d.model == "m")
        #expect(d.prompt == 128 && d.tokens == 8)
        #expect(d.threads >= 1)
        #expect(!d.profile && !d.pytorch)
        #expect(d.pytorchDtype == ["bfloat16"])

        let c = try BenchDecodeCommand.parse(["--model", "m", "--prompt", "64", "--tokens", "3", "--threads", "2", "--profile",
                                              "--pytorch", "--pytorch-dtype", "float32", "float16"])
        #expect(c.prompt == 64 && c.tokens == 3 && c.threads == 2)
        #expect(c.profile && c.pytorch)
        #expect(c.pytorchDtype == ["float32", "float16"])
    }

    @Test(arguments: [["--tokens", "0"], ["--prompt", "0"], ["--threads", "0"], ["--tokens=-2"]])
    func nonPositiveCountsAreRejected(_ bad: [String]) {
        #expect(throws: (any Error).self) { try BenchDecodeCommand.parse(["--model", "m"] + bad) }
        do {
            _ = try BenchDecodeCommand.parse(["--model", "m"] + bad)
        } catch {
            #expect(BenchDecodeCommand.message(for: error).contains("must be positive"), "\(bad)")
        }
    }

    @Test func modelIsRequired() {
        #expect(throws: (any Error).self) { try BenchDecodeCommand.parse([]) }
    }
}
