import Tensors
import TokenCompression

/// What a video method chose for one video's frame rows (the newline is the hook's business).
struct VideoChoice {
    /// `[n, C]` frame rows in the order the method's code splices them.
    var rows: Tensor
    /// Video-local index (`f·N + j`) each row stands at.
    var sources: [Int]
    var policy: PositionPolicy
    /// Frame tokens the method's own rule aimed at, when it is not the budget's count.
    var requested: Int?
    var notes: [String] = []
}

/// The bookkeeping every video-token method shares, written once: the budget over each video's
/// frame tokens (F·N; the trailing newline is always kept and placed after the frames, as the
/// OneVision code appends it after compressing), the explicit no-op when the budget covers every
/// token, the timing around the method's own call and the report, summed over the prompt's videos.
class VideoCompressionHook: CompressionHook, VideoTokenHook {
    typealias Choose = (_ video: PooledVideo, _ target: Int) throws -> VideoChoice

    let budget: Budget
    /// Whether the method is driven by the budget (a budget covering every token is a no-op).
    let budgetDriven: Bool
    let choose: Choose
    /// Video rows each video had before and after the last prefill (`compressVideo` order).
    private(set) var rowsBefore: [Int] = []
    private(set) var rowsAfter: [Int] = []

    init(method: String, policy: PositionPolicy, budget: Budget, budgetDriven: Bool = true, choose: @escaping Choose) {
        self.budget = budget
        self.budgetDriven = budgetDriven
        self.choose = choose
        super.init(method: method, policy: policy)
    }

    /// Declared here so that subclasses can override it (a protocol extension's default would be
    /// chosen statically for every subclass).
    var wantsReceivedAttention: Bool { false }
    var wantsPoolingHeadSignals: Bool { false }

    func compressVideo(_ video: PooledVideo) throws -> CompressedVideo? {
        if video.index == 0 {
            beginReport(visualBefore: 0, requested: 0, achieved: 0, policy: report.positionPolicy)
            rowsBefore = []
            rowsAfter = []
        }
        let layout = video.layout
        let frameTokens = layout.frameTokens
        let target = try budget.requested(outOf: frameTokens)
        report.visualTokensBefore += frameTokens
        rowsBefore.append(layout.rowCount)
        if budgetDriven, target >= frameTokens {
            report.requestedVisualTokens += target
            report.achievedVisualTokens += frameTokens
            report.keptIndices += Array(0..<frameTokens)
            rowsAfter.append(layout.rowCount)
            noOp("video \(video.index): budget \(budget) asks for \(target) ≥ \(frameTokens) frame tokens")
            return nil
        }
        let start = scoringStart()
        let choice = try choose(video, target)
        addScoringTime(since: start)
        report.requestedVisualTokens += choice.requested ?? target
        report.achievedVisualTokens += choice.rows.rows
        report.positionPolicy = choice.policy
        report.keptIndices += choice.sources
        report.notes += choice.notes
        var rows = [choice.rows], sources = choice.sources
        if let newline = layout.newlineIndex {
            rows.append(video.newline)
            sources.append(newline)
        }
        let out = try CompressedVideo(rows: try Tensor.concatenateRows(rows), sources: sources, positions: choice.policy)
        rowsAfter.append(out.rows.rows)
        note("video \(video.index): \(frameTokens) → \(choice.rows.rows) frame tokens (\(layout.frames) frames × \(layout.tokensPerFrame)), newline kept")
        return out
    }
}
