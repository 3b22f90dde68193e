// The aligned tables of the snapshot text: a header row, cells padded to their column's width.

/// A table with a header row; the first column (and any listed in `leftAligned`) is left-aligned,
/// the others (numbers) right-aligned.
struct TextTable {
    private var rows: [[String]]
    private let leftAligned: Set<Int>

    init(_ header: [String], leftAligned: Set<Int> = [0]) {
        rows = [header]
        self.leftAligned = leftAligned.union([0])
    }

    mutating func add(_ row: [String]) { rows.append(row) }

    var text: String {
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        return rows.map { row in
            row.enumerated().map { column, cell in
                let padding = String(repeating: " ", count: widths[column] - cell.count)
                return leftAligned.contains(column) ? cell + padding : padding + cell
            }.joined(separator: "  ").trimmingTrailingSpaces
        }.joined(separator: "\n") + "\n"
    }
}

extension String {
    /// The string without trailing spaces (table rows whose last cells are empty).
    fileprivate var trimmingTrailingSpaces: String {
        var text = self
        while text.last == " " { text.removeLast() }
        return text
    }
}
