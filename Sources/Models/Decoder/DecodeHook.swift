import Tensors

/// Where decode-time methods (DyCoke's dynamic KV pruning) plug into greedy decoding: before each
/// layer of every decoding step they may name the cache rows that layer attends to.
///
/// The cache keeps every row (the method's code stores the full K/V and gathers per step), so
/// only the rows a layer attends to shrink, not the memory; `DecodeStepReport` says how many.
public protocol DecodeHook: AnyObject {
    /// Attention of the current token that layer `layer` must record at each step (default none).
    func decodeAttentionRecord(layer: Int) -> AttentionRecord
    /// Called before layer `layer` of a decoding step. `cacheLength`: the layer's cached rows once
    /// the current token is appended (the current token is row `cacheLength − 1`);
    /// `previousAttention`: what layer `layer − 1` recorded at this step. Returns the ascending
    /// cache rows to attend to, ending with the current token's, or nil for all.
    func attendedRows(layer: Int, cacheLength: Int, previousAttention: RecordedAttention?) throws -> [Int]?
}

extension DecodeHook {
    public func decodeAttentionRecord(layer: Int) -> AttentionRecord { .none }
}
