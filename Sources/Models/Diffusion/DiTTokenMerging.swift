import Foundation
import Tensors
import TokenCompression

/// ToMe for Stable Diffusion's settings for one sampling run: the method's parameters (`apply_patch`'s
/// arguments) and where the random destinations come from.
public struct DiTTokenMergingSettings: Sendable, Equatable {
    public var parameters: ToMeSD.Parameters
    /// Seed of the destination draws when randomness is on (an even batch and `useRand`). tomesd forks
    /// torch's global generator and keeps drawing from it across blocks and steps; we keep one SplitMix64
    /// stream per run in the same way (one 64-bit draw per merging block call seeds that call's cells), so
    /// a run is reproducible from this seed but does not reproduce torch's draws.
    public var seed: UInt64
    /// Destination positions of every merging block call that draws, in call order (tomesd's `rand_idx`,
    /// recorded from a reference run); nil: drawn from `seed`. Replays a diffusers + tomesd run exactly.
    public var recordedDestinations: [[Int]]?

    public init(parameters: ToMeSD.Parameters = ToMeSD.Parameters(), seed: UInt64 = 0, recordedDestinations: [[Int]]? = nil) {
        self.parameters = parameters
        self.seed = seed
        self.recordedDestinations = recordedDestinations
    }
}

/// The tokens one block call gave each sub-layer (all `tokens` when it is not merged).
public struct DiTMergedBlock: Sendable, Equatable {
    /// Tokens of the block's residual stream (per sample; unmerge restores them after every sub-layer).
    public let tokens: Int
    public let attentionTokens: Int
    /// PixArt-α's cross-attention (equals `tokens` in DiT, which has none).
    public let crossAttentionTokens: Int
    public let mlpTokens: Int
    /// Sources × destinations of the similarity matrix computed for the matching (0: none computed).
    public let similarityPairs: Int
}

/// ToMe-SD inside the blocks of a diffusion transformer (DiT, PixArt-α), for one sampling run.
///
/// At every block call, `compute_merge` on the block's input hidden states `[B, N, C]` (the CFG batch
/// kept: destinations shared by the batch, matching per sample) decides a matching; the block then merges
/// the normalised input of each merged sub-layer (`merge_attn`: self-attention, `merge_crossattn`:
/// cross-attention, `merge_mlp`: MLP) to `N − r` rows, runs the sub-layer on them, and unmerges its output
/// back to N rows before the (gated) residual — tomesd's `make_diffusers_tome_block`. The adaLN gate and
/// modulation are per sample and channel, so gating before or after unmerge (the code gates first) and
/// modulating before merging are the same arithmetic.
///
/// tomesd's quirk on DiTs: `compute_merge` takes the downsample factor from the latent size H×W vs the
/// token count, `ceil(sqrt(H·W // N))`. A U-Net's first blocks see one token per latent pixel
/// (downsample 1), but a DiT with patch size p has N = H·W/p², so downsample = p and the default
/// `max_downsample = 1` merges nothing; `max_downsample ≥ p` is needed. That case is not silent:
/// `noOpReason` says it, and the runtime reports it.
public final class DiTTokenMerging: @unchecked Sendable {
    public let settings: DiTTokenMergingSettings
    /// `(H, W)` of the latents (tomesd's `_tome_info["size"]`, recorded by its forward pre-hook).
    public let latentSize: (height: Int, width: Int)
    /// `compute_merge`'s decision without the matching (the same for every block: all have N tokens).
    public let plan: ToMeSD.BlockPlan
    /// `blocks[call][layer]`: the tokens each sub-layer really ran on.
    public private(set) var blocks: [[DiTMergedBlock]] = []
    private var generator: SplitMix64
    private var replayed = 0

    /// Checks the settings against the model's latent size and token count (a grid the code cannot merge
    /// on throws here, before sampling) for batches of `batch` samples (odd: no random destinations).
    public init(settings: DiTTokenMergingSettings, latentSize: (height: Int, width: Int), tokenCount: Int, batch: Int) throws {
        self.settings = settings
        self.latentSize = latentSize
        do {
            plan = try ToMeSD.computeMerge(batchSize: batch, tokenCount: tokenCount, originalSize: latentSize, parameters: settings.parameters)
        } catch {
            throw ModelError("tomesd: \(error)")
        }
        generator = SplitMix64(seed: settings.seed)
    }

