import Foundation
import Testing
@testable import ModelIO
import Tensors

/// The streaming writer produces the same file as the in-memory one and refuses to write a file
/// whose header would not match its data.
@Suite struct SafetensorsStreamWriterTests {
    static func tempPath() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokc-stream-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir.appendingPathComponent("s.safetensors").path
    }

    @Test func writesTheSameBytesAsTheInMemoryWriter() throws {
        let a = Data((0..<24).map { UInt8($0) }), b = Data([7, 8, 9])
        var memory = SafetensorsWriter()
        memory.metadata = ["format": "pt"]
        try memory.add("a", bytes: a, dtype: .F32, shape: [2, 3])
        try memory.add("b", bytes: b, dtype: .U8, shape: [3])
        let path = try Self.tempPath()
        let stream = try SafetensorsStreamWriter(path: path, plan: [.init(name: "a", dtype: .F32, shape: [2, 3]), .init(name: "b", dtype: .U8, shape: [3])],
                                                 metadata: ["format": "pt"])
        #expect(stream.expected?.name == "a")
        try a.withUnsafeBytes { try stream.append("a", bytes: $0) }
        try b.withUnsafeBytes { try stream.append("b", bytes: $0) }
        #expect(stream.expected == nil)
        try stream.finish()
        #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == memory.serialized())
        let file = try SafetensorsFile(path: path)
        #expect(try file.info("b").shape == [3])
        #expect(Array(try file.rawBytes("b")) == [7, 8, 9])
    }

    @Test func refusesOutOfOrderWrongSizeDuplicateAndUnfinished() throws {
        let plan: [SafetensorsStreamWriter.Planned] = [.init(name: "x", dtype: .F16, shape: [2]), .init(name: "y", dtype: .I8, shape: [1])]
        #expect(throws: SafetensorsError.self) { try SafetensorsStreamWriter(path: try Self.tempPath(), plan: plan + [plan[0]]) }
        let w = try SafetensorsStreamWriter(path: try Self.tempPath(), plan: plan)
        let four = Data([1, 2, 3, 4]), three = Data([1, 2, 3])
        #expect(throws: SafetensorsError.self) { try four.withUnsafeBytes { try w.append("y", bytes: $0) } }  // out of order
        #expect(throws: SafetensorsError.self) { try three.withUnsafeBytes { try w.append("x", bytes: $0) } }  // F16 [2] is 4 bytes
        try four.withUnsafeBytes { try w.append("x", bytes: $0) }
        #expect(throws: SafetensorsError.self) { try w.finish() }  // "y" never written
    }
}
