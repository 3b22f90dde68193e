// The main view: title bar, heatmap, fragmentation panel and footer, drawn from one frame.

import ShmFormat
import ShmInspect

/// The heatmap cells of one frame at one grid: computed once, drawn on every repaint until the
/// next frame or a change of zoom, scroll or size. From one frame to the next, only the cells
/// holding changed blocks are updated (by their taken-leaf deltas), so a refresh costs what
/// changed rather than a pass over every block.
struct HeatmapCells {
    let grid: HeatmapGrid
    private(set) var sequence: Int
    /// Leaves taken in each visible cell, row by row.
    private var takenLeaves: [Int]
    /// Leaves in each visible cell (0 past the last block).
    private let leafCapacity: [Int]
    /// Whether a block of the visible cell changed since the previous frame.
    private(set) var changed: [Bool]
    /// Whether the visible cell lies wholly in the null region.
    let isNull: [Bool]

    /// The cells of `frame` at `grid`, counted from the frame's words.
    init(frame: LiveFrame, grid: HeatmapGrid) {
        self.grid = grid
        sequence = frame.sequence
        let snapshot = frame.snapshot
        let leafCount = snapshot.tree.leafCount
        let visible = grid.columns * grid.visibleRows
        let firstCell = grid.firstRow * grid.columns
        var taken = [Int](repeating: 0, count: visible)
        var capacity = [Int](repeating: 0, count: visible)
        var isNull = [Bool](repeating: false, count: visible)
        for index in 0..<visible where firstCell + index < grid.cellCount {
            let blocks = grid.blocks(ofCell: firstCell + index)
            // meanFill × leaves is the exact taken-leaf count (a ratio of integers).
            capacity[index] = blocks.count * leafCount
            taken[index] = Int((snapshot.meanFill(ofBlocks: blocks) * Double(capacity[index])).rounded())
            isNull[index] = blocks.upperBound <= snapshot.layout.nullBlockCount
        }
        takenLeaves = taken
        leafCapacity = capacity
        self.isNull = isNull
        changed = []
        markChanges(frame)
    }

    /// These cells moved on to `frame` when it directly follows them; `nil` when they cannot be
    /// (a frame was skipped, or the grid changed) and must be counted afresh.
    func advanced(to frame: LiveFrame, grid: HeatmapGrid) -> HeatmapCells? {
        guard grid == self.grid, frame.sequence == sequence + 1 else { return nil }
        var next = self
        next.sequence = frame.sequence
        let firstCell = grid.firstRow * grid.columns
        for (block, delta) in zip(frame.changedBlocks, frame.takenLeafDeltas) {
            let index = grid.cell(ofBlock: block) - firstCell
            if next.takenLeaves.indices.contains(index) { next.takenLeaves[index] += delta }
        }
        next.markChanges(frame)
        return next
    }

    private mutating func markChanges(_ frame: LiveFrame) {
        changed = [Bool](repeating: false, count: takenLeaves.count)
        let firstCell = grid.firstRow * grid.columns
        for block in frame.changedBlocks {
            let index = grid.cell(ofBlock: block) - firstCell
            if changed.indices.contains(index) { changed[index] = true }
        }
    }

    /// The mean fill of the visible cell `index`, or `nil` past the last block.
    func fill(_ index: Int) -> Double? {
        leafCapacity[index] == 0 ? nil : Double(takenLeaves[index]) / Double(leafCapacity[index])
    }
}

/// What the footer says about the selected cell.
struct SelectionSummary {
    let blocks: Range<Int>
    let offsets: Range<Int>
    let fill: Double
    let freeChunks: Int
    let allocations: Int

