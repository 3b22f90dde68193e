// The owner table's logic without a terminal: sorting by each column, the sort keys, the
// selection following its owner, Enter highlighting, and the table drawn from a frame.

import ShmFormat
import Testing

@testable import ShmInspect
@testable import ShmTUI

@Suite("Owner table")
struct OwnerTableTests {
    /// A block's word holding an allocation for each of `headers`, side by side from the first
    /// leaf (each order's nodes aligned as long as orders do not fall).
    static func word(_ headers: [AllocationHeader]) -> UInt64 {
        let tree = try! Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 10).tree
        var leaf = 0
        var word: UInt64 = 0
        for header in headers {
            word |= tree.setMask(ofNode: tree.node(order: header.order, firstLeaf: leaf))
            leaf += 1 << header.order
        }
        return word
    }

    /// Three owners of a 64 KiB cache (`RenderingTests`' example), as the ledger's census reports them.
    static func owners() -> [OwnerAllocations] {
        var ledger = OwnerLedger(geometry: try! Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 10))
        // pid 30: 3 allocations of 32 B; pid 10: one of 1 KiB; pid 20: two of 64 B.
        let records: [(Int, Int32, Int, Int)] = [
            (4, 30, 20, 0), (4, 30, 10, 0), (4, 30, 5, 0), (5, 10, 1000, 5), (6, 20, 50, 1), (6, 20, 40, 1),
        ]
        for block in [4, 5, 6] {
            let mine = records.filter { $0.0 == block }.map {
                AllocationHeader(ownerPID: $0.1, requestedSize: $0.2, order: $0.3)
            }
            ledger.replace(
                block: block, word: Self.word(mine), read: mine.map { OwnerLedger.NodeRecord(.counted($0)) }[...],
                counting: false)
        }
        let activity = OwnerActivity(counts: [20: (1, 0)])
        return ledger.census(
            state: { $0 == 10 ? .dead : .alive }, command: { "cmd\($0)" },
            rates: OwnerRates(activity: activity, seconds: 0.5)
        ).owners
    }

    @Test("each column sorts its way; ties go by pid; > and < move the column, I inverts")
    func sorting() {
        let owners = Self.owners()
        func pids(_ order: OwnerOrder) -> [Int32] { order.sorted(owners).map(\.pid) }
        #expect(pids(.byBytes) == [10, 20, 30])
        #expect(pids(OwnerOrder(column: .allocations, descending: true)) == [30, 20, 10])
        #expect(pids(OwnerOrder(column: .pid, descending: false)) == [10, 20, 30])
        #expect(pids(OwnerOrder(column: .state, descending: false)) == [20, 30, 10], "alive before dead, ties by pid")
        #expect(pids(OwnerOrder(column: .allocationsPerSecond, descending: true)) == [20, 10, 30])
        #expect(pids(OwnerOrder(column: .requested, descending: true)) == [10, 20, 30])
        #expect(OwnerOrder.byBytes.moved(by: 1) == OwnerOrder(column: .requested, descending: true))
        #expect(OwnerOrder.byBytes.moved(by: -2) == OwnerOrder(column: .command, descending: false))
        #expect(OwnerOrder(column: .pid, descending: false).moved(by: -1).column == .freesPerSecond, "wraps round")
        #expect(KeyMap.command(for: .character(">"), on: .owners) == .sortColumn(1))
        #expect(KeyMap.command(for: .function(6), on: .owners) == .sortColumn(1))
        #expect(KeyMap.command(for: .character("<"), on: .owners) == .sortColumn(-1))
        #expect(KeyMap.command(for: .character("I"), on: .owners) == .invertSort)
        #expect(KeyMap.command(for: .character("o"), on: .main) == .toggleOwners)
    }

    @Test(
        "the selection stays on its owner when the order changes; Enter highlights it and shows the heatmap, again turns it off"
    )
    func selectionAndHighlight() {
        let owners = Self.owners()
        var state = ViewState(colorMode: .monochrome, glyphs: .unicode, interval: .milliseconds(100))
        state.screen = .owners
        state.moveOwnerSelection(by: 1, count: owners.count)
        #expect(state.ownerOrder.sorted(owners)[state.selectedOwnerRow].pid == 20)
        state.sortOwners(movingColumnBy: -1, owners: owners)  // bytes → allocations, largest first
        #expect(state.ownerOrder == OwnerOrder(column: .allocations, descending: true))
        #expect(state.selectedOwnerRow == 1, "pid 20 holds the second most allocations")
        state.sortOwners(movingColumnBy: -3, owners: owners)  // → pid, largest first
        state.invertOwnerOrder(owners: owners)
        #expect(state.ownerOrder == OwnerOrder(column: .pid, descending: false))
        #expect(state.selectedOwnerRow == 1)
        state.moveOwnerSelection(by: 5, count: owners.count)
        #expect(state.selectedOwnerRow == 2)
        state.highlightSelectedOwner(owners: owners)
        #expect(state.highlightedOwner == 30 && state.screen == .main)
        state.screen = .owners
        state.highlightSelectedOwner(owners: owners)
        #expect(state.highlightedOwner == nil)
    }

    @Test(
        "a highlighted owner's blocks: read from the whole ledger once, then kept up to date from the blocks read again"
    )
    func highlightedBlocks() {
        var ledger = OwnerLedger(geometry: try! Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 10))
        func put(_ block: Int, _ pids: [Int32]) {
            let headers = pids.map { AllocationHeader(ownerPID: $0, requestedSize: 8, order: 0) }
            // Freed first: a node that holds an allocation at both readings keeps its record.
            ledger.replace(block: block, word: 0, read: [], counting: false)
            ledger.replace(
                block: block, word: Self.word(headers), read: headers.map { OwnerLedger.NodeRecord(.counted($0)) }[...],
                counting: false)
        }
        put(4, [30, 10])
        put(5, [10])
        put(63, [30])
        var owned = ledger.blocks(ownedBy: 30)
        #expect(owned.contains(4) && !owned.contains(5) && owned.contains(63))
        #expect(
            owned.intersects(0..<5) && !owned.intersects(5..<63) && owned.intersects(60..<64)
                && !owned.intersects(64..<200))
        put(5, [30])
        put(4, [])
        ledger.update(&owned, ownedBy: 30, blocks: [4, 5])
        #expect(owned == ledger.blocks(ownedBy: 30))
        #expect(!owned.contains(4) && owned.contains(5) && owned.intersects(5..<6) && !owned.intersects(0..<5))
    }

    @Test("the table drawn from a frame: a row per owner, dead owners without a command, the sorted column marked")
    func drawn() throws {
        let snapshot = try FrameRenderingTests.snapshot()
        let census = BuddyCensus(tree: snapshot.tree, words: snapshot.words[snapshot.usableBlocks])
        var ledger = OwnerLedger(geometry: snapshot.geometry)
        let header = AllocationHeader(ownerPID: 77, requestedSize: 9, order: 0)
        ledger.replace(
            block: 4, word: Self.word([header]), read: [OwnerLedger.NodeRecord(.counted(header))][...], counting: false)
        let allocations = ledger.census(state: { _ in .dead })
        let frame = LiveFrame(
            snapshot: snapshot,
            statistics: CacheStatistics(census: census, snapshot: snapshot, allocations: allocations), sequence: 1)
        let layout = ScreenLayout(width: 120, height: 30, banner: false)
        var state = ViewState(colorMode: .monochrome, glyphs: .unicode, interval: .milliseconds(100))
        state.screen = .owners
        var canvas = Canvas(width: 120, height: 30)
        OwnerTableView(frame: frame, state: state, layout: layout, now: .now).draw(into: &canvas, detachment: nil)
        let lines = canvas.lines
        let row = try #require(lines.first { $0.contains("   77 ") })
        #expect(row.contains("dead") && row.contains("32 B") && row.contains("9 B") && row.contains("–"), "\(row)")
        #expect(lines.contains { $0.contains("bytes▼") })
        #expect(lines.contains { $0.contains("0 alive") && $0.contains("1 not") })
    }
}