    /// Why no block merges, when none does (then every sub-layer runs on all tokens, as the code's
    /// `do_nothing` closures).
    public var noOpReason: String? {
        guard let reason = plan.noOpReason else { return nil }
        if !plan.applies {
            let side = max(1, Int(Double(latentSize.height * latentSize.width / plan.tokenCount).squareRoot().rounded()))
            return "\(reason) — tomesd's compute_merge takes downsample = ceil(sqrt(H·W // N)) = ceil(sqrt(\(latentSize.height)·\(latentSize.width) // \(plan.tokenCount))) from the latent size; a patch size of \(side) gives downsample \(plan.downsample) in every block, so nothing merges unless max_downsample ≥ \(plan.downsample)"
        }
        return reason
    }

    /// Starts one transformer call (one sampler step).
    func beginCall() { blocks.append([]) }

    /// `compute_merge` for the block whose input is `hidden` `[B·N, C]`.
    func block(input hidden: Tensor, samples b: Int) throws -> DiTBlockMerge {
        let n = plan.tokenCount
        guard hidden.rank == 2, hidden.rows == b * n else {
            throw ModelError("tomesd: block input \(hidden.shape) for \(b) samples of \(n) tokens")
        }
        guard b == plan.batchSize else {
            throw ModelError("tomesd: planned for batches of \(plan.batchSize), called with \(b)")
        }
        guard !blocks.isEmpty else { throw ModelError("tomesd: a block ran before the transformer call began") }
        guard plan.noOpReason == nil else {
            record(DiTMergedBlock(tokens: n, attentionTokens: n, crossAttentionTokens: n, mlpTokens: n, similarityPairs: 0))
            return DiTBlockMerge(block: nil, tokenCount: n, samples: b)
        }
        var choice = ToMeSD.DestinationChoice.topLeft
        if plan.useRand {
            if let recorded = settings.recordedDestinations {
                guard replayed < recorded.count else {
                    throw ModelError("tomesd: \(recorded.count) recorded destination draws, the run needs more")
                }
                choice = .cells(recorded[replayed])
                replayed += 1
            } else {
                choice = .seeded(generator.next())
            }
        }
        let merged: ToMeSD.Block
        do {
            merged = try ToMeSD.computeMerge(metric: try hidden.reshaped([b, n, hidden.columns]), originalSize: latentSize,
                                             parameters: settings.parameters, destinations: choice)
        } catch {
            throw ModelError("tomesd: \(error)")
        }
        let m = merged.matching
        let step = DiTBlockMerge(block: merged, tokenCount: n, samples: b)
        record(DiTMergedBlock(tokens: n, attentionTokens: step.tokens(.selfAttention), crossAttentionTokens: step.tokens(.crossAttention),
                              mlpTokens: step.tokens(.mlp), similarityPairs: m.sources.count * m.destinations.count))
        return step
    }

    private func record(_ block: DiTMergedBlock) {
        blocks[blocks.count - 1].append(block)
    }
}

/// One block call's merge and unmerge on the runtime's `[B·N, C]` row blocks.
struct DiTBlockMerge {
    /// nil: nothing merges in this block.
    let block: ToMeSD.Block?
    let tokenCount: Int
    let samples: Int

    /// Rows per sample the sub-layer runs on.
    func tokens(_ sublayer: ToMeSD.Sublayer) -> Int {
        block?.sublayerMatching(sublayer).outputCount ?? tokenCount
    }

    /// `m_x(rows)`: `[B·N, C]` → `[B·(N − r), C]` (each sample's rows in ToMeSD's canonical order).
    func merge(_ rows: Tensor, _ sublayer: ToMeSD.Sublayer) throws -> Tensor {
        guard let matching = block?.sublayerMatching(sublayer), !matching.isIdentity else { return rows }
        let c = rows.columns
        let merged = try ToMeSD.merge(try rows.reshaped([samples, matching.tokenCount, c]), matching: matching)
        return try merged.reshaped([samples * matching.outputCount, c])
    }

    /// `u_x(rows)`: `[B·(N − r), C]` → `[B·N, C]`, every token taking the row it was merged into.
    func unmerge(_ rows: Tensor, _ sublayer: ToMeSD.Sublayer) throws -> Tensor {
        guard let matching = block?.sublayerMatching(sublayer), !matching.isIdentity else { return rows }
        let c = rows.columns
        let restored = try ToMeSD.unmerge(try rows.reshaped([samples, matching.outputCount, c]), matching: matching)
        return try restored.reshaped([samples * matching.tokenCount, c])
    }
}