    init(snapshot: CacheSnapshot, blocks: Range<Int>) {
        self.blocks = blocks
        let blockSize = snapshot.geometry.blockSize
        offsets = (blocks.lowerBound * blockSize)..<(blocks.upperBound * blockSize)
        fill = snapshot.meanFill(ofBlocks: blocks)
        let census = BuddyCensus(tree: snapshot.tree, words: snapshot.words[blocks])
        // The null region's words are full: no free chunks, and its "allocations" are not real.
        let nullBlocks = blocks.clamped(to: 0..<snapshot.layout.nullBlockCount).count
        freeChunks = census.maximalFreeByOrder.reduce(0, +)
        allocations = nullBlocks == blocks.count ? 0 : census.allocationsByOrder.reduce(0, +)
    }

    func text(glyphs: GlyphSet, blocksPerCell: Int, blockSize: Int, isNull: Bool) -> String {
        let which = blocks.count == 1 ? "block \(blocks.lowerBound)" : "blocks \(blocks.lowerBound)–\(blocks.upperBound - 1)"
        var parts = [
            which,
            "\(Format.offset(offsets.lowerBound))–\(Format.offset(offsets.upperBound - 1))",
        ]
        if isNull {
            parts.append("null region")
        } else {
            parts += ["fill \(Format.percent(fill))", "allocations \(allocations)", "free chunks \(freeChunks)"]
        }
        parts.append("1 cell = \(Format.counted(blocksPerCell, "block")) (\(Format.bytes(blocksPerCell * blockSize)))")
        return parts.joined(separator: glyphs.dot)
    }
}

/// Draws the parts every screen shares and the main view's heatmap and panel.
struct MainView {
    let frame: LiveFrame
    let state: ViewState
    let layout: ScreenLayout
    let now: ContinuousClock.Instant
    /// Why the file cannot be read, while it cannot (the frame is then the last good one).
    var detachment: Detachment?
    var glyphs: GlyphSet { state.glyphs }

    // MARK: - Title bar, banner, footer

    func drawTitle(into canvas: inout Canvas) {
        let row = layout.titleRow
        canvas.fill(" ", row: row, column: 0, count: layout.width, style: CellStyle(.title))
        let geometry = frame.snapshot.geometry
        let writers = frame.statistics.aliveOwnerCount.map { "writers \($0)" } ?? "writers ?"
        let titleStatus = TitleStatus(paused: state.paused, detachment: detachment)
        let status = "\(glyphs.liveMark) \(titleStatus.rawValue)"
        // The facts, most detailed first; the first that leaves the path some room is shown.
        let geometries = [
            "\(Format.bytes(geometry.minSize))..\(Format.bytes(geometry.maxSize)) \(glyphs.times) \(Format.counted(geometry.blockCount, "block")) = \(Format.bytes(geometry.capacity))",
            "\(Format.bytes(geometry.capacity)) in \(Format.counted(geometry.blockCount, "block"))",
            Format.bytes(geometry.capacity),
        ]
        let name = " shmtop "
        let minimumPath = 12
        let rate = Format.hertz(interval: state.interval)
        let fixedWidth = name.count + minimumPath + status.unicodeScalars.count + 4
        let candidates: [String] = geometries.map { [$0, rate, writers].joined(separator: glyphs.dot) }
        let facts = candidates.first { fixedWidth + $0.unicodeScalars.count <= layout.width } ?? ""
        let statusColumn = layout.width - status.unicodeScalars.count - 1
        let factsColumn = statusColumn - facts.unicodeScalars.count - 2
        var column = canvas.text(name, row: row, column: 0, style: CellStyle(.title, bold: true))
        let room = max(0, factsColumn - column - 1)
        let path = frame.snapshot.path
        let shownPath = path.unicodeScalars.count <= room ? path : "…" + String(String.UnicodeScalarView(path.unicodeScalars.suffix(max(0, room - 1))))
        column = canvas.text(shownPath, row: row, column: column, style: CellStyle(.title), maxWidth: room)
        canvas.text(facts, row: row, column: factsColumn, style: CellStyle(.title))
        // Anything but live is drawn as a pause: the picture is not moving.
        canvas.text(status, row: row, column: statusColumn, style: CellStyle(titleStatus == .live ? .titleLive : .titlePaused))
    }

