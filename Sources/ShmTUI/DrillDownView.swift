// The drill-down: one block's buddy tree, row per level, its raw word, and its allocations.

import ShmInspect

/// Draws a ``BlockDetail``: the tree as stacked spans, the word in binary and hex, the allocation list.
struct DrillDownView {
    let detail: BlockDetail
    let state: ViewState
    let layout: ScreenLayout
    let now: ContinuousClock.Instant
    var glyphs: GlyphSet { state.glyphs }

    static let keyReminder = " Esc:back Tab ↑↓:allocation ←→:neighbour s:snapshot space:pause ?:help q:quit"
    /// The size column left of the tree rows.
    static let labelWidth = 8

    /// The width of a tree row: a whole number of cells per leaf, filling the screen.
    static func treeRowWidth(screenWidth: Int, leafCount: Int) -> Int {
        max(leafCount, (screenWidth - labelWidth - 2) / leafCount * leafCount)
    }

    /// The owner colour of each allocated node, and of each node inside an allocation (its ancestor's).
    private var ownerByNode: [Int: Int32] {
        var owners: [Int: Int32] = [:]
        for allocation in detail.allocations { owners[allocation.node] = allocation.ownerPID ?? 0 }
        return owners
    }

    private func ownerStyle(_ pid: Int32) -> CellStyle {
        CellStyle(.owner(Int(UInt32(bitPattern: pid)) % Palette.ownerColors))
    }

    func draw(into canvas: inout Canvas) {
        let body = layout.body
        var row = body.top
        var heading =
            "Block \(detail.block)\(glyphs.dot)\(Format.offset(detail.offsets.lowerBound))–\(Format.offset(detail.offsets.upperBound - 1))"
        if detail.isNullBlock {
            heading += "\(glyphs.dot)null region (reserved)"
        } else {
            heading +=
                "\(glyphs.dot)fill \(Format.percent(detail.fill))\(glyphs.dot)\(Format.counted(detail.allocations.count, "allocation"))"
                + "\(glyphs.dot)\(Format.counted(detail.freeChunkCount, "free chunk"))"
        }
        canvas.text(" " + heading, row: row, column: 0, style: .heading, maxWidth: layout.width)
        row += 1

        row = drawTree(into: &canvas, from: row)
        let legend: [(Unicode.Scalar, String, CellStyle)] = [
            (glyph(.allocation), "allocation (owner colour)", ownerStyle(1)),
            (glyph(.insideAllocation), "inside an allocation", ownerStyle(1)),
            (glyph(.split), "split", .muted), (glyph(.maximalFree), "free chunk", CellStyle(.good)),
            (glyph(.free), "free inside a chunk", .muted), (glyph(.invalid), "invalid", CellStyle(.bad)),
        ]
        var column = Self.labelWidth + 1
        for (symbol, text, style) in legend {
            canvas.put(symbol, row: row, column: column, style: style)
            column = canvas.text(" \(text)  ", row: row, column: column + 1, style: .muted)
        }
        row += 1
        canvas.text(Format.right("word", Self.labelWidth - 1), row: row, column: 0, style: .muted)
        canvas.text(Format.binaryWord(detail.word), row: row, column: Self.labelWidth + 1, style: .plain)
        row += 1
        canvas.text(Format.right("hex", Self.labelWidth - 1), row: row, column: 0, style: .muted)
        let after = canvas.text(Format.hexWord(detail.word), row: row, column: Self.labelWidth + 1, style: .plain)
        canvas.text(
            detail.isValid ? "  valid" : "  INVALID: a set node has a clear child", row: row, column: after,
            style: detail.isValid ? CellStyle(.good) : CellStyle(.bad, bold: true))
        row += 2
        drawAllocations(into: &canvas, from: row)
        drawSelection(into: &canvas)
        MainView.drawKeyLine(into: &canvas, layout: layout, state: state, now: now, reminder: Self.keyReminder)
    }

    private func glyph(_ state: NodeState) -> Unicode.Scalar {
        glyphs.snapshot.glyph(for: state).unicodeScalars.first ?? " "
    }

