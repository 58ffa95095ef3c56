import Testing
import Tensors
@testable import Models

@Suite struct VisionTowerTests {
    @Test(arguments: ["clip-vision", "siglip-vision"])
    func hiddenStatesMatchTransformers(_ name: String) throws {
        let tower = try VisionTower.load(folder: modelsFixture(name))
        let ref = try ModelsReference(name)
        let pixels = try ref.tensor("pixel_values")
        let out = try tower.forward(try pixels.reshaped(Array(pixels.shape.dropFirst())))
        for i in 0...tower.config.layers {
            let d = modelsMaxAbs(out.hiddenStates[i]!, try ref.tensor("hidden_\(i)"))
            #expect(d < 1e-4, "hidden_states[\(i)] differs by \(d)")
        }
        let d = modelsMaxAbs(try #require(out.lastHiddenState), try ref.tensor("last_hidden_state"))
        #expect(d < 1e-4, "last_hidden_state differs by \(d)")
    }

    @Test func capturesAttentionRowsAndStopsEarly() throws {
        let tower = try VisionTower.load(folder: modelsFixture("clip-vision"))
        let ref = try ModelsReference("clip-vision")
        let pixels = try ref.tensor("pixel_values").reshaped([3, 28, 28])
        let request = VisionCaptureRequest(attention: [0: .probabilities(rows: [0])], qkvLayers: [0])
        let out = try tower.forward(pixels, hiddenStates: [1], capture: request)
        #expect(out.lastHiddenState == nil)
        let cap = try #require(out.captures[0])
        let att = try #require(cap.attention)
        #expect(att.values.shape == [4, 1, 5])
        for h in 0..<4 {
            let s = (0..<5).reduce(Float(0)) { $0 + att.values[flat: h * 5 + $1] }
            #expect(abs(s - 1) < 1e-5)
        }
        #expect(cap.keys?.shape == [5, 32])
        #expect(modelsMaxAbs(out.hiddenStates[1]!, try ref.tensor("hidden_1")) < 1e-4)
    }

    @Test func rejectsWrongPixelShape() throws {
        let tower = try VisionTower.load(folder: modelsFixture("clip-vision"))
        #expect(throws: ModelError.self) { try tower.forward(Tensor(zeros: [3, 30, 30])) }
    }
}

extension VisionTowerTests {
    /// The in-tower merge step: returning nothing changes nothing; returning a permutation of the
    /// rows permutes the output the same way (attention, norms and MLP are row-permutation
    /// equivariant once positions are added); returning fewer rows shrinks every later layer.
    @Test func afterAttentionReplacesTheRowsLaterLayersRunOn() throws {
        let tower = try VisionTower.load(folder: modelsFixture("clip-vision"))
        let pixels = try ModelsReference("clip-vision").tensor("pixel_values").reshaped([3, 28, 28])
        let plain = try tower.forward(pixels)
        let last = tower.config.layers
        var seen: [Int] = []
        let untouched = try tower.forward(pixels, afterAttention: { layer, hidden, q, k in
            seen.append(layer)
            #expect(q.rows == hidden.rows && k.shape == q.shape)
            return nil
        })
        #expect(seen == Array(0..<last))
        #expect(untouched.hiddenStates[last]!.values == plain.hiddenStates[last]!.values)

        let permutation = [3, 0, 4, 1, 2]
        let permuted = try tower.forward(pixels, afterAttention: { layer, hidden, _, _ in
            layer == 0 ? try hidden.gatherRows(permutation) : nil
        })
        let expected = try plain.hiddenStates[last]!.gatherRows(permutation)
        #expect(modelsMaxAbs(permuted.hiddenStates[last]!, expected) < 1e-5)

        let shrunk = try tower.forward(pixels, afterAttention: { layer, hidden, _, _ in
            layer == 0 ? try hidden.gatherRows([0, 2]) : nil
        })
        #expect(shrunk.hiddenStates[1]!.rows == 2 && shrunk.hiddenStates[last]!.rows == 2)
        #expect(throws: ModelError.self) {
            try tower.forward(pixels, afterAttention: { _, _, _, _ in Tensor(zeros: [2, 3]) })
        }
    }
}