    static func drawBanner(_ text: String, into canvas: inout Canvas, layout: ScreenLayout) {
        guard let row = layout.bannerRow else { return }
        canvas.fill(" ", row: row, column: 0, count: layout.width, style: CellStyle(.banner))
        canvas.text(" " + text, row: row, column: 0, style: CellStyle(.banner), maxWidth: layout.width)
    }

    /// The key line: the jump prompt, a flash message, or the key reminder.
    static func drawKeyLine(into canvas: inout Canvas, layout: ScreenLayout, state: ViewState, now: ContinuousClock.Instant, reminder: String) {
        let row = layout.keyRow
        canvas.fill(" ", row: row, column: 0, count: layout.width, style: .plain)
        if let input = state.jumpInput {
            let column = canvas.text(" jump to block number, or offset (0x1f400, 64MiB): ", row: row, column: 0, style: .accent)
            canvas.text(input + "_", row: row, column: column, style: CellStyle(.plain, bold: true))
        } else if let flash = state.flash, flash.until > now {
            canvas.text(" " + flash.text, row: row, column: 0, style: CellStyle(flash.isError ? .bad : .good, bold: true), maxWidth: layout.width)
        } else {
            canvas.text(reminder, row: row, column: 0, style: .muted, maxWidth: layout.width)
        }
    }

    static let keyReminder = " ?:help q:quit ←↑↓→:move ⏎:open +-:zoom /:jump space:pause s:snapshot r:rate"

    // MARK: - The main view

    func draw(into canvas: inout Canvas, cells: HeatmapCells) {
        drawTitle(into: &canvas)
        drawHeatmap(into: &canvas, cells: cells)
        for row in layout.body.rows { canvas.put(glyphs.vertical, row: row, column: layout.dividerColumn, style: .muted) }
        drawPanel(into: &canvas)
        drawSelection(into: &canvas, grid: cells.grid)
        Self.drawKeyLine(into: &canvas, layout: layout, state: state, now: now, reminder: Self.keyReminder)
    }

    private func drawHeatmap(into canvas: inout Canvas, cells: HeatmapCells) {
        let grid = cells.grid
        let region = layout.heatmap
        let snapshot = frame.snapshot
        let perCell = "\(Format.counted(grid.blocksPerCell, "block")) per cell"
        let scope = grid.showsEverything ? "all \(Format.counted(snapshot.geometry.blockCount, "block"))" : "rows \(grid.firstRow + 1)–\(min(grid.totalRows, grid.firstRow + grid.visibleRows)) of \(grid.totalRows)"
        let legendStart = canvas.text(" Heatmap", row: layout.heatmapLegendRow, column: 0, style: .heading)
        let info = " \(perCell)\(glyphs.dot)\(scope)"
        let after = canvas.text(info, row: layout.heatmapLegendRow, column: legendStart, style: .muted, maxWidth: layout.dividerColumn - legendStart)
        // The fill ramp, coloured as the cells are, when there is room.
        let ramp: [(Unicode.Scalar, Double)] = [(glyphs.emptyCell, 0), (glyphs.heatGlyph(fill: 0.2, isNull: false), 0.2),
            (glyphs.heatGlyph(fill: 0.45, isNull: false), 0.45), (glyphs.heatGlyph(fill: 0.7, isNull: false), 0.7),
            (glyphs.heatGlyph(fill: 1, isNull: false), 1)]
        let rampText = "  0%" + String(repeating: " ", count: ramp.count) + "100%"
        if after + rampText.count < layout.dividerColumn {
            let start = layout.dividerColumn - rampText.count - 1
            canvas.text("  0%", row: layout.heatmapLegendRow, column: start, style: .muted)
            for (index, (glyph, fill)) in ramp.enumerated() {
                canvas.put(glyph, row: layout.heatmapLegendRow, column: start + 4 + index, style: heatStyle(fill: fill))
            }
            canvas.text("100%", row: layout.heatmapLegendRow, column: start + 4 + ramp.count, style: .muted)
        }
        let selectedCell = grid.cell(ofBlock: state.selectedBlock)
        // With an owner highlighted, cells holding none of its allocations are dimmed.
        let owned = frame.highlightedBlocks.map { blocks in
            var owned = [Bool](repeating: false, count: grid.columns * grid.visibleRows)
            let firstCell = grid.firstRow * grid.columns
            for block in blocks where owned.indices.contains(grid.cell(ofBlock: block) - firstCell) {
                owned[grid.cell(ofBlock: block) - firstCell] = true
            }
            return owned
        }
        if let pid = state.highlightedOwner {
            canvas.text(" pid \(pid) highlighted (Esc) ", row: layout.heatmapLegendRow, column: after, style: CellStyle(.accent, bold: true),
                        maxWidth: max(0, layout.dividerColumn - after))
        }
        for row in 0..<grid.visibleRows {
            for column in 0..<grid.columns {
                let index = row * grid.columns + column
                guard let fill = cells.fill(index) else { continue }
                let cell = (grid.firstRow + row) * grid.columns + column
                var style = cells.isNull[index] || owned.map({ !$0[index] }) == true ? CellStyle.muted : heatStyle(fill: fill)
                if state.markChanges, cells.changed[index] {
                    style.bold = true
                    style.underline = state.colorMode == .monochrome
                }
                if cell == selectedCell { style = CellStyle(.selection, bold: true) }
                canvas.put(glyphs.heatGlyph(fill: fill, isNull: cells.isNull[index]), row: region.top + row, column: region.left + column, style: style)
            }
        }
    }

