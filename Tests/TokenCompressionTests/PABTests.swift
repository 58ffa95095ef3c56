import Testing
@testable import TokenCompression
import Tensors
import TestSupport

@Suite struct PABTests {
    static let ddim50 = Array(stride(from: 980, through: 0, by: -20))

    @Test func firstCallComputesEverything() throws {
        for p in [try PAB.Parameters.openSora(), try .latte(), try .cogVideoX()] {
            for start in [999, 700, 500] {
                let ts = Array(stride(from: start, through: 0, by: -25))
                let s = try PAB.schedule(timesteps: ts, layers: 6, parameters: p)
                #expect(s.actions[0].allSatisfy { $0.allSatisfy { $0 == .compute } })
            }
        }
    }

    @Test func windowIsStrictAndCounterDecides() throws {
        let p = try PAB.Parameters.latte()
        #expect(!PAB.broadcasts(.spatial, timestep: 800, count: 1, parameters: p))
        #expect(!PAB.broadcasts(.spatial, timestep: 100, count: 1, parameters: p))
        #expect(PAB.broadcasts(.spatial, timestep: 799, count: 1, parameters: p))
        #expect(!PAB.broadcasts(.spatial, timestep: 500, count: 4, parameters: p))
        #expect(PAB.broadcasts(.cross, timestep: 500, count: 5, parameters: p))
        #expect(!PAB.broadcasts(.cross, timestep: 500, count: 6, parameters: p))
        #expect(!PAB.broadcasts(.temporal, timestep: 500, count: 5, parameters: try .cogVideoX()))
    }

    @Test func mlpRuleStopsAtFirstMatchingRange() throws {
        let ts = [10, 9, 8, 7, 6, 5]
        let a = PAB.MLPRule(timestep: 9, blocks: [0], skipCount: 2)
        let b = PAB.MLPRule(timestep: 10, blocks: [1], skipCount: 3)
        let first = try PAB.Parameters(mlpBroadcast: true, mlpSpatial: [a, b], mlpTemporal: [])
        let second = try PAB.Parameters(mlpBroadcast: true, mlpSpatial: [b, a], mlpTemporal: [])
        #expect(try PAB.mlpDecision(timestep: 8, block: 1, temporal: false, allTimesteps: ts, parameters: first) == .compute)
        #expect(try PAB.mlpDecision(timestep: 8, block: 1, temporal: false, allTimesteps: ts, parameters: second) == .reuse(key: 10, lastTimestep: 7))
        #expect(try PAB.mlpDecision(timestep: 9, block: 0, temporal: false, allTimesteps: ts, parameters: second) == .computeAndStore)
    }

    @Test func mlpBroadcastNeedsAllTimesteps() throws {
        #expect(throws: CompressionError.self) {
            try PAB.mlpDecision(timestep: 676, block: 0, temporal: false, allTimesteps: nil, parameters: try .openSora())
        }
        #expect(try PAB.mlpDecision(timestep: 676, block: 0, temporal: false, allTimesteps: nil, parameters: try .cogVideoX()) == .compute)
    }

    @Test func reuseReturnsTheOldGatedOutput() throws {
        var rng = TestRandom(9)
        let p = try PAB.Parameters.latte()
        var block = try PAB.BlockCache(block: 0, temporal: false, steps: 50)
        var firstTerm: Tensor?
        for (k, t) in [780, 760].enumerated() {
            let raw = rng.tensor([4, 3]), gate = rng.tensor([3])
            let s = try block.forward(rng.tensor([4, 3]), timestep: t, allTimesteps: Self.ddim50, gateMSA: gate, gateMLP: gate,
                                      parameters: p, attention: { _ in raw }, crossAttention: { _ in raw }, mlp: { _ in raw })
            if k == 0 {
                #expect(s.attentionComputed)
                firstTerm = s.attentionTerm
            } else {
                #expect(!s.attentionComputed)
                #expect(s.attentionTerm.values == firstTerm!.values)
            }
        }
    }

    @Test func deterministicAndSaving() throws {
        let p = try PAB.Parameters.latte()
        let a = try PAB.schedule(timesteps: Self.ddim50, layers: 8, parameters: p)
        #expect(a == (try PAB.schedule(timesteps: Self.ddim50, layers: 8, parameters: p)))
        #expect(a.computedFraction < 0.8 && a.computedFraction > 0.2)
    }

    @Test func badParametersThrow() throws {
        #expect(throws: CompressionError.self) { try PAB.Parameters(spatial: PAB.Broadcast(lower: 0, upper: 10, range: 0)) }
        #expect(throws: CompressionError.self) {
            try PAB.Parameters(mlpSpatial: [PAB.MLPRule(timestep: 5, blocks: [0], skipCount: -1)])
        }
        #expect(throws: CompressionError.self) { try PAB.schedule(timesteps: [], layers: 2, parameters: try .latte()) }
        // A key whose range runs past the end of the list: IndexError in the reference.
        #expect(throws: CompressionError.self) {
            try PAB.mlpDecision(timestep: 1, block: 0, temporal: false, allTimesteps: [3, 2, 1],
                                parameters: try PAB.Parameters(mlpSpatial: [PAB.MLPRule(timestep: 2, blocks: [0], skipCount: 2)]))
        }
    }

    /// An image model's block is a VideoSys spatial block: its columns are the spatial ones of the
    /// video schedule (attention, cross-attention, MLP), with or without the cross column.
    @Test func imageScheduleIsTheSpatialHalfOfTheVideoSchedule() throws {
        let ts = Array(stride(from: 980, through: 0, by: -20))
        for p in [try PAB.Parameters.openSora(), try .latte(), try .cogVideoX()] {
            let video = try PAB.schedule(timesteps: ts, layers: 5, parameters: p)
            let pixart = try PAB.imageSchedule(timesteps: ts, layers: 5, crossAttention: true, parameters: p)
            let dit = try PAB.imageSchedule(timesteps: ts, layers: 5, crossAttention: false, parameters: p)
            #expect(pixart.moduleNames == ["attn", "cross-attn", "mlp"] && dit.moduleNames == ["attn", "mlp"])
            #expect(pixart.actions == video.actions.map { $0.map { Array($0[0..<3]) } })
            #expect(dit.actions == video.actions.map { $0.map { [$0[0], $0[2]] } })
        }
        // Latte's MLP rule (keys 720…400 on the DDIM-50 grid) really reuses, so the MLP column is exercised.
        let latte = try PAB.imageSchedule(timesteps: ts, layers: 5, crossAttention: false, parameters: try .latte())
        #expect(latte.actions.contains { $0[0][1] == .reuse })
        #expect(throws: CompressionError.self) { try PAB.imageSchedule(timesteps: [], layers: 1, crossAttention: false, parameters: try .latte()) }
    }
}
