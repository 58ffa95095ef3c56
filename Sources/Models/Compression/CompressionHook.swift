import Foundation
import TokenCompression

/// The lifecycle every in-model hook shares, written once.
///
/// A hook's report says "no prefill ran yet" until the first prefill, starts afresh at every
/// prefill (`beginReport`), collects the notes people read (`note`, `noOp`) and the time spent in
/// the method's own scoring and selection (`scoringStart` … `addScoringTime`), and is read back
/// through `lastReport()`. Subclasses add the `PrefillHook` and/or `VisionFeatureHook` methods.
class CompressionHook {
    /// Registry name, the prefix of every note.
    let method: String
    var report: CompressionRunReport

    init(method: String, policy: PositionPolicy) {
        self.method = method
        report = .empty(policy, note: "\(method): no prefill ran yet")
    }

    func lastReport() -> CompressionRunReport { report }

    /// A fresh report for a new prefill.
    func beginReport(visualBefore: Int, requested: Int, achieved: Int, policy: PositionPolicy, keptIndices: [Int] = [],
                     scoringSeconds: Double = 0) {
        report = CompressionRunReport(visualTokensBefore: visualBefore, requestedVisualTokens: requested, achievedVisualTokens: achieved,
                                      keptIndices: keptIndices, positionPolicy: policy, scoringSeconds: scoringSeconds, notes: [])
    }

    /// A note for people (`tokc run` prints it, `tokc bench` collects it), prefixed by the method.
    func note(_ text: String) { report.notes.append("\(method): \(text)") }

    /// Says why the method leaves this input unchanged.
    func noOp(_ reason: String) { note("\(reason); no-op") }

    /// Start of a stretch of the method's own work.
    func scoringStart() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

    /// Adds the time since `start` to the report's scoring time.
    func addScoringTime(since start: UInt64) { report.scoringSeconds += Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }
}

extension ModelCompression {
    /// A method whose one hook plays the decoder part, the vision part or both.
    convenience init(info: MethodInfo, budget: Budget, hook: CompressionHook) {
        self.init(info: info, budget: budget, prefillHook: hook as? PrefillHook, visionHook: hook as? VisionFeatureHook,
                  videoHook: hook as? VideoTokenHook, decodeHook: hook as? DecodeHook, report: { hook.lastReport() })
    }
}