    func heatStyle(fill: Double) -> CellStyle {
        fill <= 0 ? .muted : CellStyle(.heat(Widgets.heatLevel(fill: fill, levels: Palette.heatLevels)))
    }

    private func drawSelection(into canvas: inout Canvas, grid: HeatmapGrid) {
        let blocks = grid.blocks(ofCell: grid.cell(ofBlock: state.selectedBlock))
        let snapshot = frame.snapshot
        let summary = SelectionSummary(snapshot: snapshot, blocks: blocks)
        let text = summary.text(glyphs: glyphs, blocksPerCell: grid.blocksPerCell, blockSize: snapshot.geometry.blockSize,
                                isNull: blocks.upperBound <= snapshot.layout.nullBlockCount)
        canvas.fill(" ", row: layout.selectionRow, column: 0, count: layout.width, style: CellStyle(.selection))
        canvas.text(" " + text, row: layout.selectionRow, column: 0, style: CellStyle(.selection), maxWidth: layout.width)
    }

    // MARK: - The panel

    /// The panel's first heading, with how often the whole cache is read (the refresh rate of a
    /// cache small enough to read whole at every refresh, less for a larger one) and the age of
    /// the figures: every figure, owners included, is as old as the part of the cache read
    /// longest ago (0 while each refresh reads it whole).
    static func memoryHeading(sweepSeconds: Double, figuresAge: Duration, glyphs: GlyphSet) -> String {
        let period = Duration.microseconds(Int((sweepSeconds * 1e6).rounded()))
        // Slower than once a second, the period reads better than a rate of "0.0 Hz".
        let rate = sweepSeconds <= 0 ? "read at –" : sweepSeconds <= 1 ? "read at \(Format.hertz(interval: period))" : "read every \(Format.age(period))"
        return "Memory\(glyphs.dot)\(rate)\(glyphs.dot)figures \(Format.age(figuresAge)) old"
    }

