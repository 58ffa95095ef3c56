import Foundation
import Testing
@testable import Evaluation

/// The task reader streams its file and caps the line length (issue #17: a 1 GB line must be a clear
/// error, not a 1 GB read; tools/reliability/hostile_sizes.sh measures that case's peak memory).
@Suite("Bench task limits")
struct BenchTaskLimitTests {
    private func write(_ data: Data) throws -> String {
        let path = benchTempFolder("limits") + "/task.jsonl"
        try data.write(to: URL(fileURLWithPath: path))
        return path
    }

    private func line(_ i: Int, padding: Int = 0) -> String {
        #"{"id": "s\#(i)", "image": "img/\#(i).png", "question": "q\#(String(repeating: "x", count: padding))", "answer": "\#(i % 7)"}"#
    }

    @Test func aLineLongerThanTheCapIsRefusedNamingTheLine() throws {
        let long = #"{"image": "a.png", "question": ""# + String(repeating: "a", count: BenchTask.maxLineBytes) + #""}"#
        let text = line(1) + "\n" + long + "\n" + line(3) + "\n"
        for load in [{ try BenchTask.load(jsonl: try write(Data(text.utf8))) },
                     { try BenchTask.parse(text, name: "task.jsonl", baseDirectory: URL(fileURLWithPath: "/t")) }] {
            let error = #expect(throws: BenchError.self) { try load() }
            #expect(error?.description.contains("task.jsonl:2: line longer than \(BenchTask.maxLineBytes) bytes") == true,
                    "\(error?.description ?? "")")
        }
        // Also without a newline anywhere (the reader must not wait for one).
        let unterminated = try write(Data(repeating: UInt8(ascii: "a"), count: BenchTask.maxLineBytes + BenchTask.readChunkBytes + 5))
        let error = #expect(throws: BenchError.self) { try BenchTask.load(jsonl: unterminated) }
        #expect(error?.description.contains(":1: line longer than") == true, "\(error?.description ?? "")")
    }

    @Test func linesAcrossReadChunksAreReadWhole() throws {
        // About 3 read chunks of lines of varying length, the last one without a newline: the streamed
        // reader must give exactly what parsing the whole text gives.
        var lines: [String] = []
        var size = 0
        var i = 0
        while size < 3 * BenchTask.readChunkBytes {
            let l = line(i, padding: (i * 7919) % 1500)
            lines.append(l)
            size += l.utf8.count + 1
            i += 1
        }
        lines.append("")
        lines.append("  ")
        lines.append(line(i))
        let text = lines.joined(separator: "\n")
        let path = try write(Data(text.utf8))
        let streamed = try BenchTask.load(jsonl: path)
        let whole = try BenchTask.parse(text, name: path, baseDirectory: URL(fileURLWithPath: path).deletingLastPathComponent())
        #expect(streamed.count == i + 1)
        #expect(streamed == whole)
        #expect(streamed.last?.id == "s\(i)")
        #expect(streamed[1234].question.count == 1 + (1234 * 7919) % 1500)
    }

    @Test func aLineThatIsNotUTF8IsNamed() throws {
        var data = Data((line(1) + "\n").utf8)
        data.append(contentsOf: [0x7B, 0xFF, 0xFE, 0x7D, 0x0A])
        let error = #expect(throws: BenchError.self) { try BenchTask.load(jsonl: try write(data)) }
        #expect(error?.description.contains("task.jsonl:2: not UTF-8") == true, "\(error?.description ?? "")")
    }
}
