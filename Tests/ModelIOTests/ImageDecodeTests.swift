import Foundation
import Testing
@testable import ModelIO
import Tensors

/// The committed image fixtures (tools/fixtures/make_image_fixtures.py).
let imageFixtureDirectory = URL(fileURLWithPath: #filePath)
    .deletingLastPathComponent().deletingLastPathComponent()
    .appendingPathComponent("Fixtures/images").path

let imageFixtureFiles = [
    "rgb_40x30": "rgb_40x30.png", "photo_131x190": "photo_131x190.jpg",
    "photo444_97x61": "photo444_97x61.jpg", "rgba_50x20": "rgba_50x20.png",
    "gray_23x71": "gray_23x71.png", "palette_33x33": "palette_33x33.png",
    "gray_90x28": "gray_90x28.jpg", "graya_21x17": "graya_21x17.png", "wide_300x120": "wide_300x120.png",
    "gray16_19x13": "gray16_19x13.png",
]

/// EXIF-rotated files: only their decoding (with the orientation applied) is checked.
let imageOrientationFiles = Dictionary(uniqueKeysWithValues: (2...8).map { ("orient\($0)_9x5", "orient\($0)_9x5.png") }
    + [("orient6_30x20", "orient6_30x20.jpg")])

func imageFixtureExpected() throws -> SafetensorsFile {
    try SafetensorsFile(path: imageFixtureDirectory + "/expected.safetensors")
}

func imageFixtureLoad(_ name: String) throws -> RGBImage {
    try RGBImage.load(path: imageFixtureDirectory + "/" + (imageFixtureFiles[name] ?? imageOrientationFiles[name]!))
}

/// Writes bytes to a fresh temporary file.
func imageTemporaryFile(_ bytes: [UInt8], name: String) throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokc-img-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let path = dir.appendingPathComponent(name).path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
}

/// Expects `RGBImage.load` to throw an ImageError naming the file and containing `fragment`.
func imageExpectLoadError(_ path: String, _ fragment: String) {
    do {
        _ = try RGBImage.load(path: path)
        Issue.record("expected an error for \(path)")
    } catch let error as ImageError {
        #expect(error.path == path)
        #expect(error.description.contains(path))
        #expect(error.description.lowercased().contains(fragment.lowercased()), "\(error)")
    } catch {
        Issue.record("unexpected error type \(error)")
    }
}

@Suite struct ImageDecodeTests {
    @Test(arguments: Array(imageFixtureFiles.keys).sorted() + Array(imageOrientationFiles.keys).sorted())
    func decodesLikePIL(_ name: String) throws {
        let image = try imageFixtureLoad(name)
        let expected = try imageFixtureExpected()
        let info = try expected.info("decode.\(name)")
        #expect(info.shape == [image.height, image.width, 3])
        let raw = try expected.rawBytes("decode.\(name)")
        #expect(Array(raw) == image.pixels, "decoded pixels of \(name) differ from PIL's convert(\"RGB\")")
    }

    /// Every PNG colour type and bit depth (hand-written PNGs, Adam7 included) and the
    /// progressive / 4:2:2 JPEG paths, against PIL.
    @Test(arguments: ["g1", "g2", "g4", "ga16", "ga8", "rgb16", "rgba16", "p4", "p2trns", "p8", "adam7",
                      "progressive", "422"])
    func decodesEveryKindLikePIL(_ kind: String) throws {
        let ext = kind == "progressive" || kind == "422" ? "jpg" : "png"
        let image = try RGBImage.load(path: imageFixtureDirectory + "/raw_\(kind).\(ext)")
        let expected = try imageFixtureExpected()  // keeps the mapping alive while reading
        #expect(Array(try expected.rawBytes("decode.raw_\(kind)")) == image.pixels)
    }

    /// transformers' `convert_to_rgb` composites transparency onto white.
    @Test(arguments: ["rgba_50x20", "graya_21x17", "raw_ga16", "raw_ga8", "raw_rgba16", "raw_p2trns", "rgb_40x30", "palette_33x33"])
    func compositesAlphaOnWhiteLikeTransformers(_ name: String) throws {
        let file = name.hasPrefix("raw_") ? name + ".png" : imageFixtureFiles[name]!
        let image = try RGBImage.load(path: imageFixtureDirectory + "/" + file, alpha: .compositeOnWhite)
        let expected = try imageFixtureExpected()
        let raw = Array(try expected.rawBytes("white.\(name)"))
        var mismatches = 0
        for (i, b) in raw.enumerated() where b != image.pixels[i] { mismatches += 1 }
        #expect(mismatches == 0, "\(name): \(mismatches) bytes differ")
    }

