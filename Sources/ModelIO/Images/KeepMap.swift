import Foundation

/// Keep maps: the picture the vision tower saw, with the patches a compression method dropped
/// dimmed, so that a run's token selection can be inspected by eye (`tokc run --keep-map`).
public enum KeepMap {
    /// Pixel rows (or columns) covered by cell `i` of `n` cells over `length` pixels; cells
    /// split the image evenly, the remainder spread by integer division.
    static func span(_ i: Int, of n: Int, length: Int) -> Range<Int> {
        (i * length / n)..<((i + 1) * length / n)
    }

    /// Scales the pixels of `rect` by `factor` (rounded, so 1 keeps them unchanged).
    static func darken(_ image: inout RGBImage, rows: Range<Int>, cols: Range<Int>, factor: Float) {
        for y in rows {
            for x in cols {
                let o = (y * image.width + x) * 3
                for c in 0..<3 { image.pixels[o + c] = UInt8(min(255, max(0, (Float(image.pixels[o + c]) * factor).rounded()))) }
            }
        }
    }

    /// Lightens the cell borders half-way to white: a thin grid that shows on dark and bright areas.
    static func drawGrid(_ image: inout RGBImage, rows: Int, cols: Int) {
        func lighten(_ x: Int, _ y: Int) {
            let o = (y * image.width + x) * 3
            for c in 0..<3 { image.pixels[o + c] = UInt8((Int(image.pixels[o + c]) + 255) / 2) }
        }
        for r in 1..<max(rows, 1) {
            let y = r * image.height / rows
            if y < image.height { for x in 0..<image.width { lighten(x, y) } }
        }
        for c in 1..<max(cols, 1) {
            let x = c * image.width / cols
            if x < image.width { for y in 0..<image.height { lighten(x, y) } }
        }
    }

    static func checkDim(_ dim: Float) throws {
        guard dim >= 0, dim <= 1 else { throw ImageError(path: nil, "keep-map dim factor must be in 0...1, got \(dim)") }
    }

    /// `image` overlaid with a `grid.rows` x `grid.cols` patch grid whose cells are numbered
    /// row-major; cells not in `kept` are multiplied by `dim`, kept cells stay unchanged.
    public static func draw(image: RGBImage, grid: (rows: Int, cols: Int), kept: Set<Int>,
                            dim: Float = 0.3, gridLines: Bool = false) throws -> RGBImage {
        try checkDim(dim)
        guard grid.rows > 0, grid.cols > 0, grid.rows <= image.height, grid.cols <= image.width else {
            throw ImageError(path: nil, "keep-map grid \(grid.rows)x\(grid.cols) does not fit a \(image.width)x\(image.height) image")
        }
        if let bad = kept.first(where: { $0 < 0 || $0 >= grid.rows * grid.cols }) {
            throw ImageError(path: nil, "kept index \(bad) is outside the \(grid.rows)x\(grid.cols) patch grid")
        }
        var out = image
        for r in 0..<grid.rows {
            for c in 0..<grid.cols where !kept.contains(r * grid.cols + c) {
                darken(&out, rows: span(r, of: grid.rows, length: image.height),
                    cols: span(c, of: grid.cols, length: image.width), factor: dim)
            }
        }
        if gridLines { drawGrid(&out, rows: grid.rows, cols: grid.cols) }
        return out
    }

    /// LLaVA-NeXT: the thumbnail (base tokens) and the tile canvas side by side, `gap` pixels
    /// apart on a dark background. `kept` indexes the image's token sequence as laid out by
    /// `layout` (base cells, then unpadded grid rows with their newline tokens). Canvas cells
    /// that `unpad_image` removed are not tokens and are drawn at a quarter of `dim`.
    public static func drawAnyRes(_ images: AnyResImages, layout: AnyResLayout, kept: Set<Int>,
                                  dim: Float = 0.3, gridLines: Bool = false, gap: Int = 8) throws -> RGBImage {
        try checkDim(dim)
        let side = layout.patchesPerSide
        if let bad = kept.first(where: { $0 < 0 || $0 >= layout.tokenCount }) {
            throw ImageError(path: nil, "kept index \(bad) is outside the \(layout.tokenCount) image tokens")
        }
        guard layout.bestResolution == images.bestResolution else {
            throw ImageError(path: nil, "keep-map layout (best \(layout.bestResolution)) does not belong to these AnyRes images (best \(images.bestResolution))")
        }
        var baseKept = Set<Int>()
        var tileKept = Set<Int>()
        let gridCols = layout.tileCols * side
        for index in kept {
            switch layout.token(index) {
            case .base(let r, let c): baseKept.insert(r * side + c)
            case .tile(let r, let c): tileKept.insert(r * gridCols + c)
            case .newline, .none: break
            }
        }
        let thumb = try draw(image: images.thumbnail, grid: (side, side), kept: baseKept, dim: dim, gridLines: gridLines)
        var canvas = images.canvas
        let gridRows = layout.tileRows * side
        let u = layout.unpad
        for r in 0..<gridRows {
            for c in 0..<gridCols where !tileKept.contains(r * gridCols + c) {
                let isToken = r >= u.top && r < u.top + u.height && c >= u.left && c < u.left + u.width
                darken(&canvas, rows: span(r, of: gridRows, length: canvas.height),
                    cols: span(c, of: gridCols, length: canvas.width), factor: isToken ? dim : dim / 4)
            }
        }
        if gridLines { drawGrid(&canvas, rows: gridRows, cols: gridCols) }
        let width = thumb.width + max(0, gap) + canvas.width
        let height = max(thumb.height, canvas.height)
        var out = thumb.pasted(onCanvasWidth: width, height: height, left: 0, top: 0, fill: (32, 32, 32))
        for y in 0..<canvas.height {
            let dst = (y * width + thumb.width + max(0, gap)) * 3
            out.pixels.replaceSubrange(dst..<(dst + canvas.width * 3),
                                       with: canvas.pixels[(y * canvas.width * 3)..<((y + 1) * canvas.width * 3)])
        }
        return out
    }
}

/// `KeepMap.draw` as a free function (the name the runtime and CLI use).
public func keepMap(image: RGBImage, grid: (rows: Int, cols: Int), kept: Set<Int>, dim: Float = 0.3,
                    gridLines: Bool = false) throws -> RGBImage {
    try KeepMap.draw(image: image, grid: grid, kept: kept, dim: dim, gridLines: gridLines)
}

extension ImagePreprocessor {
    /// The uint8 picture the vision tower sees (pad to square, resize, centre crop): the
    /// background a LLaVA-1.5 keep map is drawn on.
    public func modelInputImage(_ image: RGBImage) throws -> RGBImage {
        try geometricPipeline(padToSquare ? image.expandedToSquare(fill: padColor) : image)
    }
}
