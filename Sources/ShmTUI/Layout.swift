// Where everything goes on the screen, for a given terminal size. Pure: tested without a terminal.

/// A rectangle of cells.
struct Region: Hashable, Sendable {
    var top: Int
    var left: Int
    var width: Int
    var height: Int

    init(top: Int, left: Int, width: Int, height: Int) {
        self.top = top
        self.left = left
        self.width = max(0, width)
        self.height = max(0, height)
    }

    var rows: Range<Int> { top..<(top + height) }
    var columns: Range<Int> { left..<(left + width) }
    func contains(row: Int, column: Int) -> Bool { rows.contains(row) && columns.contains(column) }
}

/// The screen's regions for the main view and the drill-down.
struct ScreenLayout: Hashable, Sendable {
    /// The smallest terminal the views are designed for.
    static let minimumWidth = 80
    static let minimumHeight = 24

    /// The terminal's size.
    let width: Int
    let height: Int
    /// The title bar's row.
    let titleRow = 0
    /// The banner's row (file gone, re-attaching), when one is shown.
    let bannerRow: Int?
    /// Between the title (and banner) and the footer.
    let body: Region
    /// The heatmap's legend line (the first row of its side of the body).
    let heatmapLegendRow: Int
    /// The heatmap's cells.
    let heatmap: Region
    /// The statistics panel, right of the heatmap.
    let panel: Region
    /// The column of the line between heatmap and panel.
    let dividerColumn: Int
    /// The footer: the selection line, then the key line.
    let selectionRow: Int
    let keyRow: Int

    /// True when the terminal is smaller than the views need.
    var isTooSmall: Bool { width < Self.minimumWidth || height < Self.minimumHeight }

    /// The one line shown instead of the views when the terminal is too small (fits 40 columns).
    var enlargeMessage: String { "enlarge the terminal to 80×24" }

    /// The layout of a `width` × `height` terminal; `banner` reserves a row under the title.
    init(width: Int, height: Int, banner: Bool) {
        self.width = width
        self.height = height
        bannerRow = banner ? 1 : nil
        let bodyTop = banner ? 2 : 1
        selectionRow = height - 2
        keyRow = height - 1
        body = Region(top: bodyTop, left: 0, width: width, height: height - 2 - bodyTop)
        // The panel takes two fifths of wide terminals, at least 42 columns and at most 60.
        let panelWidth = min(60, max(42, width * 2 / 5))
        dividerColumn = width - panelWidth - 1
        panel = Region(top: bodyTop, left: width - panelWidth, width: panelWidth, height: body.height)
        heatmapLegendRow = bodyTop
        heatmap = Region(top: bodyTop + 1, left: 1, width: dividerColumn - 2, height: body.height - 1)
    }
}

/// How blocks map to heatmap cells: zoom (blocks per cell), scrolling and the selected block.
///
/// Cell `i` covers blocks `i·blocksPerCell ..< (i+1)·blocksPerCell` (the last cell may be short).
/// At the default zoom the whole cache fits the region; zooming in halves the blocks per cell
/// (down to one block per cell) and the rows then scroll to keep the selection visible.
struct HeatmapGrid: Hashable, Sendable {
    /// Blocks in the cache.
    let blockCount: Int
    /// Cells per row and visible rows.
    let columns: Int
    let visibleRows: Int
    /// Blocks per cell.
    let blocksPerCell: Int
    /// The first visible row.
    let firstRow: Int

    /// Blocks per cell that fit every block into `columns × rows` cells.
    static func fittingBlocksPerCell(blockCount: Int, columns: Int, rows: Int) -> Int {
        let cells = max(1, columns * rows)
        return max(1, (blockCount + cells - 1) / cells)
    }

    /// The next zoom in from `blocksPerCell`: the largest power of two below it (at least 1).
    static func zoomedIn(from blocksPerCell: Int) -> Int {
        guard blocksPerCell > 1 else { return 1 }
        return 1 << (Int.bitWidth - 1 - (blocksPerCell - 1).leadingZeroBitCount)
    }

    /// The next zoom out: the next power of two above, at most `fitting`.
    static func zoomedOut(from blocksPerCell: Int, fitting: Int) -> Int {
        let next = 1 << (Int.bitWidth - blocksPerCell.leadingZeroBitCount)
        return min(fitting, next)
    }

    /// A grid of `region`'s size; `zoom` is blocks per cell (`nil` = fit everything); scrolled
    /// so that `selectedBlock`'s row is visible, moving as little as possible from `scrollRow`.
    init(blockCount: Int, columns: Int, rows: Int, zoom: Int?, selectedBlock: Int, scrollRow: Int) {
        self.blockCount = max(1, blockCount)
        self.columns = max(1, columns)
        visibleRows = max(1, rows)
        let fitting = Self.fittingBlocksPerCell(blockCount: self.blockCount, columns: self.columns, rows: visibleRows)
        blocksPerCell = min(fitting, max(1, zoom ?? fitting))
        let totalRows =
            (self.blockCount / blocksPerCell + (self.blockCount % blocksPerCell == 0 ? 0 : 1) + self.columns - 1)
            / self.columns
        let selectedRow = (selectedBlock / blocksPerCell) / self.columns
        var first = min(max(0, scrollRow), max(0, totalRows - visibleRows))
        if selectedRow < first { first = selectedRow }
        if selectedRow >= first + visibleRows { first = selectedRow - visibleRows + 1 }
        firstRow = first
        self.totalRows = totalRows
    }

    /// All rows of cells, visible or not.
    let totalRows: Int

    /// Cells in the whole grid.
    var cellCount: Int { (blockCount + blocksPerCell - 1) / blocksPerCell }

    /// True when every block is visible at once.
    var showsEverything: Bool { totalRows <= visibleRows && firstRow == 0 }

    /// The blocks of cell `cell`.
    func blocks(ofCell cell: Int) -> Range<Int> {
        (cell * blocksPerCell)..<min(blockCount, (cell + 1) * blocksPerCell)
    }

    /// The cell that holds `block`.
    func cell(ofBlock block: Int) -> Int { block / blocksPerCell }

    /// The cell drawn at a visible row and column (relative to the region), if there is one.
    func cell(atRow row: Int, column: Int) -> Int? {
        guard (0..<visibleRows).contains(row), (0..<columns).contains(column) else { return nil }
        let cell = (firstRow + row) * columns + column
        return cell < cellCount ? cell : nil
    }

    /// The visible position of a cell, if it is on screen.
    func position(ofCell cell: Int) -> (row: Int, column: Int)? {
        let row = cell / columns - firstRow
        guard (0..<visibleRows).contains(row) else { return nil }
        return (row, cell % columns)
    }

    /// The first block of the cell `delta` cells away from `block`'s, clamped to the grid.
    func move(from block: Int, by delta: Int) -> Int {
        let target = min(max(0, cell(ofBlock: block) + delta), cellCount - 1)
        return blocks(ofCell: target).lowerBound
    }
}
