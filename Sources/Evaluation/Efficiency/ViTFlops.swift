import Foundation
import Models

/// Analytic FLOPs of one image through a ViT/DeiT classifier, from the rows each block really ran
/// (`ViTTokenTrace`), by the toolkit's convention (a multiply-add is 2 FLOPs; fvcore and the ToMe/EViT
/// papers count multiply-adds, so their "GFLOPs" are half of ours).
///
/// Per block with n rows entering the attention and m rows entering the MLP (after a method's merge
/// or prune), width d, MLP width I: q/k/v projections 3·2·n·d², scores and weighted sum 2·2·n²·d,
/// output projection 2·n·d², MLP 2·2·m·d·I. Plus the patch embedding 2·P·(C·p²)·d and the head(s)
/// 2·d·classes. Norms, softmax, GELU and a method's own matching are not counted; FLOPs a method adds
/// in the model (Sparse-Tuning's adapters) come in as `extra`.
public enum ViTFlops {
    public static func perImage(config c: ViTClassifierConfig, classes: Int, rowsEnteringBlock: [Int], rowsEnteringMLP: [Int],
                                extra: Double = 0) throws -> Double {
        guard rowsEnteringBlock.count == c.layers, rowsEnteringMLP.count == c.layers else {
            throw BenchError("ViT FLOPs: the run traced \(rowsEnteringBlock.count)/\(rowsEnteringMLP.count) blocks; the config has \(c.layers)")
        }
        let d = Double(c.hiddenSize), inter = Double(c.intermediateSize)
        var total = 2 * Double(c.patchCount) * Double(c.channels * c.patchSize * c.patchSize) * d
        for (n, m) in zip(rowsEnteringBlock.map(Double.init), rowsEnteringMLP.map(Double.init)) {
            total += 3 * 2 * n * d * d + 2 * 2 * n * n * d + 2 * n * d * d + 2 * 2 * m * d * inter
        }
        let heads = c.head == .deitWithTeacher ? 2.0 : 1.0
        total += heads * 2 * d * Double(classes)
        return total + extra
    }

    /// Per image of a traced batch.
    public static func perImage(config: ViTClassifierConfig, classes: Int, trace: ViTTokenTrace, image: Int, extra: Double = 0) throws -> Double {
        try perImage(config: config, classes: classes, rowsEnteringBlock: trace.rowsEnteringBlock.map { $0[image] },
                     rowsEnteringMLP: trace.rowsEnteringMLP.map { $0[image] }, extra: extra)
    }
}
