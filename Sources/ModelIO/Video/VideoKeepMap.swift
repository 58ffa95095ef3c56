import Foundation

/// The keep map of a video: its sampled frames side by side, each overlaid with the grid of its
/// visual tokens, the tokens a method dropped dimmed (`tokc run --video … --keep-map`).
public enum VideoKeepMap {
    /// `kept` indexes the video's tokens frame by frame (`frame · rows · cols + row · cols + col`);
    /// indices past the last frame's cells (OneVision's trailing `image_newline`) are ignored.
    /// Frames are drawn `gap` pixels apart on a dark background, top-aligned.
    public static func draw(frames: [RGBImage], grid: (rows: Int, cols: Int), kept: Set<Int>, dim: Float = 0.3,
                            gap: Int = 4) throws -> RGBImage {
        guard !frames.isEmpty else { throw ImageError(path: nil, "video keep map: no frames") }
        let cells = grid.rows * grid.cols
        guard cells > 0 else { throw ImageError(path: nil, "video keep map: empty token grid \(grid.rows)x\(grid.cols)") }
        if let bad = kept.first(where: { $0 < 0 }) { throw ImageError(path: nil, "video keep map: negative token index \(bad)") }
        var drawn: [RGBImage] = []
        for (f, frame) in frames.enumerated() {
            let mine = Set(kept.filter { $0 / cells == f }.map { $0 % cells })
            drawn.append(try KeepMap.draw(image: frame, grid: grid, kept: mine, dim: dim))
        }
        let g = max(0, gap)
        let width = drawn.reduce(0) { $0 + $1.width } + g * (drawn.count - 1)
        let height = drawn.map(\.height).max()!
        var out = RGBImage(width: width, height: height, fill: (32, 32, 32))
        var left = 0
        for d in drawn {
            for y in 0..<d.height {
                let dst = (y * width + left) * 3
                out.pixels.replaceSubrange(dst..<(dst + d.width * 3), with: d.pixels[(y * d.width * 3)..<((y + 1) * d.width * 3)])
            }
            left += d.width + g
        }
        return out
    }
}
