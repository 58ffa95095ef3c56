import Foundation
import Testing
@testable import ModelIO
import Tensors

func imageGeometryFixture() throws -> JSONValue {
    try JSONValue.parse(Data(contentsOf: URL(fileURLWithPath: imageFixtureDirectory + "/geometry.json")))
}

/// Max |a - b| between our tensor and the fixture's, after checking shapes.
func imageMaxError(_ ours: Tensor, _ name: String, _ file: SafetensorsFile) throws -> Float {
    let expected = try file.tensor(name)
    #expect(ours.shape == expected.shape, "\(name): shape \(ours.shape) vs \(expected.shape)")
    guard ours.shape == expected.shape else { return .infinity }
    var worst: Float = 0
    let a = ours.values, b = expected.values
    for i in 0..<a.count { worst = max(worst, abs(a[i] - b[i])) }
    return worst
}

@Suite struct ImagePreprocessorTests {
    static let names = Array(imageFixtureFiles.keys).sorted()

    @Test(arguments: names)
    func resizeMatchesPillowExactly(_ name: String) throws {
        let image = try imageFixtureLoad(name)
        let expected = try imageFixtureExpected()
        for (filterName, filter) in [("bicubic", ResampleFilter.bicubic), ("bilinear", .bilinear), ("lanczos", .lanczos)] {
            for (w, h) in [(17, 23), (64, 9), (image.width * 2 + 1, image.height + 3)] {
                let key = "resize.\(name).\(filterName).\(w)x\(h)"
                let ours = try image.resized(width: w, height: h, filter: filter)
                let raw = Array(try expected.rawBytes(key))
                var mismatches = 0
                for i in 0..<raw.count where raw[i] != ours.pixels[i] { mismatches += 1 }
                #expect(mismatches == 0, "\(key): \(mismatches) of \(raw.count) bytes differ")
            }
        }
    }

    /// Pillow chooses which 1-D pass runs first from the sizes; random size pairs pin that down.
    @Test func resizePassOrderMatchesPillow() throws {
        let geo = try imageGeometryFixture()
        let expected = try imageFixtureExpected()
        let noise = try RGBImage(width: 41, height: 37, pixels: Array(try expected.rawBytes("order.noise")))
        for (i, c) in geo["order_cases"]!.arrayValue!.enumerated() {
            let v = c.arrayValue!.map { $0.intValue! }
            let src = try noise.cropped(x: 0, y: 0, width: v[0], height: v[1])
            let ours = try src.resized(width: v[2], height: v[3], filter: .bicubic)
            #expect(ours.pixels == Array(try expected.rawBytes("order.\(i)")), "case \(v)")
        }
    }

    @Test(arguments: names)
    func clipSiglipLlavaMatchTransformers(_ name: String) throws {
        let geo = try imageGeometryFixture()
        let expected = try imageFixtureExpected()
        let image = try imageFixtureLoad(name)
        let clip = try ImagePreprocessor(config: geo["clip"]!)
        #expect(clip.kind == .clip)
        #expect(try imageMaxError(try clip(image), "clip.\(name)", expected) == 0, "expected a bit-exact match")
        let siglip = try ImagePreprocessor(config: geo["siglip"]!)
        #expect(siglip.kind == .siglip && !siglip.doCenterCrop && siglip.resample == .bilinear)
        #expect(try imageMaxError(try siglip(image), "siglip.\(name)", expected) == 0, "expected a bit-exact match")
        var llava = clip
        llava.padToSquare = true
        let bg = geo["llava_background"]!.arrayValue!.map { UInt8($0.intValue!) }
        #expect([llava.padColor.0, llava.padColor.1, llava.padColor.2] == bg)
        #expect(try imageMaxError(try llava(image), "llava.\(name)", expected) == 0, "expected a bit-exact match")
    }

    @Test(arguments: names)
    func llavaNextMatchesTransformers(_ name: String) throws {
        let geo = try imageGeometryFixture()
        let expected = try imageFixtureExpected()
        let image = try imageFixtureLoad(name)
        let next = try ImagePreprocessor(config: geo["next"]!)
        #expect(next.kind == .llavaNext)
        let result = try next.anyRes(image)
        let best = geo["fixture_best"]![name]!.arrayValue!.map { $0.intValue! }
        #expect([result.bestResolution.height, result.bestResolution.width] == best)
        #expect(result.tiles.count == result.tileRows * result.tileCols)
        #expect(try imageMaxError(result.pixelValues, "next.\(name)", expected) == 0, "expected a bit-exact match")
        #expect(try next(image).shape == result.pixelValues.shape)
    }

