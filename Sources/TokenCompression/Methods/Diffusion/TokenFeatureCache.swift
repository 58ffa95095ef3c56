import Tensors

/// What a token-wise caching policy (ToCa, DuCa) does in one block at one step.
///
/// The integer codes are those of the conformance cases (`types` tensors).
public enum TokenCacheStepKind: Int, Sendable, Equatable, CustomStringConvertible {
    /// Every token of every module is recomputed; caches, maps and ages are overwritten.
    case full = 0
    /// Attention is reused; the partial modules recompute only their fresh tokens (ToCa step,
    /// DuCa "conservative" step).
    case partial = 1
    /// The block does nothing (DuCa "aggressive" step).
    case aggressive = 2

    public var description: String {
        switch self {
        case .full: return "full"
        case .partial: return "partial"
        case .aggressive: return "aggressive"
        }
    }
}

/// Stored features of a feature-caching policy: one slot per (layer, module), one `[tokens, width]`
/// tensor per batch row, with a per-token age (steps since the token was last recomputed).
///
/// The cache is the *state* half of a caching method; the method's criterion reads ages and stored
/// maps, its strategy writes whole slots (full steps) or single rows (partial steps). It never hands
/// out a slot that was never filled: reading one throws, because silently reusing zeros would look
/// like a working cache while computing garbage.
public struct TokenFeatureCache: Sendable {
    /// Where a feature lives: a block index and a module name (`"attn"`, `"mlp"`, `"cross-attn"`,
    /// or a stored signal such as `"attn_map"`).
    public struct Slot: Hashable, Sendable, CustomStringConvertible {
        public let layer: Int
        public let module: String
        public init(layer: Int, module: String) {
            self.layer = layer
            self.module = module
        }
        public var description: String { "(layer \(layer), \(module))" }
    }

    private var features: [Slot: [Tensor]] = [:]
    private var ages: [Slot: [[Int]]] = [:]

    /// Whole-slot writes (full steps).
    public private(set) var fullWrites = 0
    /// Row writes (partial steps), counted in rows.
    public private(set) var refreshedRows = 0
    /// Reads of stored features.
    public private(set) var reads = 0

    public init() {}

    /// True when `slot` holds features.
    public func isFilled(_ slot: Slot) -> Bool { features[slot] != nil }

    /// Filled slots, for reports.
    public var filledSlots: [Slot] {
        features.keys.sorted { ($0.layer, $0.module) < ($1.layer, $1.module) }
    }

    /// Full write: stores one tensor per batch row and resets every token's age to 0.
    public mutating func store(_ rows: [Tensor], at slot: Slot) throws {
        guard let first = rows.first else {
            throw CompressionError.invalidParameter("cache store at \(slot): no batch rows")
        }
        guard rows.allSatisfy({ $0.shape == first.shape }) else {
            throw CompressionError.shapeMismatch("cache store at \(slot): batch rows have shapes \(rows.map(\.shape))")
        }
        features[slot] = rows
        ages[slot] = Array(repeating: Array(repeating: 0, count: first.rank >= 2 ? first.rows : first.count), count: rows.count)
        fullWrites += 1
    }

    /// The stored rows of `slot`; throws when the slot was never filled.
    public mutating func read(_ slot: Slot) throws -> [Tensor] {
        let rows = try peek(slot)
        reads += 1
        return rows
    }

    /// Like `read` without counting (for criteria that only look at a stored map).
    public func peek(_ slot: Slot) throws -> [Tensor] {
        guard let rows = features[slot] else {
            throw CompressionError.missingSignal("cache slot \(slot) was never filled (a full step must run first)")
        }
        return rows
    }

    /// Per-row, per-token ages of `slot`; throws when none were set.
    public func ages(_ slot: Slot) throws -> [[Int]] {
        guard let a = ages[slot] else {
            throw CompressionError.missingSignal("cache slot \(slot) has no token ages (a full step must run first)")
        }
        return a
    }

    /// Sets the ages of `slot` to a given state (restoring a saved cache, or tests). Ages may
    /// exist before features: the reference resets counters at full steps of modules whose output
    /// it keeps elsewhere.
    public mutating func restoreAges(_ newAges: [[Int]], at slot: Slot) throws {
        guard let n = newAges.first?.count, newAges.allSatisfy({ $0.count == n }) else {
            throw CompressionError.shapeMismatch("ages at \(slot): rows must be non-empty and of equal length")
        }
        if let a = ages[slot], a.count != newAges.count || a[0].count != n {
            throw CompressionError.shapeMismatch("ages at \(slot): \(newAges.count)×\(n), stored \(a.count)×\(a[0].count)")
        }
        if newAges.contains(where: { $0.contains { $0 < 0 } }) {
            throw CompressionError.invalidParameter("ages at \(slot) must be ≥ 0")
        }
        ages[slot] = newAges
    }

    /// One partial step: every token gets one step older, then `refreshed[b]` tokens become fresh
    /// (age 0). Returns the new ages.
    @discardableResult
    public mutating func advanceAges(of slot: Slot, refreshed: [[Int]]) throws -> [[Int]] {
        var a = try ages(slot)
        guard refreshed.count == a.count else {
            throw CompressionError.shapeMismatch("ages at \(slot): \(refreshed.count) index rows for \(a.count) batch rows")
        }
        for b in a.indices {
            for i in a[b].indices { a[b][i] += 1 }
            for i in refreshed[b] {
                guard a[b].indices.contains(i) else {
                    throw CompressionError.invalidParameter("fresh index \(i) out of range 0..<\(a[b].count) at \(slot)")
                }
                a[b][i] = 0
            }
        }
        ages[slot] = a
        return a
    }

    /// Partial write: `rows[b]` (one row per index) replace the stored rows at `indices[b]`.
    /// Throws when the slot was never filled: a partial refresh needs a full cache to refresh.
    public mutating func scatter(_ rows: [Tensor], at indices: [[Int]], into slot: Slot) throws {
        var stored = try peek(slot)
        guard rows.count == stored.count, indices.count == stored.count else {
            throw CompressionError.shapeMismatch("scatter into \(slot): \(rows.count) row sets, \(indices.count) index sets, \(stored.count) batch rows")
        }
        for b in stored.indices {
            do { stored[b] = try stored[b].scatteringRows(rows[b], at: indices[b]) } catch {
                throw CompressionError.shapeMismatch("scatter into \(slot), batch row \(b): \(error)")
            }
            refreshedRows += indices[b].count
        }
        features[slot] = stored
    }
}
