// swift-tools-version: 6.1
import Foundation
import PackageDescription

// libFuzzer targets for every parser that reads user input. A package of its own, so the main
// `swift build` / `swift test` never see `-sanitize=fuzzer`; it depends on the repository root by path.
// Build and run through tools/fuzz/run.sh (it passes --sanitize=fuzzer --sanitize=address and
// -parse-as-library, so libFuzzer's `main` drives each target's LLVMFuzzerTestOneInput).
let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
// A path dependency's identity is its folder name (whatever the clone is called).
let rootIdentity = root.lastPathComponent.lowercased()

let targetNames = [
    "safetensors", "json", "config", "tokenizer", "chat-template", "png", "jpeg", "bench-task", "conformance-case",
]

func rootProduct(_ name: String) -> Target.Dependency { .product(name: name, package: rootIdentity) }

let package = Package(
    name: "TokenCompressionFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [.package(path: root.path)],
    targets: [
        .target(name: "FuzzSupport", path: "Sources/FuzzSupport"),
    ] + targetNames.map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: ["FuzzSupport", rootProduct("ModelIO"), rootProduct("Models"), rootProduct("Runtime"),
                           rootProduct("Evaluation"), rootProduct("Tensors")],
            path: "Sources/fuzz-\(name)"
        )
    },
    swiftLanguageModes: [.v5]
)
