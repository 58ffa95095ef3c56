import Foundation
import Testing
import ModelIO
@testable import Evaluation

/// PSNR, SSIM and the Fréchet distance of the diffusion bench: hand-computed cases and constants from
/// scikit-image / scipy (tools/fixtures/diffusion_bench_metrics.py, which defines the same inputs by formula).
@Suite struct BenchDiffusionMetricsTests {
    static func image(width: Int, height: Int, _ value: (Int, Int, Int) -> Int) throws -> RGBImage {
        var pixels = [UInt8](repeating: 0, count: width * height * 3)
        for y in 0..<height { for x in 0..<width { for c in 0..<3 { pixels[(y * width + x) * 3 + c] = UInt8(value(x, y, c) % 256) } } }
        return try RGBImage(width: width, height: height, pixels: pixels)
    }

    static let a = try! image(width: 13, height: 12) { x, y, c in 37 * x + 91 * y + 53 * c }
    static let b = try! image(width: 13, height: 12) { x, y, c in x * x + 3 * y + 17 * c + 5 * x * y }

    /// Every value off by 10: MSE 100, PSNR = 10·log10(255² / 100) = 28.1308 dB; identical: infinite.
    @Test func psnrByHand() throws {
        let base = try Self.image(width: 5, height: 4) { x, y, c in 20 * x + 7 * y + c }
        let shifted = try Self.image(width: 5, height: 4) { x, y, c in 20 * x + 7 * y + c + 10 }
        #expect(abs(try ImageFidelity.psnr(base, shifted) - 10 * log10(65025.0 / 100)) < 1e-12)
        #expect(abs(try ImageFidelity.psnr(base, shifted) - 28.130803608679103) < 1e-9)
        #expect(try ImageFidelity.psnr(base, base) == .infinity)
    }

    /// Two flat images 100 and 110: no variance, so SSIM = (2·100·110 + C1) / (100² + 110² + C1),
    /// C1 = 2.55² = 6.5025 → 0.9954958…; an image with itself: 1.
    @Test func ssimByHand() throws {
        let flat100 = RGBImage(width: 12, height: 12, fill: (100, 100, 100))
        let flat110 = RGBImage(width: 12, height: 12, fill: (110, 110, 110))
        let c1: Double = 6.5025
        let expected: Double = (22_000 + c1) / (22_100 + c1)  // 2·100·110 = 22 000, 100² + 110² = 22 100
        #expect(abs(try ImageFidelity.ssim(flat100, flat110) - expected) < 1e-12)
        #expect(abs(try ImageFidelity.ssim(Self.a, Self.a) - 1) < 1e-12)
    }

    @Test func psnrAndSSIMMatchScikitImage() throws {
        #expect(abs(try ImageFidelity.psnr(Self.a, Self.b) - 7.781932095071136) < 1e-9)
        #expect(abs(try ImageFidelity.ssim(Self.a, Self.b) - -0.06298989735069928) < 1e-9)
    }

    @Test func differentSizesAreRefused() throws {
        let small = RGBImage(width: 4, height: 4, fill: (0, 0, 0))
        #expect(throws: BenchError.self) { try ImageFidelity.psnr(small, Self.a) }
        #expect(throws: BenchError.self) { try ImageFidelity.ssim(small, Self.a) }
    }

    /// Diagonal covariances commute: FD = |μ1 − μ2|² + Σ (√a_i − √b_i)². Points ±1 on each axis (4 points
    /// in 2-d, n − 1 = 3) have covariance diag(2/3, 2/3); ±2 around (1, 1): diag(8/3, 8/3).
    @Test func frechetClosedFormOnDiagonalGaussians() throws {
        let p: [[Double]] = [[1, 0], [-1, 0], [0, 1], [0, -1]]
        let q: [[Double]] = [[3, 1], [-1, 1], [1, 3], [1, -1]]
        let gap: Double = (2.0 / 3).squareRoot() - (8.0 / 3).squareRoot()
        let expected: Double = 2 + 2 * gap * gap
        #expect(abs(try FrechetDistance.between(p, q) - expected) < 1e-12)
        #expect(abs(try FrechetDistance.between(p, p)) < 1e-12)
    }

    @Test func frechetMatchesScipy() throws {
        let p = (0..<7).map { i -> [Double] in [sin(Double(i) + 1), cos(2 * Double(i) + 1), Double(i % 3) - 1] }
        let q = (0..<6).map { i -> [Double] in [0.5 * cos(3 * Double(i)), sin(Double(i)) + 0.2, 0.1 * Double(i)] }
        #expect(abs(try FrechetDistance.between(p, q) - 0.780816217911632) < 1e-9)
    }

    @Test func frechetRefusesTooFewOrRaggedVectors() throws {
        #expect(throws: BenchError.self) { try FrechetDistance.between([[1, 2]], [[1, 2], [3, 4]]) }
        #expect(throws: BenchError.self) { try FrechetDistance.between([[1, 2], [3]], [[1, 2], [3, 4]]) }
    }

    @Test func methodSpecs() throws {
        let s = try BenchDiffusion.MethodSpec.parse("ToCa:interval=3:ratio=0.1:order=2")
        #expect(s == BenchDiffusion.MethodSpec(name: "toca", interval: 3, ratio: 0.1, params: ["order=2"]))
        #expect(s.description == "toca:interval=3:ratio=0.1:order=2")
        #expect(try BenchDiffusion.MethodSpec.parse("fora").description == "fora")
        #expect(throws: BenchError.self) { try BenchDiffusion.MethodSpec.parse("fora:interval=0") }
        #expect(throws: BenchError.self) { try BenchDiffusion.MethodSpec.parse("fora:interval") }
        #expect(throws: BenchError.self) { try BenchDiffusion.MethodSpec.parse(":interval=2") }
    }
}
