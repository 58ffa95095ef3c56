import Foundation

/// What one (method, budget, sample) run measured; one JSONL line in `rows.jsonl`.
public struct BenchRecord: Sendable, Equatable, Codable {
    public var key: String
    public var method: String
    /// "100%" for the uncompressed run.
    public var budget: String
    public var sampleID: String
    public var sampleIndex: Int
    public var type: String
    public var answer: String?
    public var prediction: String
    public var visualTokens: Int
    public var requestedTokens: Int
    public var achievedTokens: Int
    /// Median over the timed repeats.
    public var prefillMs: Double
    public var prefillMsRepeats: [Double]
    public var decodeMsPerToken: Double
    /// Median wall time of one whole sample (preprocessed image in, answer out).
    public var endToEndMs: Double
    public var kvCacheBytes: Int
    public var peakTensorBytes: Int
    public var peakRSSBytes: Int
    public var scoringMs: Double
    /// Analytic TFLOPs of the run (prefill + generated tokens) and of its prefill alone.
    public var tflops: Double
    public var prefillTFLOPs: Double
    public var flopsNote: String?
    public var correct: Bool?
    public var answerAgrees: Bool?
    public var top1Agrees: Bool?
    public var klDivergence: Double?
    public var error: String?
    public var notes: [String]
    /// See `VLMRunResult.positionsRenumbered` (nil in rows written before it was recorded).
    public var positionsRenumbered: Bool? = nil
    /// Classifier sweeps: images in the batch this row ran in (its times are the batch's per-image share).
    public var batchSize: Int? = nil
    /// Classifier sweeps: rows each block's attention ran on for this image.
    public var tokensPerBlock: [Int]? = nil
    /// Video rows: frames the video was sampled to (nil for image rows).
    public var frames: Int? = nil
    /// Median LLM generation latency: the language model's part of the prefill plus every decoding
    /// step (the visual encoding excluded). Nil in rows written before it was recorded.
    public var llmMs: Double? = nil
    /// Median total latency of the sample from its file on disk: decoding the image or the video's
    /// frames, preprocessing, the prompt, the vision tower and projector, the LLM. Nil in older rows.
    public var totalMs: Double? = nil
}

/// The append-only results file of one output folder; what it holds is skipped on resume.
public struct BenchResultStore {
    public let path: String
    public private(set) var records: [BenchRecord] = []
    /// Bytes of an unfinished last line that opening the store cut off (0: none): a sweep killed
    /// while writing a row. That row runs again.
    public private(set) var droppedTornBytes = 0

    /// Opens (or creates) `folder/rows.jsonl`. A torn last line (an interrupted write) is dropped.
    public init(folder: String) throws {
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        path = (folder as NSString).appendingPathComponent("rows.jsonl")
        droppedTornBytes = try Self.dropTornTail(path)
        records = try Self.read(path)
    }

    /// Cuts an unfinished last line (a sweep killed mid-write), so the next row starts clean;
    /// returns how many bytes it cut.
    @discardableResult
    static func dropTornTail(_ path: String) throws -> Int {
        guard let data = FileManager.default.contents(atPath: path), let last = data.last, last != 0x0A else { return 0 }
        let keep = (data.lastIndex(of: 0x0A).map { $0 + 1 }) ?? 0
        guard let h = FileHandle(forUpdatingAtPath: path) else { throw BenchError("cannot repair \(path)") }
        defer { try? h.close() }
        h.truncateFile(atOffset: UInt64(keep))
        return data.count - keep
    }

    public static func read(_ path: String) throws -> [BenchRecord] {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else { return [] }
        var out: [BenchRecord] = []
        let lines = text.split(separator: "\n", omittingEmptySubsequences: true)
        for (n, line) in lines.enumerated() {
            do {
                let dec = JSONDecoder()
                dec.nonConformingFloatDecodingStrategy = .convertFromString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
                out.append(try dec.decode(BenchRecord.self, from: Data(line.utf8)))
            } catch {
                if n == lines.count - 1 { break }  // interrupted mid-line
                throw BenchError("\(path):\(n + 1): not a bench row: \(error)")
            }
        }
        return out
    }

    /// Keys whose latest row succeeded. A failed row is not done: a resumed sweep runs it again.
    public var doneKeys: Set<String> { Set(Self.latest(records).filter { $0.error == nil }.map(\.key)) }

    /// The rows that stand: for each key its last row (a retry replaces the failure it followed),
    /// in the order the keys first appeared.
    public var latestRecords: [BenchRecord] { Self.latest(records) }

    static func latest(_ records: [BenchRecord]) -> [BenchRecord] {
        var slot: [String: Int] = [:]
        var out: [BenchRecord] = []
        for r in records {
            if let i = slot[r.key] { out[i] = r } else { slot[r.key] = out.count; out.append(r) }
        }
        return out
    }

    /// Appends one row and flushes it, so a killed sweep loses at most the row in flight.
    public mutating func append(_ r: BenchRecord) throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        enc.nonConformingFloatEncodingStrategy = .convertToString(positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
        var line = try enc.encode(r)
        line.append(0x0A)
        if !FileManager.default.fileExists(atPath: path) {
            _ = FileManager.default.createFile(atPath: path, contents: nil)
        }
        guard let h = FileHandle(forUpdatingAtPath: path) else { throw BenchError("cannot append to \(path)") }
        defer { try? h.close() }
        // Start on a fresh line if a previous run was killed mid-write.
        let end = h.seekToEndOfFile()
        if end > 0 {
            h.seek(toFileOffset: end - 1)
            let last = h.readDataToEndOfFile()
            if last.first != 0x0A { h.write(Data([0x0A])) }
        }
        h.write(line)
        records.append(r)
    }
}
