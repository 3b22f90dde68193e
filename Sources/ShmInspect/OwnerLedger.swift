// Who holds what, kept block by block so that a live view can update it from the blocks that
// changed instead of re-reading every allocation header.
//
// A full header scan of a cache with a million allocations reads a million headers spread over
// the whole data region; between two refreshes of a busy cache a few per cent of its blocks
// change. The ledger keeps, for every block that holds allocations, what each of its allocation
// nodes counted for (owner, requested size, or in flight / damaged) and the word it was read at.
// In a changed block, the nodes that disappeared are subtracted and the headers of those that
// appeared are read; the nodes that held at both readings keep their records (most of a changed
// block's allocations did not change, and reading them again was most of a busy refresh). Nodes
// whose headers were in flight (claimed but not written yet) are read again at the next update
// even if their word holds still, so the figures settle within one refresh.

import ShmFormat

/// The owner figures of a cache, block by block: what every allocation node of every block
/// counted for when it was last read, and the sums per owner and per order.
///
/// Built by ``CacheInspector/ownerLedger(of:)`` and kept up to date by
/// ``CacheInspector/update(_:to:changes:)``; ``census(state:command:rates:)`` turns it into the
/// ``AllocationCensus`` a snapshot reports.
public struct OwnerLedger: Sendable {
    /// What one allocation node counted for, packed in one word: the header's body (pid in bits
    /// 0–31, requested size in 32–51, order in 52–55) and its kind in bits 62–63.
    struct NodeRecord: Hashable {
        let rawValue: UInt64

        static let counted: UInt64 = 0, inFlight: UInt64 = 1, unreadable: UInt64 = 2

        init(_ reading: AllocationCensus.NodeReading) {
            switch reading {
            case .counted(let header):
                rawValue = UInt64(UInt32(bitPattern: header.ownerPID)) | UInt64(header.requestedSize) &<< 32 | UInt64(header.order) &<< 52
            case .inFlight: rawValue = Self.inFlight &<< 62
            case .unreadable: rawValue = Self.unreadable &<< 62
            }
        }

        var kind: UInt64 { rawValue &>> 62 }
        var pid: Int32 { Int32(bitPattern: UInt32(truncatingIfNeeded: rawValue)) }
        var requestedSize: Int { Int((rawValue &>> 32) & 0xF_FFFF) }
        var order: Int { Int((rawValue &>> 52) & 0xF) }
        /// Whether the node should be read again at the next update: its header was not written
        /// yet when its block was read.
        var isUnsettled: Bool { kind == Self.inFlight }
        /// Whether the node counts as an allocation of `pid`.
        func isCounted(for pid: Int32) -> Bool { kind == Self.counted && self.pid == pid }
    }

    /// The contributions of ``pageBlocks`` consecutive blocks: for each, the word its nodes
    /// were read at (0 for none), the nodes whose records are settled (not in flight: kept,
    /// unread, while they hold), and one record per allocation node of that word (ascending
    /// node numbers). Words and settled nodes are plain arrays, so that asking which nodes to
    /// read touches no block's records.
    struct Page {
        var words = [UInt64](repeating: 0, count: pageBlocks)
        var settled = [UInt64](repeating: 0, count: pageBlocks)
        var records = [[NodeRecord]](repeating: [], count: pageBlocks)
    }

    /// One owner's sums.
    struct OwnerSums {
        var allocations = 0
        var bytes = 0
        var requestedBytes = 0

        /// Adds (`sign` 1) or takes away (-1) an allocation; returns the allocations left.
        mutating func add(bytes: Int, requestedBytes: Int, sign: Int) -> Int {
            allocations += sign
            self.bytes += sign * bytes
            self.requestedBytes += sign * requestedBytes
            return allocations
        }
    }

    let geometry: Geometry
    /// Each block's contribution, in pages (index: block / pageBlocks), a page made when one of
    /// its blocks first holds allocations. A refresh visits the changed blocks in ascending
    /// order, so neighbours share a page: a dictionary by block cost a cache miss and a hash for
    /// each of three lookups per changed block, most of a busy refresh.
    private var pages: [Page?] = []
    static let pageBlocks = 1024
    /// The records being assembled for a block (kept to spare an allocation per block).
    private var assembled: [NodeRecord] = []
    private var sums: [Int32: OwnerSums] = [:]
    private var requestedBytesByOrder: [Int]
    private var inFlight = 0
    private var unreadable = 0
    /// Blocks with a record in flight: read again at the next update.
    private(set) var unsettledBlocks: Set<Int> = []
    private var activity = OwnerActivity()

    /// An empty ledger of a cache of `geometry`.
    init(geometry: Geometry) {
        self.geometry = geometry
        requestedBytesByOrder = Array(repeating: 0, count: geometry.orderCount)
    }

