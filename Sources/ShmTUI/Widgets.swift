// The small drawings of the panel: bars and sparklines, as characters a canvas can hold.

/// Pure widget rendering: every function returns the characters; the caller places and styles them.
enum Widgets {
    /// A horizontal bar `width` cells long, filled to `fraction` (clamped to 0...1); the filled
    /// part uses eighth blocks where the glyph set has them, so a bar moves smoothly.
    /// Returns the filled characters and the count of track cells that follow.
    static func bar(fraction: Double, width: Int, glyphs: GlyphSet) -> (filled: [Unicode.Scalar], track: Int) {
        guard width > 0 else { return ([], 0) }
        let clamped = fraction.isFinite ? min(1, max(0, fraction)) : 0
        let steps = glyphs.barEighths.count
        let units = Int((clamped * Double(width * steps)).rounded())
        var filled = Array(repeating: glyphs.barEighths[steps - 1], count: units / steps)
        if units % steps > 0 { filled.append(glyphs.barEighths[units % steps - 1]) }
        // A non-zero value always shows at least the thinnest mark.
        if filled.isEmpty, clamped > 0 { filled = [glyphs.barEighths[0]] }
        return (filled, width - filled.count)
    }

    /// The last `width` values (each 0...1) as sparkline levels, oldest on the left; shorter
    /// histories are padded on the left with spaces.
    static func sparkline(_ values: some Collection<Double>, width: Int, glyphs: GlyphSet) -> [Unicode.Scalar] {
        guard width > 0 else { return [] }
        let levels = glyphs.sparkline
        let shown = values.suffix(width).map { value -> Unicode.Scalar in
            let clamped = value.isFinite ? min(1, max(0, value)) : 0
            return levels[min(levels.count - 1, Int(clamped * Double(levels.count)))]
        }
        return Array(repeating: " ", count: width - shown.count) + shown
    }

    /// A heat level 0 ..< `levels` for a fill fraction: empty cells are level 0 only when exactly
    /// empty is not drawn separately, so levels split (0, 1] evenly and a full block is the top one.
    static func heatLevel(fill: Double, levels: Int) -> Int {
        guard levels > 1, fill > 0 else { return 0 }
        if fill >= 1 { return levels - 1 }
        return min(levels - 1, Int(fill * Double(levels)))
    }
}
