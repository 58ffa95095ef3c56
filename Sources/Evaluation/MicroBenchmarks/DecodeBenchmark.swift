import Foundation
import Models
import Tensors

/// Decode and prefill speed of a decoder checkpoint, next to what the machine allows: decoding reads
/// every weight once per token, so its floor is the weight bytes over the read bandwidth measured in
/// the same run (`StreamRead`); prefill is arithmetic, compared with the sgemm rate.
///
/// `tokc bench-decode` prints it; tools/bench/pytorch_decode.py times the same protocol in PyTorch.
public enum DecodeBenchmark {
    public struct Result: Sendable {
        public var promptTokens: Int
        public var prefillMs: Double
        /// Matrix-product FLOPs of the prefill (linear layers and attention's two products, 2 per multiply-add).
        public var prefillFlops: Double
        public var decodeMs: [Double]
        /// Bytes of weights one decode step reads (every linear layer and the LM head, as stored).
        public var weightBytesPerToken: Double
        /// Read bandwidth of this run in bytes/s (best of the passes before and after the timed phases).
        public var bandwidth: Double
        /// The best of three passes of the one-row kernels over the same matrices, nothing else (nil for F32 weights).
        public var linearOnlyMs: Double?
        /// Minor page faults during the prefill and during all decode steps (getrusage).
        public var prefillMinorFaults: Int
        public var decodeMinorFaults: Int

        public var decodeMedianMs: Double { Statistics.median(decodeMs) }
        public var floorMs: Double { weightBytesPerToken / bandwidth * 1000 }
        public var prefillTokensPerSecond: Double { Double(promptTokens) / (prefillMs / 1000) }
        public var prefillGflops: Double { prefillFlops / (prefillMs * 1e6) }
    }

    /// Names of the matrices one decode step multiplies by (linear layers and the LM head).
    static func linearNames(_ model: DecoderLM) throws -> [String] {
        let store = model.store
        var logical = Set<String>()
        for n in store.names {
            var name = n
            for suffix in [WeightStore.quantizedDataSuffix, WeightStore.quantizedScalesSuffix] where name.hasSuffix(suffix) {
                name = String(name.dropLast(suffix.count))
            }
            if name.hasSuffix("_proj.weight") || name.hasSuffix("lm_head.weight") { logical.insert(name) }
        }
        if model.config.tieWordEmbeddings, let embed = store.names.first(where: { $0.hasSuffix("embed_tokens.weight") }) {
            logical.insert(embed)
        }
        guard !logical.isEmpty else { throw ModelError("\(store.location): no linear weights (*_proj.weight) found") }
        return logical.sorted()
    }

    /// Bytes the linear layers and the LM head of `model` hold as stored (what one decode step reads;
    /// data and scales for quantized matrices).
    public static func weightBytesPerToken(_ model: DecoderLM) throws -> Double {
        Double(try linearNames(model).reduce(0) { $0 + (try model.store.storedBytes($1)) })
    }

    /// Milliseconds of a pass of one-row products over every matrix of a decode step and nothing else
    /// (the kernels' share of a step; the rest is attention, norms, RoPE and dispatch). Nil for F32 weights.
    /// Best of `passes` (single passes are at the mercy of a shared host).
    public static func linearOnlyMs(_ model: DecoderLM, passes: Int = 3) throws -> Double? {
        var best: Double?
        for _ in 0..<max(1, passes) {
            guard let t = try linearOnlyPassMs(model) else { return nil }
            best = min(best ?? t, t)
        }
        return best
    }

    static func linearOnlyPassMs(_ model: DecoderLM) throws -> Double? {
        var total = 0.0
        for name in try linearNames(model) {
            let info = try model.store.info(name)
            let (n, k) = (info.shape[0], info.shape[1])
            let x = PrefillBenchmark.random([1, k], scale: 1, seed: 5)
            var y = [Float](repeating: 0, count: n)
            let start = DispatchTime.now().uptimeNanoseconds
            let ran: Bool = try x.withUnsafeBufferPointer { xp in
                try y.withUnsafeMutableBufferPointer { yp in
                    if try model.store.withQuantized(name, { QuantizedMatmul.gemv(x: xp.baseAddress!, rows: 1, matrix: $0, into: yp.baseAddress!, accumulate: false) }) != nil {
                        return true
                    }
                    return try model.store.withHalfPrecision(name) { w, format in
                        HalfMatmul.gemv(x: xp.baseAddress!, rows: 1, weight: w, format: format, outFeatures: n, inFeatures: k,
                                        into: yp.baseAddress!, accumulate: false)
                    } != nil
                }
            }
            guard ran else { return nil }
            total += milliseconds(since: start)
        }
        return total
    }

