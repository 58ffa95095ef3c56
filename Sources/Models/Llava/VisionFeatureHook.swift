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
    /// What to record for an image of `tileCount` tiles (default: `captureRequest`). A method that
    /// is a no-op on some inputs (GlobalCom² on single-tile LLaVA-1.5) asks for nothing there, so
    /// the tower keeps its fused attention path.
    func captureRequest(tileCount: Int) -> VisionCaptureRequest
    /// Inside the tower, for methods that merge between encoder layers (FiCoCo-V): called in every
    /// layer of every tile after the attention residual, before the MLP; a non-nil result replaces
    /// the hidden rows. Tiles run in order, then `selectFeatures` sees the image. Default: nil.
    func afterAttention(_ step: VisionLayerStep) throws -> Tensor?
    /// Inside the tower, at the end of every layer of every tile (after the MLP residual); a
    /// non-nil result replaces the layer's output (MustDrop's window merge after layer 0). Default: nil.
    func afterLayer(_ step: VisionLayerStep) throws -> Tensor?
    /// Kept features per tile (same count and order as `image.tiles`), or nil to keep everything.
    func selectFeatures(_ image: VisionImageFeatures) throws -> [KeptFeatures]?
}

extension VisionFeatureHook {
    public func afterAttention(_ step: VisionLayerStep) throws -> Tensor? { nil }
    public func afterLayer(_ step: VisionLayerStep) throws -> Tensor? { nil }
    public func captureRequest(tileCount: Int) -> VisionCaptureRequest { captureRequest }
}

/// One encoder layer of one tile, between attention and MLP (`VisionFeatureHook.afterAttention`)
/// or at its end (`afterLayer`).
public struct VisionLayerStep: @unchecked Sendable {
    public var imageIndex: Int
    public var tile: Int
    /// Tiles of the image (1 for LLaVA-1.5; thumbnail + AnyRes grid for NeXT).
    public var tileCount: Int
    /// Encoder layer index (0-based).
    public var layer: Int
    /// Residual stream after the attention (`afterAttention`) or after the whole layer
    /// (`afterLayer`), `[rows, hidden]` (row 0 = [CLS] before any merge).
    public var hidden: Tensor
    /// The layer's queries and keys, `[rows, heads·headDim]`, before the 1/√headDim scaling.
    public var queries: Tensor
    public var keys: Tensor
    public var heads: Int
    public var headDim: Int
    /// Encoder layers of the tower.
    public var towerLayers: Int
    /// The deepest encoder layer whose output the projector reads (`hidden_states[i + 1]`).
    public var featureLayer: Int
    /// Patches of a tile (rows × cols of the patch grid).
    public var patchCount: Int
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
    /// Feature-row index (patch index when the [CLS] row was dropped) each kept row stands at;
    /// below the tile's patch count (rows merged inside the tower keep their patch of origin).
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
