// The owner table's columns and the order its rows are sorted in: shared by `shmtop snapshot`'s
// table and the live view's, whose sort keys change it.

/// A column of the owner table.
public enum OwnerColumn: String, CaseIterable, Hashable, Sendable {
    case pid, state, command, allocations, bytes, requested, share
    case allocationsPerSecond = "allocs/s"
    case freesPerSecond = "frees/s"

    /// The column's heading.
    public var title: String { rawValue }

    /// Whether the column's figures are numbers (sorted largest first by default, right-aligned).
    public var isNumeric: Bool { ![.state, .command].contains(self) }
}

/// How the owner table's rows are sorted: by one column, ascending or descending; rows that
/// tie are ordered by pid, ascending.
public struct OwnerOrder: Hashable, Sendable {
    /// The column sorted by.
    public var column: OwnerColumn
    /// Largest (or last in the alphabet) first.
    public var descending: Bool

    /// Sorting by `column`, `descending` or not.
    public init(column: OwnerColumn, descending: Bool) {
        self.column = column
        self.descending = descending
    }

    /// The default: who holds the most bytes first, as the snapshot lists owners.
    public static let byBytes = OwnerOrder(column: .bytes, descending: true)

    /// Sorting by the column `offset` places right of this one (left when negative, wrapping
    /// round), in that column's natural direction: numbers largest first, words A to Z.
    public func moved(by offset: Int) -> OwnerOrder {
        let columns = OwnerColumn.allCases
        let index = columns.firstIndex(of: column)!
        let next = columns[((index + offset) % columns.count + columns.count) % columns.count]
        return OwnerOrder(column: next, descending: next.isNumeric)
    }

    /// `owners` in this order.
    public func sorted(_ owners: [OwnerAllocations]) -> [OwnerAllocations] {
        owners.sorted { left, right in
            switch compare(left, right) {
            case .some(let less): descending ? !less : less
            case .none: left.pid < right.pid
            }
        }
    }

    /// Whether `left` comes before `right` ascending by the column, `nil` when they tie.
    private func compare(_ left: OwnerAllocations, _ right: OwnerAllocations) -> Bool? {
        func order<T: Comparable>(_ value: (OwnerAllocations) -> T) -> Bool? {
            let (a, b) = (value(left), value(right))
            return a == b ? nil : a < b
        }
        switch column {
        case .pid: return order(\.pid)
        case .state: return order(\.state.rawValue)
        case .command: return order { $0.command ?? "" }
        case .allocations: return order(\.allocations)
        case .bytes: return order(\.bytes)
        case .requested: return order(\.requestedBytes)
        case .share: return order(\.share)
        case .allocationsPerSecond: return order { $0.allocationsPerSecond ?? -1 }
        case .freesPerSecond: return order { $0.freesPerSecond ?? -1 }
        }
    }
}