    private func drawPanel(into canvas: inout Canvas) {
        let panel = layout.panel
        var writer = PanelWriter(region: Region(top: panel.top, left: panel.left + 1, width: panel.width - 1, height: panel.height))
        let statistics = frame.statistics
        let rates = frame.rates

        writer.heading(Self.memoryHeading(sweepSeconds: frame.sweepSeconds, figuresAge: frame.figuresAge, glyphs: glyphs), into: &canvas)
        writer.bar(label: "used", fraction: statistics.utilisation, text: Format.percent(statistics.utilisation), glyphs: glyphs,
                   style: heatStyle(fill: max(0.01, statistics.utilisation)), into: &canvas)
        writer.pairs([
            ("alloc", Format.bytes(statistics.allocatedBytes)), ("free", Format.bytes(statistics.freeBytes)),
            ("request", statistics.requestedBytes.map(Format.bytes) ?? "–"),
            ("int frag", statistics.internalFragmentationBytes.map(Format.bytes) ?? "–"),
            ("live", "\(statistics.liveAllocations)"), ("largest", Format.bytes(statistics.largestFreeChunk)),
            ("ext frag", Format.percent(statistics.externalFragmentation)),
            ("leaked", statistics.leakedBytes.map(Format.bytes) ?? "–"),
            ("allocs/s", Format.count(rates.allocationsPerSecond)), ("frees/s", Format.count(rates.freesPerSecond)),
            ("net", Format.byteRate(rates.netBytesPerSecond, signed: true)),
            ("blocks/s", Format.count(rates.blocksChangedPerSecond)),
        ], into: &canvas)
        writer.sparkline(label: "history", values: frame.utilisationHistory, glyphs: glyphs, into: &canvas)

        writer.heading("Free chunks by size (buddyinfo)", into: &canvas)
        writer.sizeClassHeader(into: &canvas)
        let classes = statistics.sizeClasses
        let most = max(1, classes.map(\.freeChunks).max() ?? 1)
        for sizeClass in classes.reversed() {
            writer.sizeClass(sizeClass, scale: most, glyphs: glyphs, into: &canvas)
        }
        let blocks = statistics.blocks
        writer.line("blocks  empty \(blocks.empty)  partial \(blocks.partial)  full \(blocks.full)", style: .plain, into: &canvas)
        if let owners = statistics.owners {
            let alive = owners.filter(\.alive).count
            writer.line(
                "owners  \(alive) alive  \(owners.count - alive) dead  (o: table)", style: owners.count > alive ? .init(.warning) : .plain,
                into: &canvas)
        }
        if statistics.invalidWords > 0 {
            writer.line("INVALID WORDS \(statistics.invalidWords): the cache is corrupt", style: CellStyle(.bad, bold: true), into: &canvas)
        }
        if statistics.failedAllocations > 0 {
            writer.line("failed allocations \(statistics.failedAllocations)", style: CellStyle(.warning), into: &canvas)
        }
    }
}

/// Writes the panel's lines top to bottom, stopping at its last row.
struct PanelWriter {
    let region: Region
    private(set) var row: Int

    init(region: Region) {
        self.region = region
        row = region.top
    }

    private var hasRoom: Bool { row < region.top + region.height }

    mutating func heading(_ text: String, into canvas: inout Canvas) {
        line(text, style: .heading, into: &canvas)
    }

    mutating func line(_ text: String, style: CellStyle, into canvas: inout Canvas) {
        guard hasRoom else { return }
        canvas.text(text, row: row, column: region.left, style: style, maxWidth: region.width)
        row += 1
    }

    mutating func bar(label: String, fraction: Double, text: String, glyphs: GlyphSet, style: CellStyle, into canvas: inout Canvas) {
        guard hasRoom else { return }
        let labelWidth = 10, valueWidth = 7
        canvas.text(label, row: row, column: region.left, style: .plain)
        let width = region.width - labelWidth - valueWidth - 1
        let (filled, track) = Widgets.bar(fraction: fraction, width: width, glyphs: glyphs)
        var column = region.left + labelWidth
        for glyph in filled { canvas.put(glyph, row: row, column: column, style: style); column += 1 }
        canvas.fill(glyphs.barTrack, row: row, column: column, count: track, style: .muted)
        canvas.text(Format.right(text, valueWidth), row: row, column: region.left + region.width - valueWidth, style: CellStyle(.plain, bold: true))
        row += 1
    }

