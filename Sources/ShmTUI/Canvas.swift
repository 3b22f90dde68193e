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

/// How a cell is drawn: a colour role and text attributes, packed in one integer so that a cell
/// compares as two integers (the terminal compares each frame's cells with the last frame's).
struct CellStyle: Hashable, Sendable {
    /// The role's ``ColorRole/code`` in the low 16 bits, the attributes above.
    private var code: UInt32

    private static let roleMask: UInt32 = 0xFFFF
    private static let boldBit: UInt32 = 1 << 16, reverseBit: UInt32 = 1 << 17, underlineBit: UInt32 = 1 << 18

    init(_ role: ColorRole = .plain, bold: Bool = false, reverse: Bool = false, underline: Bool = false) {
        code =
            role.code | (bold ? Self.boldBit : 0) | (reverse ? Self.reverseBit : 0)
            | (underline ? Self.underlineBit : 0)
    }

    /// The colour role, as the palette draws it (see ``ColorRole/code``).
    var role: ColorRole {
        get { ColorRole(code: code & Self.roleMask) }
        set { code = code & ~Self.roleMask | newValue.code }
    }
    var bold: Bool {
        get { code & Self.boldBit != 0 }
        set { set(Self.boldBit, newValue) }
    }
    var reverse: Bool {
        get { code & Self.reverseBit != 0 }
        set { set(Self.reverseBit, newValue) }
    }
    var underline: Bool {
        get { code & Self.underlineBit != 0 }
        set { set(Self.underlineBit, newValue) }
    }

    private mutating func set(_ bit: UInt32, _ isSet: Bool) { code = isSet ? code | bit : code & ~bit }

    static let plain = CellStyle()
    static let muted = CellStyle(.muted)
    static let accent = CellStyle(.accent, bold: true)
    static let heading = CellStyle(.accent, bold: true, underline: false)
}

extension ColorRole {
    /// The role as a number: its colour pair's number less one, in ``Palette/roles``'s order. A
    /// heat level is clamped to the palette's levels and an owner index reduced modulo its
    /// colours, as the palette draws them: roles drawn alike have one code.
    var code: UInt32 {
        switch self {
        case .plain: 0
        case .muted: 1
        case .accent: 2
        case .title: 3
        case .titleLive: 4
        case .titlePaused: 5
        case .banner: 6
        case .selection: 7
        case .good: 8
        case .warning: 9
        case .bad: 10
        case .heat(let level): UInt32(11 + min(max(level, 0), Palette.heatLevels - 1))
        case .owner(let index):
            UInt32(11 + Palette.heatLevels + (index % Palette.ownerColors + Palette.ownerColors) % Palette.ownerColors)
        }
    }

    /// The role whose ``code`` is `code`.
    init(code: UInt32) { self = Palette.roles[Int(code)] }
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

    /// Writes the `count` cells of `row` from `column` that `cell` makes from their offsets
    /// (0 ..< `count`); cells outside the canvas are not made. One bounds check for the run
    /// instead of one per cell: the heatmap writes thousands of cells a frame.
    mutating func put(row: Int, column: Int, count: Int, _ cell: (Int) -> Cell) {
        let first = max(0, -column)
        let end = min(count, width - column)
        guard (0..<height).contains(row), first < end else { return }
        let start = row * width + column
        cells.withUnsafeMutableBufferPointer { cells in
            for offset in first..<end { cells[start + offset] = cell(offset) }
        }
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

extension Canvas {
    /// Cells of one style in one row, to be painted together.
    struct Run: Hashable, Sendable {
        let row: Int
        let columns: Range<Int>
        let style: CellStyle
    }

    /// Calls `paint` with what must be painted for the screen to show this canvas when it shows
    /// `previous`: each run of cells of one style that differs from `previous`, narrowed to its
    /// first through last differing cell; every run when `previous` is `nil` or of another size.
    ///
    /// A row equal to the previous one is skipped after one comparison of integers (a cell is two):
    /// a live view's frames differ in a few rates and heatmap cells.
    func forEachChangedRun(since previous: Canvas?, _ paint: (Run) -> Void) {
        let previousCells = previous.flatMap { $0.width == width && $0.height == height ? $0.cells : nil }
        let compares = previousCells != nil
        cells.withUnsafeBufferPointer { cells in
            (previousCells ?? []).withUnsafeBufferPointer { before in
                for row in 0..<height {
                    let rowStart = row * width
                    if compares, (rowStart..<(rowStart + width)).allSatisfy({ before[$0] == cells[$0] }) { continue }
                    var column = rowStart
                    let rowEnd = rowStart + width
                    while column < rowEnd {
                        let style = cells[column].style
                        var first = column
                        while column < rowEnd, cells[column].style == style { column += 1 }
                        var last = column
                        if compares {
                            while first < last, before[first] == cells[first] { first += 1 }
                            while last > first, before[last - 1] == cells[last - 1] { last -= 1 }
                        }
                        if first < last {
                            paint(Run(row: row, columns: (first - rowStart)..<(last - rowStart), style: style))
                        }
                    }
                }
            }
        }
    }
}
