import Testing
@testable import TokenCompression
import Tensors
import TestSupport

private func fastVIDInputs(seed: UInt64, frames: Int = 6, tokens: Int = 25, width: Int = 8) -> (Tensor, Tensor, Tensor) {
    var g = TestRandom(seed)
    return (g.tensor([frames * tokens, width]), g.tensor([frames, tokens]), g.tensor([frames, 5]))
}

@Suite struct FastVIDTests {
    let parameters = FastVID.Parameters(retentionRatio: 0.4, segmentCount: 3, segmentThreshold: 0.5, contextShare: 0.4,
                                        anchorStride: 2, anchorWeight: 0.6)

    @Test func keptIsTheAscendingUnionOfSalientAndAnchors() throws {
        for seed in UInt64(1)...4 {
            let (x, a, g) = fastVIDInputs(seed: seed)
            let r = try FastVID.compress(videoTokens: x, frames: 6, salience: a, globalFeatures: g, parameters: parameters)
            #expect(r.compression.kept == Array(Set(r.salient + r.context)).sorted())
            #expect(r.segmentSizes.reduce(0, +) == 6)
            #expect(r.salient.count == 6 * (10 - 4))
            #expect(r.context.count == r.frameContextCounts.reduce(0, +))
            #expect(r.tokens.rows == r.compression.kept.count)
            #expect(r.compression.positionPolicy == .keepOriginal)
        }
    }

    @Test func salientRowsAreCopiedAndAnchorsUseTheBetaMix() throws {
        let (x, a, g) = fastVIDInputs(seed: 7)
        let r = try FastVID.compress(videoTokens: x, frames: 6, salience: a, globalFeatures: g, parameters: parameters)
        for (i, index) in r.compression.kept.enumerated() where r.salient.contains(index) {
            #expect(r.tokens.row(i) == x.row(index))
        }
        for token in r.compression.merged {
            let anchor = r.compression.kept[token.outputIndex]
            #expect(token.sources.contains(anchor), "an anchor is in its own merge pool")
            let w: Float = 0.6
            for c in 0..<8 {
                let mean = token.sources.reduce(Float(0)) { $0 + x[$1, c] } / Float(token.sources.count)
                #expect(abs(r.tokens[token.outputIndex, c] - (w * x[anchor, c] + (1 - w) * mean)) < 1e-4)
            }
        }
    }

    @Test func deterministicForAFixedSeed() throws {
        let (x, a, g) = fastVIDInputs(seed: 3)
        let r1 = try FastVID.compress(videoTokens: x, frames: 6, salience: a, globalFeatures: g, parameters: parameters)
        let r2 = try FastVID.compress(videoTokens: x, frames: 6, salience: a, globalFeatures: g, parameters: parameters)
        #expect(r1.compression.kept == r2.compression.kept)
        #expect(r1.tokens.values == r2.tokens.values)
    }

    @Test func keepingEverythingIsAnExplicitNoOp() throws {
        let (x, a, g) = fastVIDInputs(seed: 5)
        let r = try FastVID.compress(videoTokens: x, frames: 6, salience: a, globalFeatures: g,
                                     parameters: FastVID.Parameters(retentionRatio: 1, segmentCount: 2, contextShare: 0))
        #expect(r.compression.noOpReason != nil)
        #expect(r.compression.kept.count == 150)
    }

    @Test func badParametersAndShapesThrow() throws {
        let (x, a, g) = fastVIDInputs(seed: 9)
        #expect(throws: CompressionError.self) {
            try FastVID.compress(videoTokens: x, frames: 6, salience: a, globalFeatures: g, parameters: FastVID.Parameters(retentionRatio: 0))
        }
        #expect(throws: CompressionError.self) {  // c − 1 > F − 1 transitions
            try FastVID.compress(videoTokens: x, frames: 6, salience: a, globalFeatures: g, parameters: FastVID.Parameters(segmentCount: 8))
        }
        #expect(throws: CompressionError.self) {
            try FastVID.compress(videoTokens: x, frames: 7, salience: a, globalFeatures: g, parameters: parameters)
        }
    }
}