    /// One row per level, root first; each node spans a width proportional to its size.
    private func drawTree(into canvas: inout Canvas, from top: Int) -> Int {
        let width = Self.treeRowWidth(screenWidth: layout.width, leafCount: detail.leafCount)
        let owners = ownerByNode
        let selectedNode =
            detail.allocations.indices.contains(state.selectedAllocation)
            ? detail.allocations[state.selectedAllocation].node : nil
        var row = top
        for (level, states) in detail.levels.enumerated() {
            canvas.text(
                Format.right(Format.bytes(detail.nodeSize(atLevel: level)), Self.labelWidth - 1), row: row, column: 0,
                style: .muted)
            let span = width >> level
            for (position, nodeState) in states.enumerated() {
                let node = (1 << level) + position
                var style: CellStyle
                switch nodeState {
                case .allocation: style = ownerStyle(owners[node] ?? 0)
                case .insideAllocation:
                    var ancestor = node >> 1
                    while ancestor > 1, owners[ancestor] == nil { ancestor >>= 1 }
                    style = ownerStyle(owners[ancestor] ?? 0)
                case .maximalFree: style = CellStyle(.good)
                case .invalid: style = CellStyle(.bad, bold: true)
                case .split, .free: style = .muted
                }
                if node == selectedNode { style = CellStyle(.selection, bold: true) }
                let start = Self.labelWidth + 1 + position * span
                canvas.put(glyphs.vertical, row: row, column: start, style: .muted)
                canvas.fill(glyph(nodeState), row: row, column: start + 1, count: span - 1, style: style)
            }
            canvas.put(glyphs.vertical, row: row, column: Self.labelWidth + 1 + width, style: .muted)
            row += 1
        }
        return row
    }

    /// Columns of the allocation list.
    private static let header = "  offset        node  requested    owner  state  "

    private func drawAllocations(into canvas: inout Canvas, from top: Int) {
        let bottom = layout.selectionRow
        guard top < bottom else { return }
        let textWidth = max(8, min(32, (layout.width - Self.header.count) / 2))
        canvas.text(" Allocations (\(detail.allocations.count))", row: top, column: 0, style: .heading)
        canvas.text(
            Self.header + Format.left("first bytes", textWidth + 2) + "hex", row: top + 1, column: 0, style: .muted,
            maxWidth: layout.width)
        let rows = bottom - top - 2
        guard rows > 0 else { return }
        if detail.allocations.isEmpty {
            canvas.text("  (no allocations in this block)", row: top + 2, column: 0, style: .muted)
            return
        }
        let first = max(0, min(state.selectedAllocation - rows + 1, detail.allocations.count - rows))
        for (line, index) in (first..<min(detail.allocations.count, first + rows)).enumerated() {
            let allocation = detail.allocations[index]
            let selected = index == state.selectedAllocation
            let row = top + 2 + line
            let marker = selected ? String(glyphs.pointer) : " "
            let owner = allocation.ownerPID.map { "\($0)" } ?? "?"
            let alive = allocation.ownerAlive.map { $0 ? "alive" : "dead " } ?? "?    "
            let fields =
                "\(marker) \(Format.offset(allocation.offset))  \(Format.right(Format.bytes(allocation.nodeSize), 7))  "
                + "\(Format.right(allocation.requestedSize.map { "\($0)" } ?? "?", 9))  \(Format.right(owner, 7))  \(alive)  "
            let hexCount = max(0, (layout.width - fields.count - textWidth - 2) / 3)
            let text =
                Format.left(Format.printable(allocation.firstBytes.prefix(textWidth)), textWidth) + "  "
                + Format.hexBytes(allocation.firstBytes.prefix(hexCount))
            let base = selected ? CellStyle(.selection, bold: true) : .plain
            if selected { canvas.fill(" ", row: row, column: 0, count: layout.width, style: base) }
            var column = canvas.text(fields, row: row, column: 0, style: base)
            if !selected, let pid = allocation.ownerPID {
                // The owner's pid in its colour, and a dead owner's state in the warning colour.
                let pidColumn = fields.count - 7 - 2 - 5 - 2
                canvas.text(Format.right(owner, 7), row: row, column: pidColumn, style: ownerStyle(pid))
                if allocation.ownerAlive == false {
                    canvas.text("dead", row: row, column: pidColumn + 9, style: CellStyle(.warning, bold: true))
                }
            }
            column = canvas.text(
                text, row: row, column: column, style: selected ? base : .plain, maxWidth: layout.width - column)
        }
    }

