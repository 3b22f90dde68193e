// The owner table (`o`): one row per process holding allocations, sortable by any column, as
// htop lists processes. Its figures are the frame's owner statistics, which the sampler keeps
// up to date from the blocks that changed, so they are as old as the panel's.

import ShmInspect

/// Draws the owner table of a frame.
struct OwnerTableView {
    let frame: LiveFrame
    let state: ViewState
    let layout: ScreenLayout
    let now: ContinuousClock.Instant
    var glyphs: GlyphSet { state.glyphs }

    /// Each column's width; numbers are right-aligned, words left-aligned.
    static func width(_ column: OwnerColumn) -> Int {
        switch column {
        case .pid: 8
        case .state: 7
        case .command: 16
        case .allocations: 12
        case .bytes, .requested: 11
        case .share: 7
        case .allocationsPerSecond, .freesPerSecond: 10
        }
    }

    /// The text of `owner`'s cell in `column`, as the panel writes figures.
    static func cell(_ column: OwnerColumn, of owner: OwnerAllocations) -> String {
        switch column {
        case .pid: "\(owner.pid)"
        case .state: owner.state.rawValue
        case .command: owner.command ?? (owner.state == .alive ? "?" : "–")
        case .allocations: "\(owner.allocations)"
        case .bytes: Format.bytes(owner.bytes)
        case .requested: Format.bytes(owner.requestedBytes)
        case .share: Format.percent(owner.share)
        case .allocationsPerSecond: owner.allocationsPerSecond.map(Format.count) ?? "–"
        case .freesPerSecond: owner.freesPerSecond.map(Format.count) ?? "–"
        }
    }

    /// `text` fitted to `column`'s width, aligned as the column is.
    static func fitted(_ text: String, _ column: OwnerColumn) -> String {
        let width = width(column)
        let clipped = String(text.prefix(width))
        return column.isNumeric
            ? Format.right(clipped, width) : clipped + String(repeating: " ", count: max(0, width - clipped.count))
    }

    /// The rows in the table's order.
    var rows: [OwnerAllocations] { state.ownerOrder.sorted(frame.statistics.owners ?? []) }

    static let keyReminder = " o/Esc:back ↑↓:select ⏎:highlight in heatmap <>/F6:sort column I:invert ?:help q:quit"

    func draw(into canvas: inout Canvas, detachment: Detachment?) {
        MainView(frame: frame, state: state, layout: layout, now: now, detachment: detachment).drawTitle(into: &canvas)
        let body = layout.body
        let owners = frame.statistics.owners ?? []
        let alive = owners.filter(\.alive).count
        // The path cache's nodes are not in the rows: its own figure, beside the leak (which excludes them).
        let heldByPathCache =
            frame.statistics.heldByPathCache.map {
                ", held by the path cache \(Format.bytes($0.bytes))"
            } ?? ""
        let heading =
            " Owners \(glyphs.dot)\(alive) alive \(glyphs.dot)\(owners.count - alive) not "
            + "(leaked \(Format.bytes(frame.statistics.leakedBytes ?? 0))\(heldByPathCache))"
            + "\(glyphs.dot)figures \(Format.age(frame.figuresAge)) old\(glyphs.dot)rates over \(Format.age(.milliseconds(Int(frame.rates.seconds * 1000))))"
        canvas.text(heading, row: body.top, column: 0, style: .heading, maxWidth: layout.width)
        var column = 1
        let marker = state.ownerOrder.descending ? glyphs.sortDescending : glyphs.sortAscending
        for owner in OwnerColumn.allCases {
            let sorted = owner == state.ownerOrder.column
            let title = sorted ? owner.title + String(marker) : owner.title
            canvas.text(
                Self.fitted(title, owner), row: body.top + 1, column: column,
                style: sorted ? CellStyle(.accent, bold: true) : .muted, maxWidth: max(0, layout.width - column))
            column += Self.width(owner) + 1
        }
        let rows = rows
        let visible = max(0, body.height - 2)
        let first = max(0, min(state.selectedOwnerRow - visible + 1, rows.count - visible))
        for (offset, owner) in rows.dropFirst(first).prefix(visible).enumerated() {
            let row = body.top + 2 + offset
            let index = first + offset
            var style: CellStyle = owner.state == .alive ? .plain : CellStyle(.warning)
            if index == state.selectedOwnerRow { style = CellStyle(.selection, bold: true) }
            canvas.fill(" ", row: row, column: 0, count: layout.width, style: style)
            let mark = owner.pid == state.highlightedOwner ? glyphs.pointer : " "
            var text = String(mark)
            for column in OwnerColumn.allCases { text += Self.fitted(Self.cell(column, of: owner), column) + " " }
            canvas.text(text, row: row, column: 0, style: style, maxWidth: layout.width)
        }
        if rows.isEmpty {
            canvas.text(" no allocations: no owners", row: body.top + 2, column: 0, style: .muted)
        }
        MainView.drawKeyLine(into: &canvas, layout: layout, state: state, now: now, reminder: Self.keyReminder)
    }
}
