import Foundation
import Testing
@testable import ModelIO

@Suite struct ImageKeepMapTests {
    @Test func dropsAreDimmedAndKeptCellsUnchanged() throws {
        let image = RGBImage(width: 8, height: 6, fill: (200, 100, 50))
        // 3 rows x 4 cols of 2x2 pixels; keep the diagonal-ish cells 0, 5, 11.
        let map = try keepMap(image: image, grid: (3, 4), kept: [0, 5, 11], dim: 0.5)
        #expect(map.width == 8 && map.height == 6)
        #expect(map.pixel(x: 0, y: 0) == (200, 100, 50) && map.pixel(x: 1, y: 1) == (200, 100, 50))   // cell 0
        #expect(map.pixel(x: 2, y: 2) == (200, 100, 50))                                              // cell 5
        #expect(map.pixel(x: 7, y: 5) == (200, 100, 50))                                              // cell 11
        #expect(map.pixel(x: 2, y: 0) == (100, 50, 25) && map.pixel(x: 0, y: 5) == (100, 50, 25))     // cells 1, 8
        let lines = try keepMap(image: image, grid: (3, 4), kept: Set(0..<12), gridLines: true)
        #expect(lines.pixel(x: 2, y: 0) == (227, 177, 152) && lines.pixel(x: 1, y: 1) == (200, 100, 50))
    }

    @Test func unevenGridsCoverEveryPixel() throws {
        let image = RGBImage(width: 7, height: 5, fill: (10, 20, 30))
        let none = try keepMap(image: image, grid: (2, 3), kept: [], dim: 0)
        #expect(none.pixels.allSatisfy { $0 == 0 })
        let all = try keepMap(image: image, grid: (2, 3), kept: Set(0..<6), dim: 0)
        #expect(all == image)
    }

    @Test func modelInputImageIsWhatTheTowerSees() throws {
        let geo = try imageGeometryFixture()
        var clip = try ImagePreprocessor(config: geo["clip"]!)
        clip.padToSquare = true
        let image = try imageFixtureLoad("wide_300x120")
        let seen = try clip.modelInputImage(image)
        #expect(seen.width == 60 && seen.height == 56)
        let tensor = try clip(image)
        #expect(try seen.normalizedTensor(rescale: clip.rescaleFactor, mean: clip.imageMean, std: clip.imageStd).values == tensor.values)
    }

    @Test func badKeepMapInputsThrow() {
        let image = RGBImage(width: 4, height: 4, fill: (1, 2, 3))
        #expect(throws: ImageError.self) { try keepMap(image: image, grid: (0, 2), kept: []) }
        #expect(throws: ImageError.self) { try keepMap(image: image, grid: (5, 2), kept: []) }
        #expect(throws: ImageError.self) { try keepMap(image: image, grid: (2, 2), kept: [4]) }
        #expect(throws: ImageError.self) { try keepMap(image: image, grid: (2, 2), kept: [], dim: 2) }
    }

    @Test func anyResMapPutsThumbnailAndTilesSideBySide() throws {
        let geo = try imageGeometryFixture()
        let next = try ImagePreprocessor(config: geo["next"]!)
        let image = try imageFixtureLoad("wide_300x120")
        let tiles = try next.anyRes(image)
        // 28 px tiles of 14 px patches: 2x2 base cells, canvas grid 2x6, unpadded rows/cols.
        let layout = try AnyRes.layout(imageSize: PixelSize(height: 120, width: 300),
                                       pinpoints: next.gridPinpoints, tileSize: 28, patchSize: 14)
        #expect(layout.baseTokenCount == 4)
        let map = try KeepMap.drawAnyRes(tiles, layout: layout, kept: [0, 4], dim: 0.5, gap: 4)
        #expect(map.width == 28 + 4 + 84 && map.height == 28)
        // Base cell 0 kept, base cell 1 dimmed.
        #expect(map.pixel(x: 3, y: 3) == tiles.thumbnail.pixel(x: 3, y: 3))
        let t = tiles.thumbnail.pixel(x: 20, y: 3)
        #expect(map.pixel(x: 20, y: 3) == (UInt8((Float(t.0) * 0.5).rounded()), UInt8((Float(t.1) * 0.5).rounded()), UInt8((Float(t.2) * 0.5).rounded())))
        // Token 4 is the first unpadded grid cell.
        guard case .tile(let r, let c)? = layout.token(4) else { Issue.record("token 4 should be a tile cell"); return }
        let x = 32 + c * 14 + 5, y = r * 14 + 5
        #expect(map.pixel(x: x, y: y) == tiles.canvas.pixel(x: c * 14 + 5, y: r * 14 + 5))
        #expect(map.pixel(x: 29, y: 10) == (32, 32, 32))  // the gap
        let path = try imageTemporaryFile([], name: "keep.png")
        try map.writePNG(path: path)
        #expect(try RGBImage.load(path: path) == map)
        #expect(throws: ImageError.self) { try KeepMap.drawAnyRes(tiles, layout: layout, kept: [layout.tokenCount]) }
    }
}

@Suite struct MergeMapTests {
    /// A 2×2 grid on a grey 8×8 picture (no enlargement): patches 0 and 3 are one token, 1 is alone,
    /// 2 is held by no token.
    @Test func regionsOutlinesTintAndDimming() throws {
        let image = try RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 100, count: 8 * 8 * 3))
        let map = try MergeMap.draw(image: image, grid: (2, 2), groups: [[0, 3], [1]], minSide: 1)
        #expect(map.width == 8 && map.height == 8)
        func px(_ x: Int, _ y: Int) -> [UInt8] { Array(map.pixels[((y * 8 + x) * 3)..<((y * 8 + x) * 3 + 3)]) }
        // Inside the merged token: tinted (not grey); inside the lone patch: unchanged; the dropped patch: dimmed.
        #expect(px(1, 1) != [100, 100, 100] && px(1, 1) == px(5, 5))
        #expect(px(5, 1) == [100, 100, 100])
        #expect(px(1, 5) == [30, 30, 30])
        // Outlines where the owner changes: right edge of patch 0 (x = 3), bottom edge of patch 1 (y = 3).
        #expect(px(3, 1) == [20, 20, 20] && px(5, 3) == [20, 20, 20])
        #expect(px(2, 1) != [20, 20, 20])
        // Small pictures are enlarged so the outlines stay visible.
        #expect(try MergeMap.draw(image: image, grid: (2, 2), groups: [[0, 1, 2, 3]]).width == 64)
    }

    @Test func badGroupsAreRefused() throws {
        let image = try RGBImage(width: 8, height: 8, pixels: [UInt8](repeating: 0, count: 8 * 8 * 3))
        #expect { try MergeMap.draw(image: image, grid: (2, 2), groups: [[0, 1], [1]]) } throws: { "\($0)".contains("patch 1 is in two tokens") }
        #expect { try MergeMap.draw(image: image, grid: (2, 2), groups: [[4]]) } throws: { "\($0)".contains("outside the 2x2 grid") }
        #expect { try MergeMap.draw(image: image, grid: (9, 9), groups: []) } throws: { "\($0)".contains("does not fit") }
    }
}
