// The panel's lines, written top to bottom within its region.

import ShmInspect

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

    mutating func bar(
        label: String, fraction: Double, text: String, glyphs: GlyphSet, style: CellStyle, into canvas: inout Canvas
    ) {
        guard hasRoom else { return }
        let labelWidth = 10
        let valueWidth = 7
        canvas.text(label, row: row, column: region.left, style: .plain)
        let width = region.width - labelWidth - valueWidth - 1
        let (filled, track) = Widgets.bar(fraction: fraction, width: width, glyphs: glyphs)
        var column = region.left + labelWidth
        for glyph in filled {
            canvas.put(glyph, row: row, column: column, style: style)
            column += 1
        }
        canvas.fill(glyphs.barTrack, row: row, column: column, count: track, style: .muted)
        canvas.text(
            Format.right(text, valueWidth), row: row, column: region.left + region.width - valueWidth,
            style: CellStyle(.plain, bold: true))
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
        let columns =
            Format.right("chunks", Self.countWidth) + Format.right("blocks", Self.blocksWidth)
            + Format.right("unus", Self.indexWidth) + Format.right("frag", Self.indexWidth)
        canvas.text(Format.right("size", Self.sizeWidth - 1), row: row, column: region.left, style: .muted)
        canvas.text(columns, row: row, column: region.left + region.width - Self.figuresWidth, style: .muted)
        row += 1
    }

    mutating func sizeClass(
        _ sizeClass: CacheStatistics.SizeClass, scale: Int, glyphs: GlyphSet, into canvas: inout Canvas
    ) {
        guard hasRoom else { return }
        canvas.text(
            Format.right(Format.bytes(sizeClass.size), Self.sizeWidth - 1), row: row, column: region.left, style: .plain
        )
        let barWidth = region.width - Self.sizeWidth - Self.figuresWidth
        let (filled, _) = Widgets.bar(
            fraction: Double(sizeClass.freeChunks) / Double(scale), width: barWidth, glyphs: glyphs)
        for (offset, glyph) in filled.enumerated() {
            canvas.put(glyph, row: row, column: region.left + Self.sizeWidth + offset, style: CellStyle(.good))
        }
        let figures =
            Format.right("\(sizeClass.freeChunks)", Self.countWidth)
            + Format.right("\(sizeClass.blocksWithLargestFreeChunk)", Self.blocksWidth)
            + Format.right(Format.fixed(sizeClass.unusableFreeIndex, digits: 2), Self.indexWidth)
            // A dash where a request of this size would succeed (the kernel's −1), as the snapshot does.
            + Format.right(
                sizeClass.failingFragmentationIndex.map { Format.fixed($0, digits: 2) }
                    ?? (glyphs.snapshot == .unicode ? "—" : "-"),
                Self.indexWidth)
        canvas.text(figures, row: row, column: region.left + region.width - figures.count, style: .plain)
        row += 1
    }
}
