// swift-tools-version: 6.1
import PackageDescription

// BLAS: OpenBLAS through pkg-config on Linux, Accelerate on Apple platforms.
let blasDependency: [Target.Dependency] = [
    .target(name: "COpenBLAS", condition: .when(platforms: [.linux]))
]

let package = Package(
    name: "TokenCompression",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "Tensors", targets: ["Tensors"]),
        .library(name: "ModelIO", targets: ["ModelIO"]),
        .library(name: "TokenCompression", targets: ["TokenCompression"]),
        .library(name: "Models", targets: ["Models"]),
        .library(name: "Runtime", targets: ["Runtime"]),
        .library(name: "Evaluation", targets: ["Evaluation"]),
        .executable(name: "tokc", targets: ["tokc"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
    ],
    targets: [
        .systemLibrary(
            name: "COpenBLAS",
            pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]
        ),
        // Header-only AVX-512 / AVX2 element-wise kernels (per-function target attributes; chosen at run time).
        .systemLibrary(name: "CVectorKernels", path: "Sources/CVectorKernels"),
        .target(name: "Tensors", dependencies: blasDependency + ["CVectorKernels"]),
        .systemLibrary(
            name: "CImageCodecs",
            pkgConfig: "libpng",
            providers: [.apt(["libpng-dev", "libjpeg-dev"])]
        ),
        // Video files (MP4, WebM, MKV, AVI, GIF) are demuxed, decoded and converted to RGB by FFmpeg's libraries.
        .systemLibrary(
            name: "CFFmpeg",
            pkgConfig: "libavformat",
            providers: [.apt(["libavformat-dev", "libavcodec-dev", "libswscale-dev", "libavutil-dev"])]
        ),
        .target(name: "ModelIO", dependencies: [
            "Tensors", .target(name: "CImageCodecs", condition: .when(platforms: [.linux])),
            .target(name: "CFFmpeg", condition: .when(platforms: [.linux])),
        ]),
        .target(name: "TokenCompression", dependencies: ["Tensors"]),
        .target(name: "Models", dependencies: ["Tensors", "ModelIO", "TokenCompression"]),
        // One sample end to end on a loaded model: preprocessing, prompt, prefill through the hooks, decoding.
        .target(name: "Runtime", dependencies: ["Tensors", "ModelIO", "TokenCompression", "Models"]),
        .target(name: "Evaluation", dependencies: ["Tensors", "ModelIO", "TokenCompression", "Models", "Runtime"]),
        .executableTarget(
            name: "tokc",
            dependencies: [
                "Tensors", "ModelIO", "TokenCompression", "Models", "Runtime", "Evaluation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Seeded test inputs shared by the test targets (no product: tests only).
        .target(name: "TestSupport", dependencies: ["Tensors"], path: "Tests/TestSupport"),
        .testTarget(name: "TensorsTests", dependencies: ["Tensors", "TestSupport"]),
        .testTarget(name: "ModelIOTests", dependencies: ["ModelIO", "Tensors"]),
        .testTarget(name: "TokenCompressionTests", dependencies: ["TokenCompression", "Tensors", "TestSupport"]),
        .testTarget(name: "ModelsTests", dependencies: ["Models", "ModelIO", "TokenCompression", "Tensors", "Evaluation"]),
        .testTarget(name: "RuntimeTests", dependencies: ["Runtime", "Models", "ModelIO", "TokenCompression", "Tensors"]),
        .testTarget(name: "EvaluationTests", dependencies: ["Evaluation", "Runtime", "Models", "ModelIO", "TokenCompression", "Tensors"]),
        // The CLI's option parsing and validation (`@testable import tokc`; no model is loaded).
        .testTarget(name: "tokcTests", dependencies: [
            "tokc", "Evaluation", "Runtime", "Models", "TokenCompression",
            .product(name: "ArgumentParser", package: "swift-argument-parser"),
        ]),
    ],
    swiftLanguageModes: [.v5]
)
