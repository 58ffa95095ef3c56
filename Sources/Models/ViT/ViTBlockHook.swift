import Tensors

/// Where token methods act inside the blocks of a ViT (ToMe, EViT, Sparse-Tuning): `ViTClassifier`
/// (ViT, DeiT) and the vision tower of `CLIPModel`.
///
/// Why this shape. The methods of this domain change the token set *between* attention and MLP of a
/// block (ToMe merges with the block's own keys, EViT and Sparse-Tuning keep the tokens the [CLS]
/// row attends to and fuse the rest), and ToMe's proportional attention changes the attention of
/// every later block. So the hook is called per image after the attention residual and before the
/// MLP, sees what those methods score with (the block's keys and queries, the attention rows it
/// asked for, the current token sizes), and returns the new rows and their sizes. The model then
/// runs the MLP and every later block on them and, with `proportionalAttention`, adds `log(size_j)`
/// to each attention logit of key j (`Attention`'s `keyBias`). The leading class/distillation rows
/// are what the classifier heads read, so they are protected: the hook is told how many there are
/// and must return them first and unchanged. A second, optional point at the end of a block lets a
/// method add to the block output without changing the token set (Sparse-Tuning's dense adapters), and
/// `beforeBlocks` shows each image's embedded rows (what Sparse-Tuning re-adds at the end of its first stage).
///
/// Images of a batch are handed over one at a time and may end up with different row counts.
public protocol ViTBlockHook: AnyObject {
    /// Attention of `block` to record for the hook (e.g. EViT: `.probabilities(rows: [0])`, the [CLS]
    /// row); arrives in `ViTBlockStep.attention`. Default `.none`: the fused path.
    func attentionRecord(block: Int) -> AttentionRecord
    /// Whether later blocks add `log(size_j)` to the attention logits of key j once the hook has
    /// returned sizes (ToMe's proportional attention). Default false.
    var proportionalAttention: Bool { get }
    /// After the attention residual of a block, before its MLP, for one image. A non-nil result
    /// replaces that image's rows (merge or prune); the MLP and all later blocks run on them.
    /// Default: nil (rows unchanged).
    func afterAttention(_ step: ViTBlockStep) throws -> ViTTokenUpdate?
    /// At the end of a block (after the MLP residual), for one image: a non-nil result replaces the
    /// block output, same shape (`step.hidden` is the MLP's input). Default: nil.
    func afterBlock(_ step: ViTBlockStep, output: Tensor) throws -> Tensor?
    /// Before the first block, for one image: its embedded rows (patches, class tokens and positions;
    /// CLIP: after `pre_layrnorm`), `[tokens, width]`. Default: nothing.
    func beforeBlocks(image: Int, hidden: Tensor) throws
}

extension ViTBlockHook {
    public func attentionRecord(block: Int) -> AttentionRecord { .none }
    public var proportionalAttention: Bool { false }
    public func afterAttention(_ step: ViTBlockStep) throws -> ViTTokenUpdate? { nil }
    public func afterBlock(_ step: ViTBlockStep, output: Tensor) throws -> Tensor? { nil }
    public func beforeBlocks(image: Int, hidden: Tensor) throws {}
}

/// One block of one image, between attention and MLP.
public struct ViTBlockStep: @unchecked Sendable {
    /// Block index (0-based) and number of blocks.
    public var block: Int
    public var blockCount: Int
    /// Image index in the batch.
    public var image: Int
    /// Leading rows that are class tokens: 1 ([CLS]) for ViT and CLIP, 2 ([CLS], distillation) for DeiT.
    /// They must come back first and unchanged from `afterAttention`.
    public var protectedRows: Int
    /// The residual stream after the attention, `[rows, width]`.
    public var hidden: Tensor
    /// The block's queries and keys, `[rows, heads·headDim]`, projections of the block's normalised
    /// input before the 1/√headDim scaling (ToMe's metric is the keys averaged over heads).
    public var queries: Tensor
    public var keys: Tensor
    public var heads: Int
    public var headDim: Int
    /// What `attentionRecord(block:)` asked for (nil when it asked for nothing).
    public var attention: RecordedAttention?
    /// Patches each row stands for, as last returned by the hook; nil: every row counts one.
    public var sizes: [Float]?
    /// Patches of the image (rows before any change, without the class tokens).
    public var patchCount: Int
}

/// New rows for one image.
public struct ViTTokenUpdate: @unchecked Sendable {
    /// `[rows', width]`, the protected rows first.
    public var hidden: Tensor
    /// Patches each new row stands for (positive); nil: every row counts one. Used as the bias of
    /// later attentions when the hook's `proportionalAttention` is on, and handed back in later steps.
    public var sizes: [Float]?

    public init(hidden: Tensor, sizes: [Float]? = nil) {
        self.hidden = hidden
        self.sizes = sizes
    }
}

/// The rows a forward pass really ran, per block and image.
public struct ViTTokenTrace: Sendable, Equatable {
    /// `rowsEnteringBlock[block][image]`: rows the block's attention ran on.
    public var rowsEnteringBlock: [[Int]] = []
    /// `rowsEnteringMLP[block][image]`: rows the block's MLP ran on (after `afterAttention`).
    public var rowsEnteringMLP: [[Int]] = []

    public init() {}
}
