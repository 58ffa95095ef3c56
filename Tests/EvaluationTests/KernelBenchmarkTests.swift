import Testing
@testable import Evaluation

@Suite struct KernelBenchmarkTests {
    @Test func ratesAndTimesAreSortedPositiveAndOnePerRepeat() throws {
        let rates = KernelBenchmark.gemmRates(m: 16, k: 8, n: 4, repeats: 3)
        #expect(rates.count == 3 && rates == rates.sorted() && rates.allSatisfy { $0 > 0 })
        let modes = try KernelBenchmark.attentionTimes(tokens: 4, repeats: 2)
        #expect(modes.map(\.label) == ["fused", "probabilities, last row", "probabilities, all rows"])
        #expect(modes.allSatisfy { $0.ms.count == 2 && $0.ms.allSatisfy { $0 >= 0 } })
    }
}
