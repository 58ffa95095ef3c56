import Foundation

/// Merge maps: the picture a ViT saw with the patches each final token stands for drawn as one region
/// (`tokc run --merge-map`), the way ToMe's source map (`tome/vis.py`) shows which patches became one token.
///
/// Every token's region is outlined (a dark line wherever two neighbouring pixels belong to different
/// tokens, so an unmerged patch keeps its square and a merged token one outline around all its patches,
/// connected or not); a token of several patches is also tinted with a colour of its own. Patches no
/// token holds any more (pruned without fusion) are dimmed. Small model inputs are enlarged (nearest
/// neighbour) so that the outlines stay visible.
public enum MergeMap {
    /// - Parameters:
    ///   - image: the model-input picture (after resize and crop).
    ///   - grid: the patch grid (rows, columns); patches are numbered row-major.
    ///   - groups: per token, the patches it holds; a patch may be in one group at most.
    ///   - minSide: the picture is enlarged by an integer factor (at most 8) until its shorter side reaches this.
    public static func draw(image: RGBImage, grid: (rows: Int, cols: Int), groups: [[Int]], minSide: Int = 224,
                            tint: Float = 0.45, dim: Float = 0.3) throws -> RGBImage {
        guard grid.rows > 0, grid.cols > 0, grid.rows <= image.height, grid.cols <= image.width else {
            throw ImageError(path: nil, "merge map: grid \(grid.rows)x\(grid.cols) does not fit a \(image.width)x\(image.height) image")
        }
        guard tint >= 0, tint <= 1, dim >= 0, dim <= 1 else {
            throw ImageError(path: nil, "merge map: tint \(tint) and dim \(dim) must be in 0...1")
        }
        let cells = grid.rows * grid.cols
        var owner = [Int](repeating: -1, count: cells)
        for (g, patches) in groups.enumerated() {
            for p in patches {
                guard p >= 0, p < cells else { throw ImageError(path: nil, "merge map: patch \(p) is outside the \(grid.rows)x\(grid.cols) grid") }
                guard owner[p] < 0 else { throw ImageError(path: nil, "merge map: patch \(p) is in two tokens (\(owner[p]) and \(g))") }
                owner[p] = g
            }
        }
        let factor = max(1, min(8, (minSide + min(image.width, image.height) - 1) / max(1, min(image.width, image.height))))
        let w = image.width * factor, h = image.height * factor
        // Cell of each pixel row and column (the spans of KeepMap: cells split the image evenly).
        func cellIndex(_ length: Int, _ n: Int) -> [Int] {
            var out = [Int](repeating: 0, count: length)
            for i in 0..<n { for v in KeepMap.span(i, of: n, length: length) { out[v] = i } }
            return out
        }
        let rowCell = cellIndex(h, grid.rows), colCell = cellIndex(w, grid.cols)
        func ownerAt(_ x: Int, _ y: Int) -> Int { owner[rowCell[y] * grid.cols + colCell[x]] }
        let sizes = groups.map(\.count)
        var px = [UInt8](repeating: 0, count: w * h * 3)
        for y in 0..<h {
            for x in 0..<w {
                let src = ((y / factor) * image.width + x / factor) * 3
                let o = (y * w + x) * 3
                let g = ownerAt(x, y)
                let boundary = (x + 1 < w && ownerAt(x + 1, y) != g) || (y + 1 < h && ownerAt(x, y + 1) != g)
                if boundary {
                    px[o] = 20; px[o + 1] = 20; px[o + 2] = 20
                    continue
                }
                for c in 0..<3 {
                    var v = Float(image.pixels[src + c])
                    if g < 0 {
                        v *= dim
                    } else if sizes[g] > 1 {
                        v = (1 - tint) * v + tint * Float(color(g)[c])
                    }
                    px[o + c] = UInt8(min(255, max(0, v.rounded())))
                }
            }
        }
        return try RGBImage(width: w, height: h, pixels: px)
    }

    /// A saturated colour per token, hues spread by the golden angle.
    static func color(_ i: Int) -> [UInt8] {
        let hue = (Double(i) * 0.618033988749895).truncatingRemainder(dividingBy: 1) * 6
        let k = Int(hue), f = hue - Double(k)
        let (r, g, b): (Double, Double, Double)
        switch k {
        case 0: (r, g, b) = (1, f, 0)
        case 1: (r, g, b) = (1 - f, 1, 0)
        case 2: (r, g, b) = (0, 1, f)
        case 3: (r, g, b) = (0, 1 - f, 1)
        case 4: (r, g, b) = (f, 0, 1)
        default: (r, g, b) = (1, 0, 1 - f)
        }
        return [r, g, b].map { UInt8(40 + 200 * $0) }
    }
}