    /// Allocation nodes the ledger holds.
    public var allocationCount: Int { sums.values.reduce(0) { $0 + $1.allocations } + inFlight + unreadable }

    /// The allocation nodes of `word` whose headers must be read to bring block `block` up to
    /// it: those its last reading did not hold as allocations, or held in flight. A node that
    /// held a settled allocation at both readings keeps its record unread, as a block whose word
    /// did not change does: a node freed and allocated again between two readings is not seen
    /// (as for the rates), and most of a changed block's allocations have not changed.
    func nodesToRead(block: Int, word: UInt64) -> UInt64 {
        let nodes = geometry.tree.allocations(word)
        let (page, index) = block.quotientAndRemainder(dividingBy: Self.pageBlocks)
        guard page < pages.count, let settled = pages[page]?.settled[index] else { return nodes }
        return nodes & ~settled
    }

    /// Brings block `block`'s contribution up to `word`, whose nodes ``nodesToRead(block:word:)``
    /// were read as `read` (ascending nodes); the other nodes keep their records. With `counting`,
    /// an allocation node that appeared counts as an allocation of its new owner and one that
    /// disappeared as a free of its old one (the same lower bound as ``SnapshotRates``).
    mutating func replace(block: Int, word: UInt64, read: ArraySlice<NodeRecord>, counting: Bool) {
        let tree = geometry.tree
        let newNodes = tree.allocations(word)
        let (page, index) = block.quotientAndRemainder(dividingBy: Self.pageBlocks)
        if page >= pages.count {
            guard newNodes != 0 else { return }
            pages.append(contentsOf: repeatElement(nil, count: page + 1 - pages.count))
        }
        if pages[page] == nil {
            guard newNodes != 0 else { return }
            pages[page] = Page()
        }
        // Taken out of the page, so that it is changed in place.
        var oldRecords: [NodeRecord] = []
        swap(&oldRecords, &pages[page]!.records[index])
        let oldNodes = tree.allocations(pages[page]!.words[index])
        let kept = newNodes & pages[page]!.settled[index]
        let wasUnsettled = pages[page]!.settled[index] != oldNodes
        var records: [NodeRecord] = []
        swap(&records, &assembled)
        records.removeAll(keepingCapacity: true)
        var settled: UInt64 = 0
        var oldIndex = 0, readIndex = read.startIndex
        var nodes = oldNodes | newNodes
        while nodes != 0 {
            let bit = nodes & (0 &- nodes)
            nodes &= nodes &- 1
            var before: NodeRecord?
            if oldNodes & bit != 0 {
                before = oldRecords[oldIndex]
                oldIndex += 1
            }
            var after: NodeRecord?
            if newNodes & bit != 0 {
                if kept & bit != 0 {
                    after = before
                } else {
                    after = read[readIndex]
                    readIndex += 1
                }
                records.append(after!)
                if !after!.isUnsettled { settled |= bit }
            }
            guard before != after else { continue }
            if let before {
                add(before, sign: -1)
                if counting, after == nil { activity.count(free: before.pid, kind: before.kind) }
            }
            if let after {
                add(after, sign: 1)
                if counting, before == nil { activity.count(allocation: after.pid, kind: after.kind) }
            }
        }
        pages[page]!.words[index] = newNodes == 0 ? 0 : word
        pages[page]!.settled[index] = settled
        // The block's array is reused, and `assembled` stays this ledger's alone.
        oldRecords.removeAll(keepingCapacity: !records.isEmpty)
        oldRecords.append(contentsOf: records)
        swap(&oldRecords, &pages[page]!.records[index])
        swap(&records, &assembled)
        // The set is asked only when the block enters or leaves it: most changed blocks do neither.
        if settled != newNodes { unsettledBlocks.insert(block) } else if wasUnsettled { unsettledBlocks.remove(block) }
    }

    private mutating func add(_ record: NodeRecord, sign: Int) {
        switch record.kind {
        case NodeRecord.inFlight: inFlight += sign
        case NodeRecord.unreadable: unreadable += sign
        default:
            let size = geometry.nodeSize(ofOrder: record.order)
            requestedBytesByOrder[record.order] += sign * record.requestedSize
            // Changed in place: one lookup (an owner that holds nothing any more is removed).
            if sums[record.pid, default: OwnerSums()].add(bytes: size, requestedBytes: record.requestedSize, sign: sign) == 0 {
                sums[record.pid] = nil
            }
        }
    }

    /// What the owners allocated and freed since the last call, and starts counting afresh.
    mutating func takeActivity() -> OwnerActivity {
        defer { activity = OwnerActivity() }
        return activity
    }

    /// The pids that hold allocations.
    public var ownerPIDs: [Int32] { Array(sums.keys) }

