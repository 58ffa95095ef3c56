import Foundation
import Testing
@testable import ModelIO
import Tensors

/// Writes `bytes` to a fresh temporary file and returns its path.
func modelIOTemporaryFile(_ bytes: Data, name: String = "t.safetensors") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokc-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let url = dir.appendingPathComponent(name)
    try bytes.write(to: url)
    return url.path
}

/// A safetensors file with a hand-written header and `dataLength` zero bytes of data.
func modelIOHandMade(header: String, dataLength: Int) -> Data {
    var d = Data()
    let h = Array(header.utf8)
    withUnsafeBytes(of: UInt64(h.count).littleEndian) { d.append(contentsOf: $0) }
    d.append(contentsOf: h)
    d.append(Data(count: dataLength))
    return d
}

/// Expects a SafetensorsError whose message mentions `fragment` (and the tensor, when given).
func modelIOExpectError(_ data: Data, _ fragment: String, tensor: String? = nil) throws {
    let path = try modelIOTemporaryFile(data)
    do {
        _ = try SafetensorsFile(path: path)
        Issue.record("expected an error containing '\(fragment)'")
    } catch let error as SafetensorsError {
        #expect(error.file == path)
        #expect(error.description.contains(fragment), "\(error)")
        if let tensor { #expect(error.tensor == tensor, "\(error)") }
    }
}

@Suite struct SafetensorsTests {
    @Test func roundTripEveryWrittenDType() throws {
        var writer = SafetensorsWriter()
        let t = try Tensor(shape: [2, 3], values: [1, -2.5, 0.333, 65504, 1e-3, -0])
        try writer.add("f32", t)
        try writer.add("f16", t, as: .F16)
        try writer.add("bf16", t, as: .BF16)
        try writer.add("ids", int64: [1, -2, 1 << 40], shape: [3])
        try writer.add("flags", uint8: [0, 1])
        writer.metadata = ["format": "pt"]
        let path = try modelIOTemporaryFile(writer.serialized())
        let file = try SafetensorsFile(path: path)
        #expect(file.names.sorted() == ["bf16", "f16", "f32", "flags", "ids"])
        #expect(file.metadata == ["format": "pt"])
        #expect(try file.tensor("f32").values == t.values)
        #expect(try file.tensor("f32").shape == [2, 3])
        let half = try file.tensor("f16").values
        #expect(half[0] == 1 && half[1] == -2.5 && half[3] == 65504)
        #expect(abs(half[2] - 0.333) < 1e-3)
        let bf = try file.tensor("bf16").values
        #expect(bf[0] == 1 && bf[1] == -2.5 && abs(bf[2] - 0.333) < 2e-3)
        #expect(try file.integers("ids") == [1, -2, 1 << 40])
        #expect(try file.integers("flags") == [0, 1])
        #expect(throws: SafetensorsError.self) { try file.integers("f32") }
        #expect(throws: SafetensorsError.self) { try file.tensor("missing") }
    }

    @Test func halfConversionIsExactOnRepresentableValues() {
        for bits in stride(from: UInt16(0), to: 0x7C00, by: 7) {
            let f = DTypeConversion.halfToFloat(bits)
            #expect(DTypeConversion.floatToHalf(f) == bits)
        }
        #expect(DTypeConversion.halfToFloat(0x0001) == Float(sign: .plus, exponent: -24, significand: 1))
        #expect(DTypeConversion.halfToFloat(0x7C00) == .infinity)
        #expect(DTypeConversion.floatToHalf(1e6) == 0x7C00)
    }

    @Test func truncatedFileIsRejected() throws {
        try modelIOExpectError(Data([1, 2, 3]), "truncated")
    }

    @Test func headerLengthPastEndIsRejected() throws {
        var d = Data()
        withUnsafeBytes(of: UInt64(1000).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array("{}".utf8))
        try modelIOExpectError(d, "runs past the end")
    }

    @Test func malformedJSONIsRejected() throws {
        try modelIOExpectError(modelIOHandMade(header: "{\"a\": {\"dtype\": ", dataLength: 0), "not valid JSON")
    }

    @Test func unknownDTypeIsRejected() throws {
        try modelIOExpectError(modelIOHandMade(header: #"{"w": {"dtype": "F8", "shape": [1], "data_offsets": [0, 1]}}"#, dataLength: 1),
                               "unknown dtype 'F8'", tensor: "w")
    }

    @Test func offsetsOutsideDataAreRejected() throws {
        try modelIOExpectError(modelIOHandMade(header: #"{"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}"#, dataLength: 8),
                               "run past the data area", tensor: "w")
        try modelIOExpectError(modelIOHandMade(header: #"{"w": {"dtype": "F32", "shape": [1], "data_offsets": [8, 4]}}"#, dataLength: 8),
                               "reversed", tensor: "w")
    }

    @Test func overlappingTensorsAreRejected() throws {
        let header = #"{"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}"#
        try modelIOExpectError(modelIOHandMade(header: header, dataLength: 12), "overlaps", tensor: "b")
    }

    @Test func shapeLengthMismatchIsRejected() throws {
        try modelIOExpectError(modelIOHandMade(header: #"{"w": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}}"#, dataLength: 8),
                               "needs 6 bytes", tensor: "w")
        try modelIOExpectError(modelIOHandMade(header: #"{"w": {"dtype": "F16", "shape": [-3], "data_offsets": [0, 8]}}"#, dataLength: 8),
                               "non-negative", tensor: "w")
    }

    @Test func missingFileIsReported() {
        #expect(throws: SafetensorsError.self) { try SafetensorsFile(path: "/nonexistent/x.safetensors") }
    }

    @Test func shardedCheckpointReadsAsOne() throws {
        var w1 = SafetensorsWriter(), w2 = SafetensorsWriter()
        try w1.add("a", Tensor(shape: [2], repeating: 1))
        try w2.add("b", Tensor(shape: [3], repeating: 2))
        let p1 = try modelIOTemporaryFile(w1.serialized(), name: "model-00001-of-00002.safetensors")
        let dir = URL(fileURLWithPath: p1).deletingLastPathComponent()
        try w2.serialized().write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        let index = #"{"metadata": {}, "weight_map": {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}}"#
        try Data(index.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        let checkpoint = try Checkpoint(path: dir.path)
        #expect(checkpoint.names == ["a", "b"])
        #expect(try checkpoint.tensor("b").values == [2, 2, 2])
        #expect(checkpoint.parameterCount == 5)
        #expect(throws: SafetensorsError.self) { try checkpoint.tensor("c") }
        #expect(throws: SafetensorsError.self) { try checkpoint.tensor("a", shape: [3]) }

        let badIndex = #"{"weight_map": {"a": "model-00001-of-00002.safetensors", "z": "model-00002-of-00002.safetensors"}}"#
        try Data(badIndex.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        do {
            _ = try Checkpoint(path: dir.path)
            Issue.record("expected missing-tensor error")
        } catch let error as SafetensorsError {
            #expect(error.tensor == "z")
            #expect(error.description.contains("missing from the shard"))
        }
    }
}

@Suite struct DTypeConversionTests {
    @Test func tableConversionMatchesBitDecodingForEveryHalf() {
        let bits = (0..<65536).map { UInt16($0).littleEndian }
        var out = [Float](repeating: 0, count: 65536)
        bits.withUnsafeBytes { raw in
            out.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(raw, dtype: .F16, into: $0) }
        }
        #expect(zip(bits, out).allSatisfy { DTypeConversion.halfToFloat(UInt16(littleEndian: $0)).bitPattern == $1.bitPattern || $1.isNaN })
        let bf: [UInt16] = [0x3F80, 0xC000]
        var o = [Float](repeating: 0, count: 2)
        bf.withUnsafeBytes { raw in o.withUnsafeMutableBufferPointer { DTypeConversion.toFloat32(raw, dtype: .BF16, into: $0) } }
        #expect(o == [1, -2])
    }
}
