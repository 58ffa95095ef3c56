import Tensors

/// Where vision-side compression (FasterVLM, HiRED, PruMerge(+), VisionZip, GlobalCom², FiCoCo-V,
/// pooling) plugs into a LLaVA model: on the selected vision features of each image, before
/// the projector.
///
/// The tower records what `captureRequest` declares (attention rows, q/k/v of chosen layers) and
/// nothing else. The hook is called once per image with every tile (one for LLaVA-1.5; the base
/// thumbnail first, then the AnyRes tiles in row-major order for NeXT) and returns, per tile, the
/// rows to project: a selection or merged rows, each tagged with the patch index it stands at.
/// For NeXT those indices place rows in the unpadded grid; a row of the grid keeps its
/// `image_newline` only if at least one of its patches survived.
public protocol VisionFeatureHook: AnyObject {
    var captureRequest: VisionCaptureRequest { get }
    /// Kept features per tile (same count and order as `image.tiles`), or nil to keep everything.
    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]?
}

/// The vision features of one tile, as the projector would receive them.
public struct VisionTileFeatures: @unchecked Sendable {
    /// 0 = the only tile (LLaVA-1.5) or the base thumbnail (NeXT); then AnyRes tiles row-major.
    public var tile: Int
    /// Selected feature layer(s), after the strategy: `[rows, visionHidden × layers]`.
    public var features: Tensor
    /// Whether a [CLS] row was dropped by the 'default' strategy: then feature row `i` is token
    /// `i + 1` of the tower and of the captured attention.
    public var classTokenDropped: Bool
    /// Patches down and across the tile.
    public var patchGrid: (rows: Int, cols: Int)
    /// Signals recorded per encoder layer (see `VisionCaptureRequest`).
    public var captures: [Int: VisionLayerCapture]
}

/// All tiles of one image.
public struct VisionImageFeatures: @unchecked Sendable {
    public var imageIndex: Int
    public var tiles: [VisionTileFeatures]
    /// NeXT: tiles down and across (thumbnail excluded) and the original image size.
    public var tileGrid: (rows: Int, cols: Int)?
    public var imageSize: (height: Int, width: Int)?
}

/// Rows a vision hook keeps for one tile.
public struct KeptFeatures: @unchecked Sendable {
    /// `[kept, featureWidth]` (selected or merged rows).
    public var rows: Tensor
    /// Feature-row index (patch index when the [CLS] row was dropped) each kept row stands at.
    public var sourceIndices: [Int]

    public init(rows: Tensor, sourceIndices: [Int]) throws {
        guard rows.rows == sourceIndices.count else {
            throw ModelError("KeptFeatures: \(rows.rows) rows but \(sourceIndices.count) source indices")
        }
        self.rows = rows
        self.sourceIndices = sourceIndices
    }

    /// A plain selection of feature rows.
    public static func selecting(_ indices: [Int], of tile: VisionTileFeatures) throws -> KeptFeatures {
        try KeptFeatures(rows: try tile.features.gatherRows(indices), sourceIndices: indices)
    }
}