    static func minorFaults() -> Int {
        var usage = rusage()
        #if os(Linux)
        getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
        #else
        getrusage(RUSAGE_SELF, &usage)
        #endif
        return Int(usage.ru_minflt)
    }

    static func milliseconds(since start: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6 }

    /// Prefills `promptTokens` pseudo-random token ids, then decodes `decodeTokens` greedily, timing each
    /// step. One untimed decode step first pages the weights in (a cold mapping is a disk benchmark).
    /// Where decoding time goes: `steps` further decode steps after a `promptTokens` prefill with
    /// `OpProfile` on, per operation, in milliseconds per token (the time no operation claims is
    /// reported by the caller as the step total minus their sum).
    public static func profileDecode(model: DecoderLM, promptTokens: Int, steps: Int) throws -> (entries: [OpProfile.Entry], stepMs: Double) {
        guard promptTokens > 0, steps > 0 else { throw ModelError("bench-decode: prompt and profiled step counts must be positive") }
        let ids = (0..<promptTokens).map { ($0 * 7919 + 13) % model.config.vocabSize }
        let prefill = try model.prefill(inputIDs: ids)
        var logits = try model.decodeStep(token: DecoderLM.argmax(prefill.logits), cache: prefill.cache)
        OpProfile.reset()
        OpProfile.isEnabled = true
        defer { OpProfile.isEnabled = false }
        let start = DispatchTime.now().uptimeNanoseconds
        for _ in 0..<steps { logits = try model.decodeStep(token: DecoderLM.argmax(logits), cache: prefill.cache) }
        let total = milliseconds(since: start) / Double(steps)
        let perToken = OpProfile.entries().map {
            OpProfile.Entry(label: $0.label, milliseconds: $0.milliseconds / Double(steps), calls: $0.calls / steps)
        }
        return (perToken, total)
    }

    public static func run(model: DecoderLM, promptTokens: Int, decodeTokens: Int, bandwidthBytes: Int = 1 << 29) throws -> Result {
        guard promptTokens > 0, decodeTokens > 0 else { throw ModelError("bench-decode: prompt and decode token counts must be positive") }
        let c = model.config
        guard promptTokens + decodeTokens + 1 <= c.maxPositionEmbeddings else {
            throw ModelError("bench-decode: \(promptTokens) + \(decodeTokens) tokens exceed max_position_embeddings \(c.maxPositionEmbeddings)")
        }
        let ids = (0..<promptTokens).map { ($0 * 7919 + 13) % c.vocabSize }
        // Bandwidth before and after the timed phases, the larger kept: on a shared host a single
        // short measurement can land in a busy moment and flatter the ratio to the floor.
        let bandwidthBefore = StreamRead.bandwidth(bytes: bandwidthBytes)
        // Warm-up: a one-token prefill and step read every weight once.
        let warm = try model.prefill(inputIDs: [ids[0]])
        _ = try model.decodeStep(token: DecoderLM.argmax(warm.logits), cache: warm.cache)

        var faults = minorFaults()
        var start = DispatchTime.now().uptimeNanoseconds
        let prefill = try model.prefill(inputIDs: ids)
        let prefillMs = milliseconds(since: start)
        let prefillFaults = minorFaults() - faults

        faults = minorFaults()
        var steps: [Double] = []
        var logits = prefill.logits
        for _ in 0..<decodeTokens {
            start = DispatchTime.now().uptimeNanoseconds
            logits = try model.decodeStep(token: DecoderLM.argmax(logits), cache: prefill.cache)
            steps.append(milliseconds(since: start))
        }
        let decodeFaults = minorFaults() - faults
        let linearOnly = try linearOnlyMs(model)
        let bandwidth = max(bandwidthBefore, StreamRead.bandwidth(bytes: bandwidthBytes))

        let d = Double(c.hiddenSize), qw = Double(c.heads * c.headDim), kvw = Double(c.kvHeads * c.headDim)
        let p = Double(promptTokens)
        let linear = 2 * p * (d * qw + 2 * d * kvw + qw * d + 3 * d * Double(c.intermediateSize))
        let attention = 2 * 2 * p * p * qw  // QKᵀ and PV over all heads (full square, as computed)
        let flops = Double(c.layers) * (linear + attention) + 2 * d * Double(c.vocabSize)
        return Result(promptTokens: promptTokens, prefillMs: prefillMs, prefillFlops: flops, decodeMs: steps,
                      weightBytesPerToken: try weightBytesPerToken(model), bandwidth: bandwidth, linearOnlyMs: linearOnly,
                      prefillMinorFaults: prefillFaults, decodeMinorFaults: decodeFaults)
    }
}
