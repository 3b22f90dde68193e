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

        init(rawValue: UInt64) { self.rawValue = rawValue }

        static let counted: UInt64 = 0, inFlight: UInt64 = 1, unreadable: UInt64 = 2

        init(_ reading: AllocationCensus.NodeReading) {
            switch reading {
            case .counted(let header):
                rawValue =
                    UInt64(UInt32(bitPattern: header.ownerPID)) | UInt64(header.requestedSize) &<< 32 | UInt64(
                        header.order) &<< 52
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

    /// One owner's sums, and what it allocated and freed since the last ``takeActivity()``.
    struct OwnerSums {
        let pid: Int32
        var allocations = 0
        var bytes = 0
        var requestedBytes = 0
        var allocated = 0
        var freed = 0

        init(pid: Int32) { self.pid = pid }

        /// Adds (`sign` 1) or takes away (-1) one allocation of `bytes` node bytes and `requested`
        /// bytes; with `counting`, as an allocation or a free. Wrapping arithmetic: the sums are
        /// bounded by the cache's bytes, and the overflow checks were a tenth of a record's update.
        mutating func add(bytes: Int, requested: Int, sign: Int, counting: Bool) {
            allocations &+= sign
            self.bytes &+= sign &* bytes
            requestedBytes &+= sign &* requested
            if counting {
                if sign > 0 { allocated &+= 1 } else { freed &+= 1 }
            }
        }
    }

    let geometry: Geometry
    /// Each block's contribution, in pages (index: block / pageBlocks), a page opened when one
    /// of its blocks first holds allocations. A refresh visits the changed blocks in ascending
    /// order, so neighbours share a page.
    private(set) var storage: Storage
    static let pageBlocks = 1024
    /// Buffers an update reads headers into, kept from one update to the next.
    struct Scratch {
        /// The nodes to read of each block updated.
        var nodes: [UInt64] = []
        /// What they were read as, in order of blocks and nodes.
        var records: [NodeRecord] = []
    }
    var scratch = Scratch()
    /// The owners, each with its sums (an owner that holds nothing and did nothing since the last
    /// ``takeActivity()`` is dropped then), and where each pid's sums are.
    private(set) var owners: [OwnerSums] = []
    private var ownerIndex: [Int32: Int] = [:]
    /// The owner whose sums changed last: a writer's allocations sit together, and this spares
    /// a hash for most records.
    private var lastOwner = 0
    private(set) var requestedBytesByOrder: [Int]
    private(set) var inFlight = 0
    private(set) var unreadable = 0
    /// Blocks with a record in flight: read again at the next update.
    private(set) var unsettledBlocks: Set<Int> = []

    /// An empty ledger of a cache of `geometry`.
    init(geometry: Geometry) {
        self.geometry = geometry
        storage = Storage(blockCount: geometry.blockCount)
        requestedBytesByOrder = Array(repeating: 0, count: geometry.orderCount)
    }

    /// Allocation nodes the ledger holds.
    public var allocationCount: Int { owners.reduce(0) { $0 + $1.allocations } + inFlight + unreadable }

    /// The allocation nodes of `word` whose headers must be read to bring block `block` up to
    /// it: those its last reading did not hold as allocations, or held in flight. A node that
    /// held a settled allocation at both readings keeps its record unread, as a block whose word
    /// did not change does: a node freed and allocated again between two readings is not seen
    /// (as for the rates), and most of a changed block's allocations have not changed.
    func nodesToRead(block: Int, word: UInt64) -> UInt64 {
        let nodes = geometry.tree.allocations(word)
        let (page, index) = storage.page(of: block)
        guard let entries = page.pointee.entries else { return nodes }
        return nodes & ~entries[index].settled
    }

    /// Asks for block `block`'s entry ahead of ``nodesToRead(block:word:)`` or
    /// ``replace(block:word:read:counting:)`` (a hint). A refresh's changed blocks lie scattered
    /// over the ledger's megabytes: a cache miss each, waited for one after another, was most of
    /// a busy refresh, where asked for a few blocks ahead they overlap.
    func prefetchEntry(of block: Int) {
        let (page, index) = storage.page(of: block)
        page.pointee.prefetchEntry(index)
    }

    /// Asks for block `block`'s records ahead of ``replace(block:word:read:counting:)`` (a hint,
    /// which loads the block's entry: best asked once that is cached, after ``prefetchEntry(of:)``).
    func prefetchRecords(of block: Int) {
        let (page, index) = storage.page(of: block)
        page.pointee.prefetchRecords(index)
    }

    /// How many blocks ahead a block's entry is asked for: its misses take about as long as
    /// updating this many blocks.
    static let entryLookahead = 16
    /// How many blocks ahead a block's records are asked for: after its entry has come.
    static let recordLookahead = 8

    /// The pages, made this ledger's own (copied when another ledger shares them), to be changed.
    private mutating func uniquePages() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    /// Brings block `block`'s contribution up to `word`, whose nodes ``nodesToRead(block:word:)``
    /// were read as `read` (ascending nodes); the other nodes keep their records. With `counting`,
    /// an allocation node that appeared counts as an allocation of its new owner and one that
    /// disappeared as a free of its old one (the same lower bound as ``SnapshotRates``).
    ///
    /// One block at a time (a refresh updates its blocks with
    /// ``replace(blocks:words:nodes:records:counting:)``).
    mutating func replace(block: Int, word: UInt64, read: ArraySlice<NodeRecord>, counting: Bool) {
        Array(read).withUnsafeBufferPointer { read in
            withSums(naming: read) { ledger, sums, pages in
                ledger.replace(block: block, word: word, read: read, counting: counting, sums: sums, pages: pages)
            }
        }
    }

    /// ``replace(block:word:read:counting:)`` for each of `blocks` (ascending) at its word in
    /// `words`, its nodes to read `nodes` (one per block, as ``nodesToRead(block:word:)`` gave
    /// them) read as `records` (in order of blocks and nodes). Each block's entry and records are
    /// asked for a few blocks ahead of their use.
    mutating func replace(
        blocks: [Int], words: [UInt64], nodes: [UInt64], records: [NodeRecord], counting: Bool
    ) {
        records.withUnsafeBufferPointer { records in
            withSums(naming: records) { ledger, sums, pages in
                var next = 0
                for (position, block) in blocks.enumerated() {
                    let entryAhead = position &+ Self.entryLookahead
                    let recordsAhead = position &+ Self.recordLookahead
                    if entryAhead < blocks.count { ledger.prefetchEntry(of: blocks[entryAhead]) }
                    if recordsAhead < blocks.count { ledger.prefetchRecords(of: blocks[recordsAhead]) }
                    let count = nodes[position].nonzeroBitCount
                    let read = UnsafeBufferPointer(rebasing: records[next..<(next &+ count)])
                    ledger.replace(
                        block: block, word: words[block], read: read, counting: counting, sums: sums, pages: pages)
                    next &+= count
                }
            }
        }
    }

    /// Calls `body` with this ledger, its sums as buffers (every owner that `records` name given
    /// sums first) and its pages made its own: both then change in place, where each write to an
    /// array checks that it is unique.
    private mutating func withSums(
        naming records: UnsafeBufferPointer<NodeRecord>, _ body: (inout OwnerLedger, SumBuffers, Storage) -> Void
    ) {
        for record in records where record.kind == NodeRecord.counted { _ = ownerSlot(of: record.pid) }
        // Taken out of the ledger, so that they are changed in place while the ledger changes.
        var ownerSums: [OwnerSums] = []
        var orderSums: [Int] = []
        swap(&ownerSums, &owners)
        swap(&orderSums, &requestedBytesByOrder)
        defer {
            swap(&ownerSums, &owners)
            swap(&orderSums, &requestedBytesByOrder)
        }
        let pages = uniquePages()
        ownerSums.withUnsafeMutableBufferPointer { ownerSums in
            orderSums.withUnsafeMutableBufferPointer { orderSums in
                body(&self, SumBuffers(owners: ownerSums, requestedBytesByOrder: orderSums), pages)
            }
        }
    }

    /// ``replace(block:word:read:counting:)`` with the sums as buffers, which hold every owner
    /// `read` names, and `pages`, the ledger's own.
    private mutating func replace(
        block: Int, word: UInt64, read: UnsafeBufferPointer<NodeRecord>, counting: Bool, sums: SumBuffers,
        pages: Storage
    ) {
        let tree = geometry.tree
        let newNodes = tree.allocations(word)
        let (page, index) = pages.page(of: block)
        if page.pointee.isEmpty {
            guard newNodes != 0 else { return }
            page.pointee.open()
        }
        let entry = page.pointee.entries![index]
        let oldNodes = tree.allocations(entry.word)
        let kept = newNodes & entry.settled
        let wasUnsettled = entry.settled != oldNodes
        let settled = walk(
            page: &page.pointee, index: index, word: word, nodes: (oldNodes, newNodes), kept: kept, read: read,
            counting: counting, sums: sums)
        // The set is asked only when the block enters or leaves it: most changed blocks do neither.
        if settled != newNodes { unsettledBlocks.insert(block) } else if wasUnsettled { unsettledBlocks.remove(block) }
    }

    /// The owners' sums and the requested bytes by order, taken out of the ledger while a block's
    /// records are replaced.
    private struct SumBuffers {
        let owners: UnsafeMutableBufferPointer<OwnerSums>
        let requestedBytesByOrder: UnsafeMutableBufferPointer<Int>
    }

    /// Replaces the records of block `index` of `page` (read at a word of allocation nodes
    /// `nodes.old`) with those of `word` (allocation nodes `nodes.new`): `kept` nodes keep theirs,
    /// the others of `word` are `read`; the sums follow. Returns the nodes settled at `word`.
    private mutating func walk(
        page: inout Page, index: Int, word: UInt64, nodes: (old: UInt64, new: UInt64), kept: UInt64,
        read: UnsafeBufferPointer<NodeRecord>, counting: Bool, sums: SumBuffers
    ) -> UInt64 {
        let (oldNodes, newNodes) = nodes
        // The new records are assembled on the stack (so that no slice shares the page's buffer
        // when `store` writes it, which would copy the whole buffer), straight from the old ones.
        return withUnsafeTemporaryAllocation(of: NodeRecord.self, capacity: Page.blockRecordsLimit) { assembled in
            // Only the nodes that are not kept are visited, ascending, which is the records' order:
            // one no longer held or read again is taken out of the sums, one read is added (a node
            // read again to the same record goes out and back in, and the sums do not change).
            // Every node between two of them is kept in both readings, so the kept records between
            // them are one run in the old records and in the new, copied whole: most of a changed
            // block's allocations are kept.
            let (count, settled) = page.withRecords(of: index) { oldRecords in
                var count = 0
                var settled = kept
                var oldSlot = 0
                var readIndex = read.startIndex
                var keptLeft = kept
                /// Copies the records of `run`, the next kept nodes, to their new places.
                func copyKept(_ run: UInt64) {
                    let length = run.nonzeroBitCount
                    for offset in 0..<length { assembled[count &+ offset] = oldRecords[oldSlot &+ offset] }
                    count &+= length
                    oldSlot &+= length
                }
                var touched = (oldNodes | newNodes) & ~kept
                while touched != 0 {
                    let bit = touched & (0 &- touched)
                    touched &= touched &- 1
                    let keptBelow = keptLeft & (bit &- 1)
                    if keptBelow != 0 {
                        copyKept(keptBelow)
                        keptLeft &= ~keptBelow
                    }
                    if oldNodes & bit != 0 {
                        add(oldRecords[oldSlot], sign: -1, counting: counting && newNodes & bit == 0, to: sums)
                        oldSlot &+= 1
                    }
                    if newNodes & bit != 0 {
                        // `read` is an unchecked buffer, of one record for each node not kept.
                        precondition(readIndex < read.endIndex, "fewer records read than the block's new nodes")
                        let record = read[readIndex]
                        readIndex &+= 1
                        add(record, sign: 1, counting: counting && oldNodes & bit == 0, to: sums)
                        assembled[count] = record
                        count &+= 1
                        if !record.isUnsettled { settled |= bit }
                    }
                }
                if keptLeft != 0 { copyKept(keptLeft) }
                precondition(readIndex == read.endIndex, "more records read than the block's new nodes")
                return (count, settled)
            }
            let records = UnsafeBufferPointer(rebasing: assembled[..<count])
            page.store(records, at: index, word: newNodes == 0 ? 0 : word, settled: settled)
            return settled
        }
    }

    /// Adds (`sign` 1) or takes away (-1) `record` to `sums`, which hold its owner's; with
    /// `counting`, as an allocation or a free of its owner.
    private mutating func add(_ record: NodeRecord, sign: Int, counting: Bool, to sums: SumBuffers) {
        switch record.kind {
        case NodeRecord.inFlight: inFlight &+= sign
        case NodeRecord.unreadable: unreadable &+= sign
        default:
            // Wrapping, as ``OwnerSums/add(bytes:requested:sign:counting:)``.
            sums.requestedBytesByOrder[record.order] &+= sign &* record.requestedSize
            let pid = record.pid
            // Every counted record's owner has sums (see `replace`), and a writer's allocations
            // sit together: the last owner's, or found by hash.
            if lastOwner >= sums.owners.count || sums.owners[lastOwner].pid != pid { lastOwner = ownerIndex[pid]! }
            let bytes = geometry.nodeSize(ofOrder: record.order)
            sums.owners[lastOwner].add(bytes: bytes, requested: record.requestedSize, sign: sign, counting: counting)
        }
    }

    /// Where `pid`'s sums are in `owners` (made when `pid` has none).
    private mutating func ownerSlot(of pid: Int32) -> Int {
        if lastOwner < owners.count, owners[lastOwner].pid == pid { return lastOwner }
        if let found = ownerIndex[pid] {
            lastOwner = found
        } else {
            lastOwner = owners.count
            ownerIndex[pid] = lastOwner
            owners.append(OwnerSums(pid: pid))
        }
        return lastOwner
    }

    /// What the owners allocated and freed since the last call, and starts counting afresh.
    mutating func takeActivity() -> OwnerActivity {
        var counts: [Int32: (allocations: Int, frees: Int)] = [:]
        for owner in owners where owner.allocated != 0 || owner.freed != 0 {
            counts[owner.pid] = (owner.allocated, owner.freed)
        }
        for index in owners.indices {
            owners[index].allocated = 0
            owners[index].freed = 0
        }
        // Owners that hold nothing leave; the index is rebuilt only when one did.
        if owners.contains(where: { $0.allocations == 0 }) {
            owners.removeAll { $0.allocations == 0 }
            ownerIndex = Dictionary(uniqueKeysWithValues: owners.enumerated().map { ($1.pid, $0) })
        }
        return OwnerActivity(counts: counts)
    }
}
