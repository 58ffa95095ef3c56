import Foundation
import Tensors

/// Spatial pooling baseline: shrink the visual grid itself instead of choosing tokens.
///
/// Two strategies over the `rows × cols` raster of visual tokens (features `[rows·cols, d]`):
/// - `.average(window:)`: non-overlapping `w × w` average pooling; edge windows of a grid that
///   does not divide evenly average only the tokens they cover (`avg_pool2d` with
///   `ceil_mode=True`, no padding), so every input token lands in exactly one output token.
/// - `.bilinear(budget:)`: bilinear resampling to the largest grid `r' × c'` with
///   `r'·c' ≤ budget` that keeps the aspect ratio (`F.interpolate(mode="bilinear",
///   align_corners=False)` without antialiasing, as LLaVA-OneVision pools video frames).
/// It acts on the visual tokens handed to the LLM (before layer 0), so positions are assigned
/// afterwards; the output is a new, shorter token list (a merge, no attention needed).
public struct SpatialPooling: Sendable {
    public static let info = MethodInfo(
        name: "pooling", displayName: "Spatial pooling", domain: .imageVLM, families: [.merge], placement: .llmLayer(0),
        signals: [.hiddenStates, .tokenLayout], needsAttentionProbabilities: false,
        paper: "Baseline (grid pooling as in LLaVA-OneVision, arXiv 2408.03326)",
        repository: "LLaVA-VL/LLaVA-NeXT",
        summary: "2×2 average pooling or bilinear downsampling of the visual token grid to a budget")

    public enum Mode: Sendable, Equatable {
        case average(window: Int)
        case bilinear(budget: Budget)
    }

    public struct Parameters: Sendable, Equatable {
        public var mode: Mode = .average(window: 2)
        public init(mode: Mode = .average(window: 2)) { self.mode = mode }

        public func validate() throws {
            switch mode {
            case .average(let w):
                guard w >= 1 else { throw CompressionError.invalidParameter("pooling window \(w) must be ≥ 1") }
            case .bilinear(let budget):
                _ = try budget.tokens(outOf: 1)
            }
        }
    }

    public struct Result: Sendable {
        /// `[outRows·outCols, d]`, raster order.
        public var features: Tensor
        public var outRows: Int
        public var outCols: Int
        /// `kept` is empty (every output token is new) unless this is a no-op; `merged` lists the
        /// input tokens each output token is computed from.
        public var compression: CompressionResult
    }

    public var parameters: Parameters
    public init(_ parameters: Parameters = Parameters()) throws {
        try parameters.validate()
        self.parameters = parameters
    }

    /// Pools `features` (`[rows·cols, d]`, raster order).
    public func pool(_ features: Tensor, rows: Int, cols: Int) throws -> Result {
        guard rows >= 1, cols >= 1, features.rank == 2, features.rows == rows * cols else {
            throw CompressionError.shapeMismatch("pooling features \(features.shape) for a \(rows)×\(cols) grid")
        }
        let n = rows * cols
        switch parameters.mode {
        case .average(let w):
            if w == 1 || n == 1 {
                return noOp(features, rows: rows, cols: cols, requested: n, reason: "pooling window \(w) on a \(rows)×\(cols) grid removes nothing")
            }
            let outRows = (rows + w - 1) / w, outCols = (cols + w - 1) / w
            var weights: [[(Int, Double)]] = []
            for r in 0..<outRows {
                for c in 0..<outCols {
                    let members = (r * w..<min(rows, r * w + w)).flatMap { y in (c * w..<min(cols, c * w + w)).map { y * cols + $0 } }
                    weights.append(members.map { ($0, 1.0 / Double(members.count)) })
                }
            }
            return try combine(features, weights: weights, outRows: outRows, outCols: outCols, requested: outRows * outCols)
        case .bilinear(let budget):
            let requested: Int
            if case .count(let k) = budget { requested = k } else { requested = try budget.tokens(outOf: n) }
            if requested >= n {
                return noOp(features, rows: rows, cols: cols, requested: requested, reason: "pooling budget \(budget) keeps all \(n) visual tokens")
            }
            let (outRows, outCols) = Self.targetGrid(rows: rows, cols: cols, budget: requested)
            let ys = Self.bilinearTaps(input: rows, output: outRows)
            let xs = Self.bilinearTaps(input: cols, output: outCols)
            var weights: [[(Int, Double)]] = []
            for (y0, y1, ly) in ys {
                for (x0, x1, lx) in xs {
                    var taps: [Int: Double] = [:]
                    for (y, wy) in [(y0, 1 - ly), (y1, ly)] where wy > 0 {
                        for (x, wx) in [(x0, 1 - lx), (x1, lx)] where wx > 0 { taps[y * cols + x, default: 0] += wy * wx }
                    }
                    weights.append(taps.sorted { $0.key < $1.key }.map { ($0.key, $0.value) })
                }
            }
            return try combine(features, weights: weights, outRows: outRows, outCols: outCols, requested: requested)
        }
    }

    /// Largest aspect-preserving grid within `budget` tokens: `r' = ⌊rows·√(budget/(rows·cols))⌋`
    /// (at least 1), then `c' = min(cols, ⌊budget / r'⌋)`, so `r'·c' ≤ budget`.
    public static func targetGrid(rows: Int, cols: Int, budget: Int) -> (rows: Int, cols: Int) {
        let scale = (Double(max(budget, 1)) / Double(rows * cols)).squareRoot()
        let r = max(1, min(rows, Int((Double(rows) * scale).rounded(.down))))
        let c = max(1, min(cols, max(budget, 1) / r))
        return (r, c)
    }

    /// Source taps of bilinear resampling along one axis, as PyTorch (`align_corners=False`):
    /// `src = (dst + ½)·in/out − ½`, clamped at 0; neighbours `⌊src⌋` and the next one (clamped).
    static func bilinearTaps(input: Int, output: Int) -> [(Int, Int, Double)] {
        let scale = Double(input) / Double(output)
        return (0..<output).map { d in
            let src = max(0, (Double(d) + 0.5) * scale - 0.5)
            let i0 = min(Int(src), input - 1)
            let i1 = min(i0 + 1, input - 1)
            return (i0, i1, i1 == i0 ? 0 : src - Double(i0))
        }
    }

    private func combine(_ x: Tensor, weights: [[(Int, Double)]], outRows: Int, outCols: Int, requested: Int) throws -> Result {
        let d = x.columns
        var values = [Float](repeating: 0, count: weights.count * d)
        x.withUnsafeBufferPointer { src in
            for (o, taps) in weights.enumerated() {
                for c in 0..<d {
                    var sum = 0.0
                    for (i, w) in taps { sum += w * Double(src[i * d + c]) }
                    values[o * d + c] = Float(sum)
                }
            }
        }
        let merged = weights.enumerated().map { MergedToken(outputIndex: $0.offset, sources: $0.element.map(\.0)) }
        return Result(features: try Tensor(shape: [weights.count, d], values: values), outRows: outRows, outCols: outCols,
                      compression: CompressionResult(kept: [], requestedCount: requested, achievedCount: weights.count,
                                                     positionPolicy: .notApplicable, merged: merged))
    }

    private func noOp(_ x: Tensor, rows: Int, cols: Int, requested: Int, reason: String) -> Result {
        Result(features: x, outRows: rows, outCols: cols,
               compression: .noOp(tokenCount: rows * cols, requested: requested, policy: .notApplicable, reason: reason))
    }
}
