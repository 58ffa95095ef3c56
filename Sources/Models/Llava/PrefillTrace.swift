/// What one prefill did to the token counts, as the model measured it — not what a method says.
///
/// The fair-comparison harness computes FLOPs from these typed counts (`BenchFlops`), and the run
/// report shows them; methods' notes are for people only. Every count is of rows the model really
/// computed on.
public struct PrefillTrace: Sendable, Equatable {
    /// Rows entering each encoder layer of the vision tower, one list per tile of each image (in
    /// order), `towerLayers` entries each: layers after the last one the pass needed repeat its
    /// count (the tower stops early when nothing reads later layers).
    public var towerRowsPerTile: [[Int]]
    /// Feature rows the projector mapped (all images and tiles; fewer after a vision-side method).
    public var projectedRows: Int
    /// Rows entering each decoder layer.
    public var decoderRowsPerLayer: [Int]
    /// Visual rows entering each decoder layer: the image's rows and the rows a method inserted
    /// (merged or recycled tokens).
    public var decoderVisualRowsPerLayer: [Int]
    /// Inserted rows among those that reached the last decoder layer.
    public var insertedRows: Int
    /// Whether the image rows the decoder kept sit at renumbered, contiguous positions: a
    /// vision-side reduction splices fewer rows into the prompt, and a decoder-side prune may
    /// renumber (PDrop, SparseVLM, MustDrop). False when nothing was dropped or the kept rows kept
    /// their original positions (FastV, DART).
    public var positionsRenumbered: Bool

    public init(towerRowsPerTile: [[Int]], towerLayers: Int, projectedRows: Int, decoderRowsPerLayer: [Int],
                decoderVisualRowsPerLayer: [Int], insertedRows: Int, positionsRenumbered: Bool) {
        self.towerRowsPerTile = towerRowsPerTile.map { rows in
            guard let last = rows.last, rows.count < towerLayers else { return rows }
            return rows + Array(repeating: last, count: towerLayers - rows.count)
        }
        self.projectedRows = projectedRows
        self.decoderRowsPerLayer = decoderRowsPerLayer
        self.decoderVisualRowsPerLayer = decoderVisualRowsPerLayer
        self.insertedRows = insertedRows
        self.positionsRenumbered = positionsRenumbered
    }

    /// Rows entering each encoder layer averaged over the tiles (one pass's schedule), nil when
    /// no tile lost a row inside the tower.
    public var towerRowsPerPass: [Int]? {
        guard let first = towerRowsPerTile.first, !first.isEmpty,
              towerRowsPerTile.contains(where: { rows in rows.contains { $0 != rows[0] } }) else { return nil }
        return first.indices.map { l in
            let total = towerRowsPerTile.reduce(0) { $0 + ($1.count > l ? $1[l] : 0) }
            return Int((Double(total) / Double(towerRowsPerTile.count)).rounded())
        }
    }
}
