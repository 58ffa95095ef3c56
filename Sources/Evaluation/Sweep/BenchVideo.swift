import Foundation
import Runtime

/// The seed's video table: what `tokc bench --task video` runs when nothing else is given.
///
/// The seed compares Random, FastV, PDrop, SparseVLM, DyCoke and VidCom² on LLaVA-OneVision at 25%
/// of the video tokens; the sweep adds 50% and 10% to show the trend. A method of the set that cannot
/// run on a video prompt in this build stays in the table as failed rows with the reason, so the
/// table never quietly loses a column of the seed's comparison.
public enum BenchVideo {
    /// `--task video`: the built-in video task with the built-in video model.
    public static let taskAlias = "video"
    public static let builtinModel = "builtin/models/llava-onevision-video"
    public static let builtinTask = "builtin/tasks/videos/test.jsonl"
    /// The seed's methods, as `tokc methods` names them.
    public static let methods = ["random", "fastv", "pdrop", "sparsevlm", "dycoke", "vidcom2"]
    /// 25% is the seed's; 50% and 10% around it.
    public static let budgets: [BenchBudget] = [.ratio(0.5), .ratio(0.25), .ratio(0.1)]
    /// `BenchManifest.kind` of a sweep with video samples.
    public static let kind = "video"

    /// The built-in video task and (unless `model` is given) model, found as `VLMPaths.resolve` finds
    /// the image defaults; an error naming what is missing (they ship with the trained video model).
    /// `resolve` finds a bundled path (tests give their own).
    public static func builtin(model given: String? = nil,
                               resolve: (String) -> String? = { VLMPaths.resolve($0) }) throws -> (task: String, model: String) {
        var missing: [String] = []
        let task = resolve(builtinTask)
        if task == nil { missing.append("task '\(builtinTask)'") }
        let model = given ?? resolve(builtinModel)
        if model == nil { missing.append("model '\(builtinModel)'") }
        guard let task, let model else {
            throw BenchError("--task video needs the built-in video \(missing.joined(separator: " and ")), not found in the current directory or above the executable (they ship with the trained LLaVA-OneVision video model); pass --task FILE.jsonl with video lines and --model a LLaVA-OneVision folder")
        }
        return (task, model)
    }
}