    private func drawSelection(into canvas: inout Canvas) {
        let row = layout.selectionRow
        canvas.fill(" ", row: row, column: 0, count: layout.width, style: CellStyle(.selection))
        var text = "block \(detail.block)"
        if detail.allocations.indices.contains(state.selectedAllocation) {
            let allocation = detail.allocations[state.selectedAllocation]
            text +=
                "\(glyphs.dot)allocation \(state.selectedAllocation + 1) of \(detail.allocations.count)"
                + "\(glyphs.dot)offset \(Format.offset(allocation.offset))\(glyphs.dot)node \(Format.bytes(allocation.nodeSize))"
            if let pid = allocation.ownerPID, let requested = allocation.requestedSize {
                text +=
                    "\(glyphs.dot)requested \(requested) B\(glyphs.dot)owner \(pid)"
                    + (allocation.ownerAlive == true ? " (alive)" : " (dead: leaked)")
            } else {
                text += "\(glyphs.dot)no readable header"
            }
        }
        canvas.text(" " + text, row: row, column: 0, style: CellStyle(.selection), maxWidth: layout.width)
    }
}

/// The key list shown by `?`, in a box over the current screen.
struct HelpOverlay {
    static let entries: [(String, String)] = [
        ("←↑↓→  h j k l", "move the selection"),
        ("PgUp PgDn", "move a screen up / down"),
        ("g  G", "first / last block"),
        ("+  -", "zoom in / out (blocks per cell)"),
        ("/", "jump to a block number or an offset"),
        ("Enter", "open the selected block (drill-down)"),
        ("Tab  ↑↓", "drill-down: next / previous allocation"),
        ("←→  [ ]", "drill-down: neighbouring block"),
        ("Esc  Backspace", "back to the heatmap; there, stop highlighting"),
        ("o", "owner table (Enter highlights an owner's blocks)"),
        ("<  >  F6   I", "owner table: sort column left / right, invert"),
        ("Space", "pause the picture (sampling goes on)"),
        ("s", "write a text snapshot to a file"),
        ("r", "change the refresh rate"),
        ("c", "cycle colours: 256 / 8 / monochrome"),
        ("f", "mark blocks changed since the last frame"),
        ("mouse click", "select a block"),
        ("q  Ctrl-C", "quit"),
    ]

    static func draw(into canvas: inout Canvas, layout: ScreenLayout, state: ViewState) {
        let glyphs = state.glyphs
        let keyWidth = 16
        let width = min(layout.width - 4, 62)
        let height = min(layout.body.height, entries.count + 4)
        let left = (layout.width - width) / 2
        let top = layout.body.top + max(0, (layout.body.height - height) / 2)
        for row in top..<(top + height) { canvas.fill(" ", row: row, column: left, count: width, style: .plain) }
        canvas.fill(glyphs.horizontal, row: top, column: left + 1, count: width - 2, style: .accent)
        canvas.fill(glyphs.horizontal, row: top + height - 1, column: left + 1, count: width - 2, style: .accent)
        for row in (top + 1)..<(top + height - 1) {
            canvas.put(glyphs.vertical, row: row, column: left, style: .accent)
            canvas.put(glyphs.vertical, row: row, column: left + width - 1, style: .accent)
        }
        canvas.put(glyphs.topLeft, row: top, column: left, style: .accent)
        canvas.put(glyphs.topRight, row: top, column: left + width - 1, style: .accent)
        canvas.put(glyphs.bottomLeft, row: top + height - 1, column: left, style: .accent)
        canvas.put(glyphs.bottomRight, row: top + height - 1, column: left + width - 1, style: .accent)
        canvas.text(" Keys ", row: top, column: left + 2, style: .accent)
        let shown = entries.prefix(height - 4)
        for (index, (keys, meaning)) in shown.enumerated() {
            let row = top + 2 + index
            canvas.text(keys, row: row, column: left + 2, style: CellStyle(.plain, bold: true), maxWidth: keyWidth)
            canvas.text(meaning, row: row, column: left + 2 + keyWidth, style: .plain, maxWidth: width - keyWidth - 4)
        }
        canvas.text(" any key closes ", row: top + height - 1, column: left + width - 18, style: .muted)
    }
}
