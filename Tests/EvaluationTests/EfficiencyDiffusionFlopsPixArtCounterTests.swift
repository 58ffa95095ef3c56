import Foundation
import Testing
import Models
import TokenCompression
@testable import Evaluation

/// `--convention toca-code` on PixArt-α: the ToCa/DuCa authors' own PixArt-α counter (docs/flops.md,
/// "PixArt-α in the authors' counter"), checked term by term on a tiny shape, then on the preset with
/// our FORA and DuCa schedules.
@Suite struct EfficiencyDiffusionFlopsPixArtCounterTests {
    /// B = 2 (guided), N = 4 image tokens, C = 8, H = 2 heads of h = 4, L = 3 caption tokens, 2 blocks.
    static func tiny(captionTokens: Int = 3) -> DiffusionFlopsShape {
        var s = DiffusionFlopsShape(family: .pixart, layers: 2, width: 8, heads: 2, tokens: 4, patchSize: 2, inChannels: 4, outChannels: 8,
                                    captionChannels: 16, captionTokens: captionTokens)
        s.convention = .tocaCode
        return s
    }

    // The terms of one block of the tiny shape at B = 2, written out from the counter's rules.
    static let layerNorms = 2.0 * 2 * 4 * 8                 // 2·B·N·C = 128
    static let adaLN = 2.0 * 8 + 6 * 2 * 8 * 8               // B·C + 6·B·C² = 784
    static let selfQKV = 2.0 * 4 * 8 * (3 * 8) * 2           // B·N·C·3C·2 = 3072
    static let selfScale = 2.0 * 2 * 4 * 4                   // B·H·N·h = 64
    static let selfQK = 2.0 * 2 * 4 * 4 * 4 * 2              // B·H·N·N·h·2 = 512
    static let selfSoftmax = 2.0 * 2 * 4 * 4 * 5             // B·H·N·N·5 = 320
    static let selfAV = 2.0 * 2 * 4 * 4 * 4 * 2              // B·H·N·N·h·2 = 512
    static let selfOut = 2.0 * 4 * 8 * 8 * 2                 // B·N·C·C·2 = 1024
    static let mlpUp = 2.0 * 4 * 8 * 32 * 2                  // B·N·C·4C·2 = 4096
    static let mlpDown = 2.0 * 4 * 32 * 8 * 2                // B·N·4C·C·2 = 4096
    static let gelu = 2.0 * 4 * 32 * 6                       // B·N·4C·6 = 1536

    /// Cross-attention with `rows` query rows per sample: N0 = B·rows, N1 = B·L.
    static func cross(rows: Double, captionTokens: Double = 3) -> (q: Double, kv: Double, scale: Double, one: Double, qk: Double,
                                                                    softmax: Double, av: Double, out: Double) {
        let n0 = 2 * rows, n1 = 2 * captionTokens
        return (q: n0 * 8 * 8 * 2, kv: n1 * 8 * 8 * 2 * 2, scale: 2 * n0 * 4, one: 2 * n0 * n1, qk: 2 * n0 * n1 * 4 * 2,
                softmax: 2 * n0 * n1 * 5, av: 2 * n0 * n1 * 4 * 2, out: 2 * n0 * 8 * 8 * 2)
    }

    static func sum(_ c: (q: Double, kv: Double, scale: Double, one: Double, qk: Double, softmax: Double, av: Double, out: Double)) -> Double {
        c.q + c.kv + c.scale + c.one + c.qk + c.softmax + c.av + c.out
    }