    /// The blocks holding allocations of `pid` (reads the whole ledger; ``update(_:ownedBy:blocks:)``
    /// keeps the set up to date from then on).
    public func blocks(ownedBy pid: Int32) -> BlockSet {
        var owned = BlockSet(capacity: geometry.blockCount)
        for (number, page) in pages.enumerated() {
            for (index, records) in (page?.records ?? []).enumerated() where records.contains(where: { $0.isCounted(for: pid) }) {
                owned.set(number * Self.pageBlocks + index, true)
            }
        }
        return owned
    }

    /// Brings `owned`, the blocks of `pid` before `blocks` were read again (see
    /// ``CacheInspector/update(_:to:changes:)``), up to the ledger.
    public func update(_ owned: inout BlockSet, ownedBy pid: Int32, blocks: [Int]) {
        for block in blocks { owned.set(block, owns(block: block, pid: pid)) }
    }

    /// Whether block `block` holds an allocation of `pid`.
    public func owns(block: Int, pid: Int32) -> Bool {
        let (page, index) = block.quotientAndRemainder(dividingBy: Self.pageBlocks)
        guard page < pages.count, let page = pages[page] else { return false }
        return page.records[index].contains { $0.isCounted(for: pid) }
    }

    /// The census the ledger's figures make, with each owner's process state as `state` gives
    /// it, the command name of each live owner as `command` gives it, and each owner's rates
    /// from `rates` (absent for an owner `rates` does not name, and for all without `rates`).
    public func census(
        state: (Int32) -> ProcessState, command: (Int32) -> String? = { _ in nil }, rates: OwnerRates? = nil
    ) -> AllocationCensus {
        let owners = sums.map { pid, sums in
            var owner = OwnerAllocations(pid: pid, allocations: sums.allocations, bytes: sums.bytes, requestedBytes: sums.requestedBytes)
            let ownerState = state(pid)
            owner.mark(ownerState, command: ownerState == .alive ? command(pid) : nil, capacity: geometry.capacity)
            if let rates { owner.setRates(rates.perSecond(of: pid)) }
            return owner
        }
        return AllocationCensus(
            requestedBytesByOrder: requestedBytesByOrder, owners: OwnerOrder.byBytes.sorted(owners),
            unreadableHeaders: unreadable, inFlightHeaders: inFlight)
    }
}

/// Allocations and frees per owner pid between two readings of a ledger, seen in the words: a
/// node that appeared counts for the owner its header names, one that disappeared for the owner
/// it counted for before. Nodes in flight count for nobody.
public struct OwnerActivity: Hashable, Sendable {
    /// Allocations and frees of each pid.
    public private(set) var counts: [Int32: (allocations: Int, frees: Int)] = [:]

    public init() {}

    mutating func count(allocation pid: Int32, kind: UInt64) {
        guard kind == OwnerLedger.NodeRecord.counted else { return }
        counts[pid, default: (0, 0)].allocations += 1
    }

    mutating func count(free pid: Int32, kind: UInt64) {
        guard kind == OwnerLedger.NodeRecord.counted else { return }
        counts[pid, default: (0, 0)].frees += 1
    }

    /// This activity and `other`'s, summed.
    public func adding(_ other: OwnerActivity) -> OwnerActivity {
        var sum = self
        for (pid, count) in other.counts {
            sum.counts[pid, default: (0, 0)].allocations += count.allocations
            sum.counts[pid, default: (0, 0)].frees += count.frees
        }
        return sum
    }

    public static func == (left: OwnerActivity, right: OwnerActivity) -> Bool {
        left.counts.count == right.counts.count && left.counts.allSatisfy { pid, count in
            right.counts[pid].map { $0 == count } ?? false
        }
    }

    public func hash(into hasher: inout Hasher) {
        for pid in counts.keys.sorted() { hasher.combine(pid); hasher.combine(counts[pid]!.allocations); hasher.combine(counts[pid]!.frees) }
    }
}

/// Allocations and frees per second of each owner, over a stated number of seconds.
public struct OwnerRates: Hashable, Sendable {
    /// What the owners did over `seconds`.
    public let activity: OwnerActivity
    /// The seconds `activity` covers.
    public let seconds: Double

    /// Rates of `activity` over `seconds`.
    public init(activity: OwnerActivity, seconds: Double) {
        self.activity = activity
        self.seconds = seconds
    }

    /// Allocations and frees per second of `pid` (0 and 0 for a pid that did neither; `nil`
    /// before any time has passed).
    public func perSecond(of pid: Int32) -> (allocations: Double, frees: Double)? {
        guard seconds > 0 else { return nil }
        let count = activity.counts[pid] ?? (0, 0)
        return (Double(count.allocations) / seconds, Double(count.frees) / seconds)
    }
}
