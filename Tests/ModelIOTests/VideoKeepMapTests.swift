import Foundation
import Testing
@testable import ModelIO

@Suite struct VideoKeepMapTests {
    let frames = [RGBImage(width: 6, height: 4, fill: (200, 100, 50)), RGBImage(width: 6, height: 4, fill: (10, 250, 90))]

    @Test func framesSideBySideWithDroppedTokensDimmed() throws {
        // 2×2 tokens per frame; token 8 (the trailing newline) is ignored.
        let all = try VideoKeepMap.draw(frames: frames, grid: (2, 2), kept: Set(0..<9), gap: 2)
        #expect(all.width == 14 && all.height == 4)
        #expect(all.pixel(x: 0, y: 0) == (200, 100, 50) && all.pixel(x: 8, y: 3) == (10, 250, 90))
        #expect(all.pixel(x: 6, y: 0) == (32, 32, 32), "the gap")
        // Frame 1 keeps only its token 3 (bottom right): global index 4 + 3.
        let some = try VideoKeepMap.draw(frames: frames, grid: (2, 2), kept: [0, 1, 2, 3, 7], gap: 2)
        #expect(some.pixel(x: 2, y: 1) == (200, 100, 50))
        #expect(some.pixel(x: 8, y: 0) == (3, 75, 27), "dropped: 0.3 × (10, 250, 90), rounded")
        #expect(some.pixel(x: 13, y: 3) == (10, 250, 90))
    }

    @Test func badInputIsAnError() {
        #expect(throws: ImageError.self) { try VideoKeepMap.draw(frames: [], grid: (2, 2), kept: []) }
        #expect(throws: ImageError.self) { try VideoKeepMap.draw(frames: frames, grid: (0, 2), kept: []) }
        #expect(throws: ImageError.self) { try VideoKeepMap.draw(frames: frames, grid: (2, 2), kept: [-1]) }
    }
}