    @Test func fullStepTermByTerm() {
        let c = Self.cross(rows: 4)
        // The cross-attention terms of N0 = 8, N1 = 6 by hand.
        #expect([c.q, c.kv, c.scale, c.one, c.qk, c.softmax, c.av, c.out] == [1024, 1536, 64, 96, 768, 480, 768, 2048])
        let block = Self.layerNorms + Self.adaLN
            + Self.selfQKV + Self.selfScale + Self.selfQK + Self.selfSoftmax + Self.selfAV + Self.selfOut
            + Self.sum(c) + Self.mlpUp + Self.mlpDown + Self.gelu
        #expect(block == 22_928)
        let s = Self.tiny()
        #expect(s.pixArtCounterBlockFLOPs(batch: 2, fractions: [1, 1, 1], skipped: false) == block)
        #expect(s.callFLOPs(batch: 2) == 2 * block)
        #expect(s.callFLOPs(batch: 2, fractions: [[1, 1, 1], [1, 1, 1]]) == 2 * block)
        // Nothing outside the blocks: no patch embedding, caption projection or final layer.
        #expect(s.fixedFLOPsPerCall == 0)
    }

    /// A ToCa step: self-attention reused (not counted), cross-attention on its 2 fresh rows per sample
    /// (the whole caption still projected, the output projection on B·N0 rows), MLP on its 1 fresh row.
    @Test func toCaPartialStepTermByTerm() {
        let c = Self.cross(rows: 2)
        #expect([c.q, c.kv, c.scale, c.one, c.qk, c.softmax, c.av, c.out] == [512, 1536, 32, 48, 384, 240, 384, 1024])
        let mlp = Self.mlpUp / 4 + Self.mlpDown / 4 + Self.gelu / 4      // 1 of N = 4 rows
        let expected = Self.layerNorms + Self.adaLN + Self.sum(c) + mlp
        #expect(expected == 7504)
        let s = Self.tiny()
        #expect(s.pixArtCounterBlockFLOPs(batch: 2, fractions: [0, 0.5, 0.25], skipped: false) == expected)
        // A ToCa step whose cross-attention got 0 fresh rows (our schedules write "reuse"): their code
        // runs it on 0 rows, so the caption K/V alone is counted.
        #expect(s.pixArtCounterBlockFLOPs(batch: 2, fractions: [0, 0, 0.25], skipped: false)
                == Self.layerNorms + Self.adaLN + Self.cross(rows: 0).kv + mlp)
        #expect(Self.sum(Self.cross(rows: 0)) == Self.cross(rows: 0).kv)
    }

    /// FORA (whole block reused): the adaLN term alone; a skipped block (DuCa aggressive): nothing.
    @Test func foraAndSkippedBlocks() {
        let s = Self.tiny()
        #expect(s.pixArtCounterBlockFLOPs(batch: 2, fractions: [0, 0, 0], skipped: false) == Self.adaLN)
        #expect(s.pixArtCounterBlockFLOPs(batch: 2, fractions: [0, 0, 0], skipped: true) == 0)
        let full = s.pixArtCounterBlockFLOPs(batch: 2, fractions: [1, 1, 1], skipped: false)
        // One call: block 0 computed, block 1 reused (FORA) or skipped.
        #expect(s.callFLOPs(batch: 2, fractions: [[1, 1, 1], [0, 0, 0]]) == full + Self.adaLN)
        #expect(s.callFLOPs(batch: 2, fractions: [[1, 1, 1], [0, 0, 0]], skipped: [false, true]) == full)
        #expect(s.runFLOPs(callBatches: [2, 2], fractions: [[[1, 1, 1], [1, 1, 1]], [[0, 0, 0], [0, 0, 0]]],
                           skippedBlocks: [[false, false], [true, false]]) == 2 * full + Self.adaLN)
    }

    /// The batch enters the cross-attention squared: its scores (B·N × B·L, the batch flattened) and its
    /// output projection (B·N0 = B²·N rows). A per-sample sum would be linear in B.
    @Test func batchEntersSquaredInTheCrossAttention() {
        let s = Self.tiny()
        let cross = { (b: Int) in s.pixArtCounterBlockFLOPs(batch: b, fractions: [0, 1, 0], skipped: false) }
        let superlinear = cross(2) - 2 * cross(1)
        // Scores at B = 2 over 8 × 6 rows against twice 4 × 3: H·(48 − 2·12)·(1 + 2h + 5 + 2h).
        let perScore: Double = 1 + 8 + 5 + 8
        let scores: Double = 2 * (48 - 24) * perScore
        // Output projection on B·N0 = 2·8 = 16 rows against twice 1·4 rows: (16 − 8)·C·C·2.
        let projectionQuirk: Double = (16 - 8) * 8 * 8 * 2
        #expect(projectionQuirk == 1024)
        #expect(superlinear == scores + projectionQuirk)
        // Self-attention and MLP stay per sample (linear in B).
        let attentionAndMLP = { (b: Int) in
            s.pixArtCounterBlockFLOPs(batch: b, fractions: [1, 0, 1], skipped: false)
        }
        #expect(attentionAndMLP(2) == 2 * attentionAndMLP(1))
    }

    /// `--caption-tokens` moves only the caption terms: the cross-attention's K/V and its scores.
    @Test func captionTokensChangeOnlyTheCaptionTerms() throws {
        let short = Self.tiny(captionTokens: 3), long = Self.tiny(captionTokens: 5)
        let kv = Self.cross(rows: 4, captionTokens: 5).kv - Self.cross(rows: 4).kv
        #expect(kv == 4 * 8 * 8 * 4)          // ΔN1 = B·2 = 4 rows of K and V
        let perScore: Double = 1 + 8 + 5 + 8
        let scores: Double = 2 * 8 * 4 * perScore
        #expect(long.callFLOPs(batch: 2) - short.callFLOPs(batch: 2) == 2 * (kv + scores))
        for f in [[1.0, 0, 1], [0, 0, 0]] {      // no cross-attention: unchanged
            #expect(long.pixArtCounterBlockFLOPs(batch: 2, fractions: f, skipped: false)
                    == short.pixArtCounterBlockFLOPs(batch: 2, fractions: f, skipped: false))
        }
        // On the preset: 28 blocks, B = 2, N0 = 512, h = 72; 120 → 16 tokens is ΔN1 = 208 caption rows.
        let preset = try #require(DiffusionPresets.named("pixart-alpha-256"))
        var a = try preset.shape(captionTokens: 120), b = try preset.shape(captionTokens: 16)
        a.convention = .tocaCode
        b.convention = .tocaCode
        let d = 1152.0
        let presetPerScore: Double = 1 + 144 + 5 + 144
        let kvRows: Double = 208 * d * d * 4
        let perBlock: Double = kvRows + 16 * 512 * 208 * presetPerScore
        #expect(abs((a.callFLOPs(batch: 2) - b.callFLOPs(batch: 2)) - 28 * perBlock) < 1)
        #expect(try preset.shape(captionTokens: nil).captionTokens == 120)
    }

    @Test func captionTokensAreValidated() throws {
        let pixart = try #require(DiffusionPresets.named("pixart-alpha-512"))
        #expect(try pixart.shape(captionTokens: 1).captionTokens == 1)
        #expect(try pixart.shape(captionTokens: 120).captionTokens == 120)
        #expect(throws: FlopsError.self) { try pixart.shape(captionTokens: 0) }
        #expect(throws: FlopsError.self) { try pixart.shape(captionTokens: 121) }
        let dit = try #require(DiffusionPresets.named("dit-xl-2-256"))
        #expect(throws: FlopsError.self) { try dit.shape(captionTokens: 16) }
    }

    static func run(_ preset: String, convention: DiffusionFlopsShape.Convention, schedule: CacheSchedule, fresh: [[[Int]]]?,
                    skips: Bool = true) throws -> Double {
        let p = try #require(DiffusionPresets.named(preset))
        var shape = p.shape
        shape.convention = convention
        let adapted = try DiffusionFlopsRequest.adapt(schedule, to: shape.moduleNames)
        let r = DiffusionFlopsRequest(model: preset, shape: shape, steps: schedule.steps, guidance: p.defaultGuidance,
                                      fractions: try DiffusionFlopsRequest.fractions(schedule: adapted, freshTokens: fresh, tokens: shape.tokens),
                                      skippedBlocks: skips ? DiffusionFlopsRequest.skippedBlocks(adapted) : nil)
        return try DiffusionFlopsReport.count(r).total
    }

    /// FORA N = 3 through ToCa's PixArt schedule at r0 = 0: 7 full calls; every block of the other 13
    /// costs its adaLN term B·C + 6·B·C².
    @Test func presetFORAIsFullCallsPlusAdaLN() throws {
        var p = ToCa.Parameters.pixart
        p.freshRatio = 0
        let schedule = try ToCa.schedule(p).cacheSchedule
        var shape = try #require(DiffusionPresets.named("pixart-alpha-256")).shape
        shape.convention = .tocaCode
        let d = 1152.0
        let expected = 7 * shape.callFLOPs(batch: 2) + 13 * 28 * (2 * d + 6 * 2 * d * d)
        #expect(abs(try Self.run("pixart-alpha-256", convention: .tocaCode, schedule: schedule, fresh: nil) - expected) < 1)
    }

    /// DuCa's aggressive steps skip whole blocks: 0 in the authors' counter, where a reused block would
    /// still cost its adaLN term. The design convention and DiT's counter do not tell the two apart.
    @Test func duCaSkippedBlocksCostNothing() throws {
        let s = try DuCa.schedule(.pixart)
        let skipped = DiffusionFlopsRequest.skippedBlocks(s.cacheSchedule).joined().filter { $0 }.count
        #expect(skipped > 0)
        let fresh = DiffusionFlopsRequest.freshTokens(s)
        let with = try Self.run("pixart-alpha-256", convention: .tocaCode, schedule: s.cacheSchedule, fresh: fresh)
        let without = try Self.run("pixart-alpha-256", convention: .tocaCode, schedule: s.cacheSchedule, fresh: fresh, skips: false)
        let d = 1152.0
        #expect(abs((without - with) - Double(skipped) * (2 * d + 6 * 2 * d * d)) < 1)
        #expect(try Self.run("pixart-alpha-256", convention: .design, schedule: s.cacheSchedule, fresh: fresh)
                == (try Self.run("pixart-alpha-256", convention: .design, schedule: s.cacheSchedule, fresh: fresh, skips: false)))
        let ds = try DuCa.schedule(DuCa.Parameters())
        let dfresh = DiffusionFlopsRequest.freshTokens(ds)
        #expect(try Self.run("dit-xl-2-256", convention: .tocaCode, schedule: ds.cacheSchedule, fresh: dfresh)
                == (try Self.run("dit-xl-2-256", convention: .tocaCode, schedule: ds.cacheSchedule, fresh: dfresh, skips: false)))
    }

    /// The design convention and DiT's counter are untouched: the per-sample module sums, unchanged totals.
    @Test func designAndDiTUnchanged() throws {
        var design = Self.tiny()
        design.convention = .design
        #expect(design.callFLOPs(batch: 2) == 2 * (design.fixedFLOPsPerCall + 2 * (0..<3).reduce(0.0) { $0 + design.moduleFLOPs($1, fraction: 1) }))
        #expect(design.fixedFLOPsPerCall > 0)
        let p = try #require(DiffusionPresets.named("pixart-alpha-256"))
        #expect(String(format: "%.2f", 40 * p.shape.callFLOPs(batch: 1) / 1e12) == "11.92")
        var dit = try #require(DiffusionPresets.named("dit-xl-2-256")).shape
        dit.convention = .tocaCode
        #expect(String(format: "%.2f", 100 * dit.callFLOPs(batch: 1) / 1e12) == "23.74")
    }
}
