// The main view: title bar, heatmap, fragmentation panel and footer, drawn from one frame.

import ShmInspect

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
        let cache = frame.snapshot
        let writers = frame.statistics.aliveOwnerCount.map { "writers \($0)" } ?? "writers ?"
        let titleStatus = TitleStatus(paused: state.paused, detachment: detachment)
        let status = "\(glyphs.liveMark) \(titleStatus.rawValue)"
        // The facts, most detailed first; the first that leaves the path some room is shown.
        let geometries = [
            "\(Format.bytes(cache.minSize))..\(Format.bytes(cache.maxSize)) \(glyphs.times) \(Format.counted(cache.blockCount, "block")) = \(Format.bytes(cache.capacity))",
            "\(Format.bytes(cache.capacity)) in \(Format.counted(cache.blockCount, "block"))",
            Format.bytes(cache.capacity),
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
        let shownPath =
            path.unicodeScalars.count <= room
            ? path : "…" + String(String.UnicodeScalarView(path.unicodeScalars.suffix(max(0, room - 1))))
        column = canvas.text(shownPath, row: row, column: column, style: CellStyle(.title), maxWidth: room)
        canvas.text(facts, row: row, column: factsColumn, style: CellStyle(.title))
        // Anything but live is drawn as a pause: the picture is not moving.
        canvas.text(
            status, row: row, column: statusColumn, style: CellStyle(titleStatus == .live ? .titleLive : .titlePaused))
    }

    static func drawBanner(_ text: String, into canvas: inout Canvas, layout: ScreenLayout) {
        guard let row = layout.bannerRow else { return }
        canvas.fill(" ", row: row, column: 0, count: layout.width, style: CellStyle(.banner))
        canvas.text(" " + text, row: row, column: 0, style: CellStyle(.banner), maxWidth: layout.width)
    }

    /// The key line: the jump prompt, a flash message, or the key reminder.
    static func drawKeyLine(
        into canvas: inout Canvas, layout: ScreenLayout, state: ViewState, now: ContinuousClock.Instant,
        reminder: String
    ) {
        let row = layout.keyRow
        canvas.fill(" ", row: row, column: 0, count: layout.width, style: .plain)
        if let input = state.jumpInput {
            let column = canvas.text(
                " jump to block number, or offset (0x1f400, 64MiB): ", row: row, column: 0, style: .accent)
            canvas.text(input + "_", row: row, column: column, style: CellStyle(.plain, bold: true))
        } else if let flash = state.flash, flash.until > now {
            canvas.text(
                " " + flash.text, row: row, column: 0, style: CellStyle(flash.isError ? .bad : .good, bold: true),
                maxWidth: layout.width)
        } else {
            canvas.text(reminder, row: row, column: 0, style: .muted, maxWidth: layout.width)
        }
    }

    static let keyReminder = " ?:help q:quit ←↑↓→:move ⏎:open +-:zoom /:jump space:pause s:snapshot r:rate"

    // MARK: - The main view

    func draw(into canvas: inout Canvas, cells: HeatmapCells) {
        drawTitle(into: &canvas)
        drawHeatmap(into: &canvas, cells: cells)
        for row in layout.body.rows {
            canvas.put(glyphs.vertical, row: row, column: layout.dividerColumn, style: .muted)
        }
        drawPanel(into: &canvas)
        drawSelection(into: &canvas, grid: cells.grid)
        Self.drawKeyLine(into: &canvas, layout: layout, state: state, now: now, reminder: Self.keyReminder)
    }

    private func drawHeatmap(into canvas: inout Canvas, cells: HeatmapCells) {
        let grid = cells.grid
        let region = layout.heatmap
        let snapshot = frame.snapshot
        let perCell = "\(Format.counted(grid.blocksPerCell, "block")) per cell"
        let scope =
            grid.showsEverything
            ? "all \(Format.counted(snapshot.blockCount, "block"))"
            : "rows \(grid.firstRow + 1)–\(min(grid.totalRows, grid.firstRow + grid.visibleRows)) of \(grid.totalRows)"
        let legendStart = canvas.text(" Heatmap", row: layout.heatmapLegendRow, column: 0, style: .heading)
        let info = " \(perCell)\(glyphs.dot)\(scope)"
        let after = canvas.text(
            info, row: layout.heatmapLegendRow, column: legendStart, style: .muted,
            maxWidth: layout.dividerColumn - legendStart)
        let heatGlyphs = glyphs.heatGlyphs
        // The fill ramp, coloured as the cells are, when there is room.
        let ramp: [(Unicode.Scalar, Double)] = [
            (glyphs.emptyCell, 0), (heatGlyphs.glyph(fill: 0.2, isNull: false), 0.2),
            (heatGlyphs.glyph(fill: 0.45, isNull: false), 0.45), (heatGlyphs.glyph(fill: 0.7, isNull: false), 0.7),
            (heatGlyphs.glyph(fill: 1, isNull: false), 1),
        ]
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
            let firstCell = grid.firstRow * grid.columns
            return (firstCell..<(firstCell + grid.columns * grid.visibleRows)).map { cell in
                cell < grid.cellCount && blocks.intersects(grid.blocks(ofCell: cell))
            }
        }
        if let pid = state.highlightedOwner {
            canvas.text(
                " pid \(pid) highlighted (Esc) ", row: layout.heatmapLegendRow, column: after,
                style: CellStyle(.accent, bold: true),
                maxWidth: max(0, layout.dividerColumn - after))
        }
        let marksChanges = state.markChanges
        let underlinesChanges = state.colorMode == .monochrome
        for row in 0..<grid.visibleRows {
            let rowStart = row * grid.columns
            let firstCellOfRow = (grid.firstRow + row) * grid.columns
            // Past the last block, no cell is drawn.
            let drawn = min(grid.columns, max(0, grid.cellCount - firstCellOfRow))
            canvas.put(row: region.top + row, column: region.left, count: drawn) { column in
                let index = rowStart + column
                let fill = cells.fill(index) ?? 0
                let isNull = cells.isNull[index]
                var style = isNull || owned?[index] == false ? CellStyle.muted : heatStyle(fill: fill)
                if marksChanges, cells.changed[index] {
                    style.bold = true
                    style.underline = underlinesChanges
                }
                if firstCellOfRow + column == selectedCell { style = CellStyle(.selection, bold: true) }
                return Cell(character: heatGlyphs.glyph(fill: fill, isNull: isNull), style: style)
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
        let text = summary.text(
            glyphs: glyphs, blocksPerCell: grid.blocksPerCell, blockSize: snapshot.blockSize,
            isNull: blocks.upperBound <= snapshot.nullBlockCount)
        canvas.fill(" ", row: layout.selectionRow, column: 0, count: layout.width, style: CellStyle(.selection))
        canvas.text(
            " " + text, row: layout.selectionRow, column: 0, style: CellStyle(.selection), maxWidth: layout.width)
    }

    // MARK: - The panel

    /// The panel's first heading, with how often the whole cache is read (the refresh rate of a
    /// cache small enough to read whole at every refresh, less for a larger one) and the age of
    /// the figures: every figure, owners included, is as old as the part of the cache read
    /// longest ago (0 while each refresh reads it whole).
    static func memoryHeading(sweepSeconds: Double, figuresAge: Duration, glyphs: GlyphSet) -> String {
        let period = Duration.microseconds(Int((sweepSeconds * 1e6).rounded()))
        // Slower than once a second, the period reads better than a rate of "0.0 Hz".
        let rate =
            sweepSeconds <= 0
            ? "read at –"
            : sweepSeconds <= 1 ? "read at \(Format.hertz(interval: period))" : "read every \(Format.age(period))"
        return "Memory\(glyphs.dot)\(rate)\(glyphs.dot)figures \(Format.age(figuresAge)) old"
    }

    private func drawPanel(into canvas: inout Canvas) {
        let panel = layout.panel
        var writer = PanelWriter(
            region: Region(top: panel.top, left: panel.left + 1, width: panel.width - 1, height: panel.height))
        let statistics = frame.statistics
        let rates = frame.rates

        writer.heading(
            Self.memoryHeading(sweepSeconds: frame.sweepSeconds, figuresAge: frame.figuresAge, glyphs: glyphs),
            into: &canvas)
        writer.bar(
            label: "used", fraction: statistics.utilisation, text: Format.percent(statistics.utilisation),
            glyphs: glyphs,
            style: heatStyle(fill: max(0.01, statistics.utilisation)), into: &canvas)
        writer.pairs(
            [
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
        writer.line(
            "blocks  empty \(blocks.empty)  partial \(blocks.partial)  full \(blocks.full)", style: .plain,
            into: &canvas)
        if let owners = statistics.owners {
            let alive = owners.filter(\.alive).count
            writer.line(
                "owners  \(alive) alive  \(owners.count - alive) dead  (o: table)",
                style: owners.count > alive ? .init(.warning) : .plain,
                into: &canvas)
        }
        if statistics.invalidWords > 0 {
            writer.line(
                "INVALID WORDS \(statistics.invalidWords): the cache is corrupt", style: CellStyle(.bad, bold: true),
                into: &canvas)
        }
        if statistics.failedAllocations > 0 {
            writer.line("failed allocations \(statistics.failedAllocations)", style: CellStyle(.warning), into: &canvas)
        }
        if let pathCache = frame.pathCache { drawPathCache(pathCache, into: &canvas, writer: &writer) }
    }

    /// The path cache's section: its walk's figures (with the walk's age), the searches, hits and
    /// inserts per second and the hit rate over the rate window, the searches and the hit rate
    /// since the processes attached, and the windowed hit rate's history.
    private func drawPathCache(_ panel: PathCachePanel, into canvas: inout Canvas, writer: inout PanelWriter) {
        let report = panel.report
        guard panel.hasPathCache else {
            writer.heading("Path cache\(glyphs.dot)no path cache yet", into: &canvas)
            return
        }
        let age = Duration.microseconds(Int((report.figuresAgeSeconds * 1e6).rounded()))
        let walk = report.walk
        let state = walk == nil ? "first walk running" : "walk \(Format.age(age)) old"
        writer.heading("Path cache" + glyphs.dot + state, into: &canvas)
        func rate(_ value: Double?) -> String { value.map(Format.count) ?? "–" }
        var pairs: [(label: String, value: String)] = []
        if let walk {
            pairs += [
                ("entries", "\(walk.entries)"), ("prefixes", "\(walk.prefixEntries)"),
                ("bytes", Format.bytes(walk.bytes)), ("paths", Format.bytes(walk.pathBytes)),
                ("tables", Format.bytes(walk.tableBytes)), ("entry nodes", Format.bytes(walk.entryBytes)),
                ("reclaim", "\(walk.nodesAwaitingReclamation)"), ("invalid", "\(walk.invalidSlots)"),
            ]
        }
        pairs += [
            ("searches/s", rate(report.searchesPerSecond)), ("inserts/s", rate(report.insertsPerSecond)),
            ("hits/s", rate(report.hitsPerSecond)), ("hit rate", report.windowHitRate.map(Format.percent) ?? "–"),
            // Since each process in the owner table attached, beside the rate window's figures.
            ("searches", Format.count(Double(report.searches))), ("overall", report.hitRate.map(Format.percent) ?? "–"),
        ]
        writer.pairs(pairs, into: &canvas)
        writer.sparkline(label: "history", values: panel.hitRateHistory, glyphs: glyphs, into: &canvas)
        guard let walk else { return }
        let depths = walk.depthHistogram.enumerated().map { "\($0.offset):\($0.element)" }.joined(separator: " ")
        writer.line("depth " + depths, style: .plain, into: &canvas)
        if walk.invalidSlots > 0 {
            writer.line(
                "INVALID SLOTS \(walk.invalidSlots): the path cache is damaged", style: CellStyle(.bad, bold: true),
                into: &canvas)
        }
    }
}
