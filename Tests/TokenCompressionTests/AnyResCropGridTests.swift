import Testing
@testable import TokenCompression

@Suite struct AnyResCropGridTests {
    @Test func countsCropsAndIsTheMethodsGrid() throws {
        let grid = AnyResCropGrid(columns: 3, rows: 2)
        #expect(grid.cropCount == 6)
        try grid.validate(method: "T")
        // The three methods' names are the one type, so a grid passes from one to another unchanged.
        let f: FasterVLM.CropGrid = grid, v: VisionZip.CropGrid = f, h: HiRED.CropGrid = v
        #expect(h == grid)
    }

    @Test func aGridWithoutCropsThrowsNamingTheMethod() {
        for grid in [AnyResCropGrid(columns: 0, rows: 2), AnyResCropGrid(columns: 2, rows: -1)] {
            let error = #expect(throws: CompressionError.self) { try grid.validate(method: "Probe") }
            #expect(error.map { "\($0)".contains("Probe crop grid \(grid.columns)x\(grid.rows) must have at least one crop") } == true)
        }
    }
}