    /// Label–value pairs, two per line: label left, value right-aligned in each half.
    mutating func pairs(_ items: [(label: String, value: String)], into canvas: inout Canvas) {
        let half = region.width / 2
        for start in stride(from: 0, to: items.count, by: 2) {
            guard hasRoom else { return }
            for (index, item) in items[start..<min(items.count, start + 2)].enumerated() {
                let left = region.left + index * half
                let width = half - 1
                let valueWidth = width - item.label.count - 1
                canvas.text(item.label, row: row, column: left, style: .muted)
                canvas.text(
                    Format.right(item.value, valueWidth), row: row, column: left + item.label.count + 1,
                    style: CellStyle(.plain, bold: true), maxWidth: valueWidth)
            }
            row += 1
        }
    }

    mutating func sparkline(label: String, values: [Double], glyphs: GlyphSet, into canvas: inout Canvas) {
        guard hasRoom else { return }
        let labelWidth = 10
        canvas.text(label, row: row, column: region.left, style: .muted)
        let line = Widgets.sparkline(values, width: region.width - labelWidth - 1, glyphs: glyphs)
        for (offset, glyph) in line.enumerated() {
            canvas.put(glyph, row: row, column: region.left + labelWidth + offset, style: CellStyle(.accent))
        }
        row += 1
    }

    /// Columns of a size class line: size, bar, free chunk count, blocks whose largest free chunk is
    /// this size (what the placement policy works with), unusable free index, fragmentation index.
    static let sizeWidth = 7, countWidth = 8, blocksWidth = 7, indexWidth = 6
    static var figuresWidth: Int { countWidth + blocksWidth + 2 * indexWidth }

    mutating func sizeClassHeader(into canvas: inout Canvas) {
        guard hasRoom else { return }
        let columns = Format.right("chunks", Self.countWidth) + Format.right("blocks", Self.blocksWidth)
            + Format.right("unus", Self.indexWidth) + Format.right("frag", Self.indexWidth)
        canvas.text(Format.right("size", Self.sizeWidth - 1), row: row, column: region.left, style: .muted)
        canvas.text(columns, row: row, column: region.left + region.width - Self.figuresWidth, style: .muted)
        row += 1
    }

    mutating func sizeClass(_ sizeClass: CacheStatistics.SizeClass, scale: Int, glyphs: GlyphSet, into canvas: inout Canvas) {
        guard hasRoom else { return }
        canvas.text(Format.right(Format.bytes(sizeClass.size), Self.sizeWidth - 1), row: row, column: region.left, style: .plain)
        let barWidth = region.width - Self.sizeWidth - Self.figuresWidth
        let (filled, _) = Widgets.bar(fraction: Double(sizeClass.freeChunks) / Double(scale), width: barWidth, glyphs: glyphs)
        for (offset, glyph) in filled.enumerated() {
            canvas.put(glyph, row: row, column: region.left + Self.sizeWidth + offset, style: CellStyle(.good))
        }
        let figures = Format.right("\(sizeClass.freeChunks)", Self.countWidth)
            + Format.right("\(sizeClass.blocksWithLargestFreeChunk)", Self.blocksWidth)
            + Format.right(Format.fixed(sizeClass.unusableFreeIndex, digits: 2), Self.indexWidth)
            // A dash where a request of this size would succeed (the kernel's −1), as the snapshot does.
            + Format.right(
                sizeClass.failingFragmentationIndex.map { Format.fixed($0, digits: 2) } ?? (glyphs.snapshot == .unicode ? "—" : "-"),
                Self.indexWidth)
        canvas.text(figures, row: row, column: region.left + region.width - figures.count, style: .plain)
        row += 1
    }
}
