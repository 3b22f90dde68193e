// What the person watching has chosen: screen, selection, zoom, modes. Changed by keys, read by views.

import ShmInspect

/// The state of the live view that is not data: which screen, what is selected, which modes.
struct ViewState: Sendable {
    /// The two screens.
    enum Screen: Hashable, Sendable {
        /// Heatmap and fragmentation panel.
        case main
        /// One block opened up.
        case drillDown
        /// The owner table.
        case owners
    }

    /// A message shown in the key line for a few seconds.
    struct Flash: Sendable {
        var text: String
        var isError: Bool
        var until: ContinuousClock.Instant
    }

    var screen = Screen.main
    var showHelp = false
    /// The picture is frozen; sampling goes on so rates and history have no gap.
    var paused = false
    /// Cells whose blocks changed since the previous frame are highlighted.
    var markChanges = true
    var colorMode: ColorMode
    var glyphs: GlyphSet
    /// The selected block (the first block of the selected cell).
    var selectedBlock = 0
    /// Blocks per heatmap cell; `nil` fits the whole cache.
    var zoom: Int?
    /// The first heatmap row shown when zoomed in.
    var scrollRow = 0
    /// Time between samples.
    var interval: Duration
    /// The selected allocation in the drill-down's list.
    var selectedAllocation = 0
    /// How the owner table is sorted.
    var ownerOrder = OwnerOrder.byBytes
    /// The selected row of the owner table (in its sorted order).
    var selectedOwnerRow = 0
    /// The owner whose allocations the heatmap highlights (the others' dimmed); `nil`: none.
    var highlightedOwner: Int32?
    /// The text typed after `/`, while the jump prompt is open.
    var jumpInput: String?
    var flash: Flash?

    init(colorMode: ColorMode, glyphs: GlyphSet, interval: Duration) {
        self.colorMode = colorMode
        self.glyphs = glyphs
        self.interval = interval
    }

    /// The refresh intervals `r` cycles through: 10, 20, 1, 2 and 5 Hz.
    static let refreshIntervals: [Duration] = [
        .milliseconds(100), .milliseconds(50), .seconds(1), .milliseconds(500), .milliseconds(200),
    ]

    /// The next refresh interval after the current one.
    var nextInterval: Duration {
        guard let index = Self.refreshIntervals.firstIndex(of: interval) else { return Self.refreshIntervals[0] }
        return Self.refreshIntervals[(index + 1) % Self.refreshIntervals.count]
    }

    // MARK: - The owner table

    /// Sorts the owner table by the column `offset` places right (left when negative) of the
    /// current one, keeping the selection on the same owner among `owners` (the table's rows).
    mutating func sortOwners(movingColumnBy offset: Int, owners: [OwnerAllocations]) {
        reorderOwners(ownerOrder.moved(by: offset), owners: owners)
    }

    /// Reverses the owner table's order, keeping the selection on the same owner.
    mutating func invertOwnerOrder(owners: [OwnerAllocations]) {
        var order = ownerOrder
        order.descending.toggle()
        reorderOwners(order, owners: owners)
    }

    private mutating func reorderOwners(_ order: OwnerOrder, owners: [OwnerAllocations]) {
        let rows = ownerOrder.sorted(owners)
        let selected = rows.indices.contains(selectedOwnerRow) ? rows[selectedOwnerRow].pid : nil
        ownerOrder = order
        selectedOwnerRow = selected.flatMap { pid in order.sorted(owners).firstIndex { $0.pid == pid } } ?? 0
    }

    /// Moves the owner table's selection by `delta` rows within `count` rows.
    mutating func moveOwnerSelection(by delta: Int, count: Int) {
        selectedOwnerRow = count == 0 ? 0 : min(max(0, selectedOwnerRow + delta), count - 1)
    }

    /// Highlights the selected owner of `owners` in the heatmap and goes back to it; the owner
    /// highlighted already turns the highlight off.
    mutating func highlightSelectedOwner(owners: [OwnerAllocations]) {
        let rows = ownerOrder.sorted(owners)
        if rows.indices.contains(selectedOwnerRow) {
            let pid = rows[selectedOwnerRow].pid
            highlightedOwner = highlightedOwner == pid ? nil : pid
        }
        screen = .main
    }
}
