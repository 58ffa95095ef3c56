import Foundation
import Testing
@testable import ModelIO

/// `FrameSampling` against NumPy's `np.linspace(0, total - 1, n, dtype=int)` (lmms-eval's rule),
/// computed by tools/fixtures/make_video_fixtures.py into sampling.json.
@Suite struct VideoSamplingTests {
    @Test func matchesNumPyLinspace() throws {
        let data = try Data(contentsOf: URL(fileURLWithPath: videoFixture("sampling.json")))
        let cases = try #require(try JSONSerialization.jsonObject(with: data) as? [[String: Any]])
        #expect(cases.count > 50)
        for c in cases {
            let total = try #require(c["total"] as? Int), n = try #require(c["frames"] as? Int)
            let expected = try #require(c["indices"] as? [Int])
            #expect(try FrameSampling.indices(total: total, count: n) == expected, "total \(total), frames \(n)")
        }
    }

    @Test func rules() throws {
        #expect(try FrameSampling.indices(total: 5, count: nil) == [0, 1, 2, 3, 4])
        #expect(try FrameSampling.indices(total: 8, count: 8) == Array(0..<8))
        #expect(try FrameSampling.indices(total: 10, count: 4) == [0, 3, 6, 9])
        #expect(throws: VideoError.self) { try FrameSampling.indices(total: 0, count: nil) }
        #expect(throws: VideoError.self) { try FrameSampling.indices(total: 0, count: 1) }
        #expect(throws: VideoError.self) { try FrameSampling.indices(total: 4, count: 5) }
        #expect(throws: VideoError.self) { try FrameSampling.indices(total: 4, count: 0) }
    }
}