    @Test func exifOrientationCanBeIgnored() throws {
        let path = imageFixtureDirectory + "/orient6_30x20.jpg"
        let upright = try RGBImage.load(path: path)
        let raw = try RGBImage.load(path: path, applyExifOrientation: false)
        #expect(raw.width == 30 && raw.height == 20 && upright.width == 20 && upright.height == 30)
        #expect(raw.applying(.rotatedClockwise) == upright)
    }

    @Test func pngRoundTrip() throws {
        let image = try imageFixtureLoad("photo_131x190")
        let path = try imageTemporaryFile([], name: "rt.png")
        try image.writePNG(path: path)
        #expect(try RGBImage.load(path: path) == image)
        // Deflated where zlib is linked (Linux); the stored-block path decodes to the same pixels.
        let deflated = PNGWriter.encode(image), stored = PNGWriter.encode(image, deflate: false)
        #if os(Linux)
        #expect(deflated.count < stored.count)
        // A plot-like image (flat background) shrinks far more.
        let flat = try RGBImage(width: 200, height: 100, pixels: (0..<(200 * 100 * 3)).map { $0 % 997 == 0 ? 0 : 255 })
        #expect(PNGWriter.encode(flat).count * 10 < PNGWriter.encode(flat, deflate: false).count)
        #endif
        #expect(stored.count > image.width * image.height * 3)
        let storedPath = try imageTemporaryFile(Array(stored), name: "stored.png")
        #expect(try RGBImage.load(path: storedPath) == image)
    }

    @Test func missingAndUnknownFiles() throws {
        imageExpectLoadError("/nonexistent/dir/x.png", "cannot read")
        imageExpectLoadError(try imageTemporaryFile([], name: "empty.png"), "empty")
        imageExpectLoadError(try imageTemporaryFile(Array("GIF89a hello".utf8), name: "x.gif"), "unknown image format")
    }

    @Test func truncatedAndCorruptPNG() throws {
        let bytes = [UInt8](FileManager.default.contents(atPath: imageFixtureDirectory + "/wide_300x120.png")!)
        for cut in [8, 20, 40, bytes.count / 2, bytes.count - 13] {
            imageExpectLoadError(try imageTemporaryFile(Array(bytes[0..<cut]), name: "cut\(cut).png"), "PNG")
        }
        var corrupt = bytes
        for i in stride(from: 60, to: corrupt.count - 20, by: 97) { corrupt[i] ^= 0x5A }
        imageExpectLoadError(try imageTemporaryFile(corrupt, name: "corrupt.png"), "PNG")
        var badHeader = bytes
        badHeader[16] = 0xFF  // absurd width in IHDR (CRC now wrong too)
        imageExpectLoadError(try imageTemporaryFile(badHeader, name: "header.png"), "PNG")
    }

    @Test func truncatedAndCorruptJPEG() throws {
        let bytes = [UInt8](FileManager.default.contents(atPath: imageFixtureDirectory + "/photo_131x190.jpg")!)
        for cut in [3, 4, 30, 200, bytes.count / 2, bytes.count - 2] {
            imageExpectLoadError(try imageTemporaryFile(Array(bytes[0..<cut]), name: "cut\(cut).jpg"), "JPEG")
        }
        // Garbage right after the SOI marker: libjpeg's fatal error path.
        imageExpectLoadError(try imageTemporaryFile([0xFF, 0xD8, 0xFF, 0x00, 1, 2, 3, 4, 5, 6, 7, 8], name: "junk.jpg"), "JPEG")
        // Damage to a quantisation/huffman table segment.
        var corrupt = bytes
        for i in 20..<200 where i % 3 == 0 { corrupt[i] = 0xFF }
        imageExpectLoadError(try imageTemporaryFile(corrupt, name: "corrupt.jpg"), "JPEG")
        // Many failures in a row must not leak threads or crash.
        for i in 0..<50 {
            imageExpectLoadError(try imageTemporaryFile(Array(bytes[0..<(100 + i)]), name: "loop.jpg"), "JPEG")
        }
    }
}
