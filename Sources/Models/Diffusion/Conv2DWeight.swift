import Foundation
import Tensors

/// A `[out, in, k, k]` convolution whose weight stays in the store until it runs (diffusers' `nn.Conv2d`).
struct Conv2DWeight: Sendable {
    let weight: String
    let bias: String?
    let outChannels: Int
    let inChannels: Int
    let geometry: Convolution.Geometry

    /// Checks that the weight (and the bias) exist with the shapes the config implies.
    init(store: WeightStore, prefix: String, out: Int, in inChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0,
         bias: Bool = true) throws {
        weight = prefix + ".weight"
        let info = try store.info(weight)
        guard info.shape == [out, inChannels, kernel, kernel] else {
            throw ModelError("\(store.location): '\(weight)' has shape \(info.shape), the config implies [\(out), \(inChannels), \(kernel), \(kernel)]")
        }
        if bias {
            let b = prefix + ".bias"
            guard try store.info(b).shape == [out] else {
                throw ModelError("\(store.location): '\(b)' has shape \(try store.info(b).shape), expected [\(out)]")
            }
            self.bias = b
        } else {
            self.bias = nil
        }
        outChannels = out
        self.inChannels = inChannels
        geometry = Convolution.Geometry(kernel: kernel, stride: stride, padding: padding)
    }

    /// `[in, H, W]` → `[out, H', W']`.
    func callAsFunction(_ x: Tensor, store: WeightStore) throws -> Tensor {
        guard x.rank == 3, x.shape[0] == inChannels else {
            throw ModelError("conv '\(weight)': input \(x.shape), expected [\(inChannels), H, W]")
        }
        let b = try bias.map { try store.tensor($0, alwaysCache: true) }
        return try store.withFloats(weight) { w in
            try Convolution.conv2d(x, weight: w, outChannels: outChannels, bias: b, geometry: geometry)
        }
    }
}

extension WeightStore {
    /// A small vector or matrix (norm weights, biases, tables) as Float32, cached, with its shape checked.
    func vector(_ name: String, count: Int) throws -> Tensor {
        let t = try tensor(name, alwaysCache: true)
        guard t.count == count else { throw ModelError("\(location): '\(name)' has shape \(t.shape), expected \(count) values") }
        return t
    }
}
