import Foundation

/// Small, exact building blocks that criteria and strategies share.
public enum Selection {
    /// Indices of the `k` largest scores, in descending score order; ties go to the lower index
    /// (a stable order, as `torch.topk` usually gives on CPU for the small sizes in the cases).
    public static func topK<S: BinaryFloatingPoint>(_ scores: [S], _ k: Int, largest: Bool = true) -> [Int] {
        let k = max(0, min(k, scores.count))
        let order = scores.indices.sorted { a, b in
            let x = scores[a], y = scores[b]
            if x != y { return largest ? x > y : x < y }
            return a < b
        }
        return Array(order.prefix(k))
    }

    /// Indices sorting `scores` (stable); `descending` puts the largest first.
    public static func argsort<S: BinaryFloatingPoint>(_ scores: [S], descending: Bool = false) -> [Int] {
        scores.indices.sorted { a, b in
            let x = scores[a], y = scores[b]
            if x != y { return descending ? x > y : x < y }
            return a < b
        }
    }

    /// Python's `round` for doubles: half to even.
    public static func roundHalfEven(_ x: Double) -> Int { Int(x.rounded(.toNearestOrEven)) }
}
