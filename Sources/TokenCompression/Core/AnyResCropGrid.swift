/// The crop grid of one LLaVA-NeXT AnyRes image: `columns × rows` crops, which come after the base image.
///
/// Why one type: FasterVLM, VisionZip and HiRED (the [CLS]-attention methods with an AnyRes path) each
/// declared the same grid; they keep their `CropGrid` names as aliases of this one.
public struct AnyResCropGrid: Sendable, Equatable {
    /// Crops across (`num_patch_width`, the first value of `get_anyres_image_grid_shape`).
    public var columns: Int
    /// Crops down (`num_patch_height`).
    public var rows: Int

    public init(columns: Int, rows: Int) { self.columns = columns; self.rows = rows }

    /// Crops in the grid (partitions = 1 + cropCount with the base image).
    public var cropCount: Int { columns * rows }

    /// Throws unless the grid has at least one crop; `method` names the caller in the message.
    public func validate(method: String) throws {
        guard columns >= 1, rows >= 1 else {
            throw CompressionError.invalidParameter("\(method) crop grid \(columns)x\(rows) must have at least one crop")
        }
    }
}
