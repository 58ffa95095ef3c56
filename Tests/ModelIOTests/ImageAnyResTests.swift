import Foundation
import Testing
@testable import ModelIO

@Suite struct ImageAnyResTests {
    @Test func geometryMatchesTransformers() throws {
        let geo = try imageGeometryFixture()
        let pinpoints = geo["pinpoints"]!.arrayValue!.map {
            PixelSize(height: $0.arrayValue![0].intValue!, width: $0.arrayValue![1].intValue!)
        }
        #expect(pinpoints == ImagePreprocessor.defaultPinpoints)
        let tile = geo["tile"]!.intValue!, patch = geo["patch"]!.intValue!
        let cases = geo["cases"]!.arrayValue!
        #expect(cases.count >= 50)
        for c in cases {
            func pair(_ k: String) -> [Int] { c[k]!.arrayValue!.map { $0.intValue! } }
            let s = pair("size")
            let size = PixelSize(height: s[0], width: s[1])
            let best = try AnyRes.selectBestResolution(imageSize: size, pinpoints: pinpoints)
            #expect([best.height, best.width] == pair("best"), "best resolution for \(size)")
            let grid = try AnyRes.gridShape(imageSize: size, pinpoints: pinpoints, tileSize: tile)
            #expect([grid.rows, grid.cols] == pair("grid"), "grid for \(size)")
            #expect(try AnyRes.numPatches(imageSize: size, pinpoints: pinpoints, tileSize: tile) == c["num_patches"]!.intValue!)
            let side = tile / patch
            let region = AnyRes.unpadRegion(imageSize: size, featureSize: PixelSize(height: grid.rows * side, width: grid.cols * side))
            #expect([region.height, region.width] == pair("unpadded"), "unpad for \(size)")
            let tokens = try AnyRes.numImageTokens(imageSize: size, pinpoints: pinpoints, tileSize: tile, patchSize: patch)
            #expect(tokens == c["tokens"]!.intValue!, "token count for \(size)")
        }
    }

    @Test func layoutIndexesBaseGridAndNewlines() throws {
        let layout = try AnyRes.layout(imageSize: PixelSize(height: 480, width: 640),
                                       pinpoints: ImagePreprocessor.defaultPinpoints, tileSize: 336, patchSize: 14)
        #expect(layout.bestResolution == PixelSize(height: 672, width: 672))
        #expect(layout.baseTokenCount == 576)
        // 48x48 grid; 640x480 keeps all 48 columns and int(round(480·48/640)) = 36 rows, padding 6.
        #expect(layout.unpad == UnpadRegion(top: 6, left: 0, height: 36, width: 48))
        #expect(layout.tokenCount == 576 + 36 * 49)
        #expect(layout.token(0) == .base(row: 0, col: 0))
        #expect(layout.token(575) == .base(row: 23, col: 23))
        #expect(layout.token(576) == .tile(row: 6, col: 0))
        #expect(layout.token(576 + 48) == .newline(row: 6))
        #expect(layout.token(576 + 49) == .tile(row: 7, col: 0))
        #expect(layout.token(layout.tokenCount) == nil)
    }

    @Test func badGeometryInputsThrow() {
        #expect(throws: ImageError.self) { try AnyRes.selectBestResolution(imageSize: PixelSize(height: 0, width: 3), pinpoints: ImagePreprocessor.defaultPinpoints) }
        #expect(throws: ImageError.self) { try AnyRes.selectBestResolution(imageSize: PixelSize(height: 3, width: 3), pinpoints: []) }
        #expect(throws: ImageError.self) { try AnyRes.layout(imageSize: PixelSize(height: 3, width: 3), pinpoints: ImagePreprocessor.defaultPinpoints, tileSize: 336, patchSize: 0) }
        #expect(throws: ImageError.self) { try AnyRes.layout(imageSize: PixelSize(height: 3, width: 3), pinpoints: ImagePreprocessor.defaultPinpoints, tileSize: 336, patchSize: 337) }
    }

    /// A tile that is not a multiple of the patch keeps ⌊tile / patch⌋ patches per side, as the
    /// patch convolution does (SigLIP so400m in LLaVA-OneVision: 384 px, patch 14 → 27).
    @Test func patchesPerSideAreFloored() throws {
        let pins = [PixelSize(height: 384, width: 768)]
        let layout = try AnyRes.layout(imageSize: PixelSize(height: 300, width: 600), pinpoints: pins, tileSize: 384, patchSize: 14)
        #expect(layout.patchesPerSide == 27 && layout.baseTokenCount == 729)
        #expect(layout.tileRows == 1 && layout.tileCols == 2)
    }

    @Test func tilingCoversTheCanvas() throws {
        let geo = try imageGeometryFixture()
        let next = try ImagePreprocessor(config: geo["next"]!)
        let image = try imageFixtureLoad("wide_300x120")
        let r = try next.anyRes(image)
        #expect(r.bestResolution == PixelSize(height: 28, width: 84))
        #expect(r.tileRows == 1 && r.tileCols == 3 && r.tiles.count == 3)
        #expect(r.contentSize == PixelSize(height: 28, width: 70) && r.contentLeft == 7 && r.contentTop == 0)
        #expect(r.canvas.pixel(x: 0, y: 0) == (0, 0, 0))
        #expect(r.pixelValues.shape == [4, 3, 28, 28])
    }
}
