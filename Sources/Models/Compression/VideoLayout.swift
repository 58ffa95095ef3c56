import Tensors
import TokenCompression

/// How one video's rows are laid out when they reach the LLM: frames of pooled cells, frame-major,
/// then (LLaVA-OneVision) one `image_newline` after the last frame.
///
/// Video methods need this layout (frame boundaries, cells per frame) and the model is the only
/// place that knows it, so the model hands it to the hook instead of each method guessing it.
public struct VideoLayout: Sendable, Equatable {
    public var frames: Int
    /// Pooled cells down and across one frame (⌈side/2⌉ each on OneVision).
    public var gridRows: Int
    public var gridColumns: Int
    /// Whether one newline row follows the last frame (OneVision).
    public var trailingNewline: Bool

    public init(frames: Int, gridRows: Int, gridColumns: Int, trailingNewline: Bool = true) {
        self.frames = frames
        self.gridRows = gridRows
        self.gridColumns = gridColumns
        self.trailingNewline = trailingNewline
    }

    /// N: rows of one frame.
    public var tokensPerFrame: Int { gridRows * gridColumns }
    /// Frame rows of the whole video (F·N), newline excluded.
    public var frameTokens: Int { frames * tokensPerFrame }
    /// Rows the video takes uncompressed.
    public var rowCount: Int { frameTokens + (trailingNewline ? 1 : 0) }
    /// Video-local index of the newline row (`frameTokens`), nil without one.
    public var newlineIndex: Int? { trailingNewline ? frameTokens : nil }
    /// Frame of the video-local row `i`; nil for the newline.
    public func frame(ofRow i: Int) -> Int? { i < frameTokens ? i / tokensPerFrame : nil }
}

/// One video's pooled rows as a `VideoTokenHook` sees them, after pooling and before the LLM.
public struct PooledVideo: @unchecked Sendable {
    /// Which video of the prompt (0-based, prompt order).
    public var index: Int
    /// `[F·N, C]`: every frame's pooled rows, frame-major (no newline).
    public var tokens: Tensor
    /// `[1, C]`: the `image_newline` row the model appends after the last frame.
    public var newline: Tensor
    public var layout: VideoLayout
    /// `[F, N]`: attention each pooled cell received in the tower's feature layer (mean over heads
    /// and queries, pooled like the rows), when the hook asked for it (`wantsReceivedAttention`).
    public var receivedAttention: Tensor?
    /// SigLIP's attention-pooling head on each frame, when the hook asked (`wantsPoolingHeadSignals`).
    public var poolingHead: PoolingHeadSignals?
}

/// What SigLIP's attention-pooling (MAP) head says about each frame (FastVID's signals).
public struct PoolingHeadSignals: @unchecked Sendable {
    /// `[F, D_vision]`: the head's output per frame.
    public var global: Tensor
    /// `[F, N]`: the probe's attention over the patches (mean over heads), pooled like the rows.
    public var salience: Tensor
}

/// What a video hook sends to the LLM in place of a video's rows.
public struct CompressedVideo: @unchecked Sendable {
    /// `[rows, C]`, in the order the method's code splices them (newline included where it puts it).
    public var rows: Tensor
    /// Video-local index (`0..<layout.rowCount`, newline = `layout.frameTokens`) each row stands
    /// at: a kept row's own index, a merged row's representative. Keep maps and, under
    /// `.keepOriginal`, the rows' position ids come from it.
    public var sources: [Int]
    /// `.renumber`: the prompt's positions run on contiguously over the shorter video (the code
    /// splices fewer rows); `.keepOriginal`: each row sits at its source's position in the
    /// uncompressed prompt and the text after the video keeps its positions (FastVID).
    public var positions: PositionPolicy

    public init(rows: Tensor, sources: [Int], positions: PositionPolicy) throws {
        guard rows.rank == 2, rows.rows == sources.count, rows.rows > 0 else {
            throw ModelError("compressed video: \(rows.shape) rows for \(sources.count) sources (need one source per row, at least one row)")
        }
        self.rows = rows
        self.sources = sources
        self.positions = positions
    }
}

/// Where video-token methods (VidCom², DyCoke's temporal merging, …) plug into LLaVA-OneVision:
/// once per video, on the pooled rows before they are spliced into the prompt.
public protocol VideoTokenHook: AnyObject {
    /// Whether the tower must record the attention its feature layer's patches receive (HoliTom);
    /// it costs one full attention matrix per frame, so only hooks that read it ask. Default false.
    var wantsReceivedAttention: Bool { get }
    /// Whether the hook reads the pooling head's signals (`PooledVideo.poolingHead`). Default false.
    var wantsPoolingHeadSignals: Bool { get }
    /// The rows that replace the video's, or nil to leave it unchanged.
    func compressVideo(_ video: PooledVideo) throws -> CompressedVideo?
}

extension VideoTokenHook {
    public var wantsReceivedAttention: Bool { false }
    public var wantsPoolingHeadSignals: Bool { false }
}
