// The characters the live view draws with: Unicode block elements, or ASCII for terminals and
// locales that cannot show them.

import ShmInspect

/// A character set for every widget of the live view.
struct GlyphSet: Hashable, Sendable {
    /// The heatmap and block-tree glyphs shared with `shmtop snapshot`'s text.
    let snapshot: SnapshotText.Glyphs
    /// An empty heatmap cell (drawn so the grid stays visible).
    let emptyCell: Unicode.Scalar
    /// A cell of the null region (reserved, never allocated).
    let nullCell: Unicode.Scalar
    /// Bar fills from one eighth to a whole cell; ASCII has only the whole one.
    let barEighths: [Unicode.Scalar]
    /// The empty part of a bar.
    let barTrack: Unicode.Scalar
    /// Sparkline levels from lowest to highest.
    let sparkline: [Unicode.Scalar]
    /// Box drawing: horizontal, vertical and the four corners (top-left, top-right, bottom-left, bottom-right).
    let horizontal, vertical, topLeft, topRight, bottomLeft, bottomRight: Unicode.Scalar
    /// Marks the live state in the title bar.
    let liveMark: Unicode.Scalar
    /// Marks the selected row of a list.
    let pointer: Unicode.Scalar
    /// Separates the parts of a status line.
    let dot: String
    /// "times", in geometry and size texts.
    let times: String
    /// Beside the heading of the column a table is sorted by: descending, ascending.
    var sortDescending: Unicode.Scalar = "▼", sortAscending: Unicode.Scalar = "▲"

    static let unicode = GlyphSet(
        snapshot: .unicode, emptyCell: "·", nullCell: "×",
        barEighths: ["▏", "▎", "▍", "▌", "▋", "▊", "▉", "█"], barTrack: "░",
        sparkline: ["▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"],
        horizontal: "─", vertical: "│", topLeft: "┌", topRight: "┐", bottomLeft: "└", bottomRight: "┘",
        liveMark: "●", pointer: "▸", dot: " · ", times: "×")

    static let ascii = GlyphSet(
        snapshot: .ascii, emptyCell: " ", nullCell: "x",
        barEighths: ["#"], barTrack: ".",
        sparkline: ["_", ".", "-", "=", "+", "*", "#", "@"],
        horizontal: "-", vertical: "|", topLeft: "+", topRight: "+", bottomLeft: "+", bottomRight: "+",
        liveMark: "*", pointer: ">", dot: " | ", times: "x", sortDescending: "v", sortAscending: "^")

    /// The glyph of a heatmap cell of mean fill `fill`.
    func heatGlyph(fill: Double, isNull: Bool) -> Unicode.Scalar { heatGlyphs.glyph(fill: fill, isNull: isNull) }

    /// The heatmap's glyphs as scalars, for drawing many cells (the snapshot's ramp holds
    /// characters, which take a string's work to turn into a scalar).
    var heatGlyphs: HeatGlyphs {
        HeatGlyphs(
            snapshot: snapshot, ramp: snapshot.ramp.map { $0.unicodeScalars.first ?? "?" }, emptyCell: emptyCell,
            nullCell: nullCell)
    }
}

/// A heatmap cell's glyph by its fill, as ``GlyphSet/heatGlyph(fill:isNull:)`` picks it.
struct HeatGlyphs {
    let snapshot: SnapshotText.Glyphs
    /// The snapshot's ramp, one scalar per glyph.
    let ramp: [Unicode.Scalar]
    let emptyCell: Unicode.Scalar
    let nullCell: Unicode.Scalar

    /// The glyph of a heatmap cell of mean fill `fill`: the null region's, the empty cell's, or
    /// the snapshot text's glyph of that fill.
    func glyph(fill: Double, isNull: Bool) -> Unicode.Scalar {
        if isNull { return nullCell }
        if fill <= 0 { return emptyCell }
        return ramp[snapshot.rampIndex(forFill: fill)]
    }
}
