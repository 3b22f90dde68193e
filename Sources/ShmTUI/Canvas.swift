// The screen as a grid of cells, drawn by pure code and painted to the terminal in one pass.
//
// Views draw into a `Canvas` instead of calling ncurses directly: the drawing is then plain Swift
// that unit tests can read back as text, and the terminal painter groups runs of equal style into
// a few `addstr` calls per row.

/// What a cell's colour means; the palette turns it into a colour pair for the current mode.
enum ColorRole: Hashable, Sendable {
    case plain, muted, accent, title, titleLive, titlePaused, banner, selection, good, warning, bad
    /// A heatmap level, 0 (lightest fill) ..< ``Palette/heatLevels``.
    case heat(Int)
    /// An owner's colour in the drill-down, 0 ..< ``Palette/ownerColors``.
    case owner(Int)
}

/// How a cell is drawn: a colour role and text attributes.
struct CellStyle: Hashable, Sendable {
    var role: ColorRole
    var bold: Bool
    var reverse: Bool
    var underline: Bool

    init(_ role: ColorRole = .plain, bold: Bool = false, reverse: Bool = false, underline: Bool = false) {
        self.role = role
        self.bold = bold
        self.reverse = reverse
        self.underline = underline
    }

    static let plain = CellStyle()
    static let muted = CellStyle(.muted)
    static let accent = CellStyle(.accent, bold: true)
    static let heading = CellStyle(.accent, bold: true, underline: false)
}

/// One screen cell.
struct Cell: Hashable, Sendable {
    var character: Unicode.Scalar
    var style: CellStyle
}

/// A width × height grid of cells; drawing outside it is clipped.
struct Canvas: Sendable {
    let width: Int
    let height: Int
    private(set) var cells: [Cell]

    /// A blank canvas.
    init(width: Int, height: Int) {
        self.width = max(0, width)
        self.height = max(0, height)
        cells = Array(repeating: Cell(character: " ", style: .plain), count: self.width * self.height)
    }

    /// The cell at `row`, `column` (which must be inside).
    subscript(row: Int, column: Int) -> Cell {
        get { cells[row * width + column] }
        set { cells[row * width + column] = newValue }
    }

    /// Writes one character; ignored outside the canvas.
    mutating func put(_ character: Unicode.Scalar, row: Int, column: Int, style: CellStyle = .plain) {
        guard (0..<height).contains(row), (0..<width).contains(column) else { return }
        cells[row * width + column] = Cell(character: character, style: style)
    }

    /// Writes `text` from `column`, clipped to `maxWidth` cells and to the canvas; a clipped text
    /// ends in `…` so a reader sees that something is missing. Returns the column after the text.
    @discardableResult
    mutating func text(
        _ text: String, row: Int, column: Int, style: CellStyle = .plain, maxWidth: Int? = nil
    ) -> Int {
        let limit = min(maxWidth ?? Int.max, width - column)
        guard limit > 0 else { return column }
        let scalars = Array(text.unicodeScalars)
        let clipped = scalars.count > limit
        let shown = clipped ? scalars.prefix(limit - 1) + ["…"] : scalars[...]
        var current = column
        for scalar in shown {
            put(scalar, row: row, column: current, style: style)
            current += 1
        }
        return current
    }

    /// Fills `count` cells of `row` from `column` with `character`.
    mutating func fill(_ character: Unicode.Scalar, row: Int, column: Int, count: Int, style: CellStyle = .plain) {
        for offset in 0..<max(0, count) { put(character, row: row, column: column + offset, style: style) }
    }

    /// Restyles `count` cells of `row` from `column`, keeping their characters.
    mutating func restyle(row: Int, column: Int, count: Int, _ change: (inout CellStyle) -> Void) {
        guard (0..<height).contains(row) else { return }
        for current in max(0, column)..<min(width, column + count) { change(&cells[row * width + current].style) }
    }

    /// Writes `text` centred in `row` within `columns`.
    mutating func centred(_ text: String, row: Int, columns: Range<Int>, style: CellStyle = .plain) {
        let length = text.unicodeScalars.count
        let start = columns.lowerBound + max(0, (columns.count - length) / 2)
        self.text(text, row: row, column: start, style: style, maxWidth: columns.upperBound - start)
    }

    /// The characters of one row, trailing spaces kept.
    func line(_ row: Int) -> String {
        var text = String.UnicodeScalarView()
        for column in 0..<width { text.append(self[row, column].character) }
        return String(text)
    }

    /// Every row, trailing spaces trimmed: what a screen capture shows.
    var lines: [String] {
        (0..<height).map { row in
            var line = self.line(row)
            while line.last == " " { line.removeLast() }
            return line
        }
    }
}
