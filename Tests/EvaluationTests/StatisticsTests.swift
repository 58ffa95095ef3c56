import Testing
@testable import Evaluation

@Suite struct StatisticsTests {
    @Test func medianAndMean() {
        #expect(Statistics.median([3, 1, 2]) == 2 && Statistics.median([4, 1, 2, 3]) == 2.5)
        #expect(Statistics.median([]).isNaN && Statistics.mean([]).isNaN)
        #expect(Statistics.mean([1, 2, 6]) == 3)
    }
}