    @Test func configErrorsAreClear() throws {
        #expect(throws: ImageError.self) { try ImagePreprocessor(config: .array([])) }
        #expect(throws: ImageError.self) {
            try ImagePreprocessor(config: .object(["image_processor_type": .string("FooImageProcessor")]))
        }
        #expect(throws: ImageError.self) {
            try ImagePreprocessor(config: .object(["image_mean": .array([.number(1), .number(2)])]))
        }
        #expect(throws: ImageError.self) { try ImagePreprocessor(config: .object(["resample": .number(9)])) }
        #expect(throws: ImageError.self) {
            try ImagePreprocessor(config: .object(["size": .object(["shortest_edge": .number(10), "longest_edge": .number(20)])]))
        }
        #expect(throws: ImageError.self) { try ImagePreprocessor(config: .object(["image_std": .number(0)])) }
        // Old-style integer sizes and class defaults.
        let old = try ImagePreprocessor(config: .object(["size": .number(224), "crop_size": .number(224)]))
        #expect(old.size == .shortestEdge(224) && old.cropSize == PixelSize(height: 224, width: 224))
        #expect(old.imageMean == ImagePreprocessor.openAIClipMean && old.resample == .bicubic)
        let sig = try ImagePreprocessor(config: .object(["image_processor_type": .string("SiglipImageProcessorFast")]))
        #expect(sig.size == .exact(PixelSize(height: 224, width: 224)) && sig.imageMean == [0.5, 0.5, 0.5])
        #expect(sig.resample == .bicubic && !sig.doCenterCrop)
        let llava = try ImagePreprocessor(config: .object(["image_processor_type": .string("LlavaImageProcessor"), "do_pad": .bool(true)]))
        #expect(llava.kind == .llava && llava.padToSquare && llava.padColor == (122, 116, 104))
    }

    @Test func centerCropPadsSmallImages() throws {
        let img = RGBImage(width: 3, height: 2, fill: (9, 9, 9))
        let c = try img.centerCropped(width: 6, height: 5)
        #expect(c.width == 6 && c.height == 5)
        // numpy: top_pad = ceil(3/2) = 2, left_pad = ceil(3/2) = 2; then crop offsets -2 + pad.
        #expect(c.pixel(x: 2, y: 2) == (9, 9, 9) && c.pixel(x: 4, y: 3) == (9, 9, 9))
        #expect(c.pixel(x: 1, y: 2) == (0, 0, 0) && c.pixel(x: 2, y: 1) == (0, 0, 0) && c.pixel(x: 5, y: 4) == (0, 0, 0))
    }
}

/// ViT and DeiT image processors (classifier folders) against transformers' PIL backends
/// (tools/fixtures/make_vit_preprocess_fixtures.py).
@Suite struct ClassifierPreprocessorTests {
    @Test(arguments: ["rgb_40x30.png", "wide_300x120.png", "photo_131x190.jpg"])
    func vitAndDeiTMatchTransformers(_ file: String) throws {
        let expected = try SafetensorsFile(path: imageFixtureDirectory + "/vit_preprocess.safetensors")
        let image = try RGBImage.load(path: imageFixtureDirectory + "/" + file)
        let vit = try ImagePreprocessor(config: try JSONValue.parse(Data(#"{"image_processor_type": "ViTImageProcessor", "size": {"height": 32, "width": 32}}"#.utf8)))
        #expect(vit.kind == .vit && vit.resample == .bilinear && !vit.doCenterCrop && vit.imageMean == [0.5, 0.5, 0.5])
        #expect(try imageMaxError(try vit(image), "vit.\(file)", expected) < 1e-6)
        let deit = try ImagePreprocessor(config: try JSONValue.parse(Data(#"""
            {"image_processor_type": "DeiTImageProcessor", "size": {"height": 40, "width": 40}, "crop_size": {"height": 32, "width": 32},
             "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]}
            """#.utf8)))
        #expect(deit.kind == .deit && deit.resample == .bicubic && deit.doCenterCrop)
        #expect(try imageMaxError(try deit(image), "deit.\(file)", expected) < 1e-6)
        // The Hub's older configs: feature_extractor_type and an integer size, a square for ViT.
        let legacy = try ImagePreprocessor(config: try JSONValue.parse(Data(#"{"feature_extractor_type": "ViTFeatureExtractor", "size": 32, "resample": 2}"#.utf8)))
        #expect(legacy.kind == .vit && legacy.size == .exact(PixelSize(height: 32, width: 32)))
        #expect(try legacy(image).values == (try vit(image)).values)
        // No type at all: the caller's default (an image classifier folder passes ViTImageProcessor).
        let untyped = try ImagePreprocessor(config: try JSONValue.parse(Data(#"{"size": 32}"#.utf8)), defaultType: "ViTImageProcessor")
        #expect(untyped.kind == .vit)
        #expect(try ImagePreprocessor(config: try JSONValue.parse(Data(#"{"size": 32}"#.utf8))).kind == .clip)
        #expect(try ImagePreprocessor(config: try JSONValue.parse(Data(#"{"image_processor_type": "DeiTImageProcessor"}"#.utf8))).size == .exact(PixelSize(height: 256, width: 256)))
    }
}
