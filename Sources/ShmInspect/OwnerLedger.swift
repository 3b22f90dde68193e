// Who holds what, kept block by block so that a live view can update it from the blocks that
// changed instead of re-reading every allocation header.
//
// A full header scan of a cache with a million allocations reads a million headers spread over
// the whole data region; between two refreshes of a busy cache a few per cent of its blocks
// change. The ledger keeps, for every block that holds allocations, what each of its allocation
// nodes counted for (owner, requested size, or in flight / damaged), each record naming its node.
// In a changed block, the nodes that disappeared are subtracted and the headers of those that
// appeared are read; the nodes that held at both readings keep their records (most of a changed
// block's allocations did not change, and reading them again was most of a busy refresh). Which
// nodes a block held is its earlier word's allocations, which the refresh has at hand: a changed
// block is planned without touching the ledger, whose records it then changes in one visit. Nodes
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
    /// 0–31, requested size in 32–51, order in 52–55), the node in bits 56–61 (set where the
    /// ledger stores it) and its kind in bits 62–63.
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

        /// The record of `rawHeader`, found at a node of `order`, when it is a plausible
        /// allocation's header (the usual one): the header's body as it is, which is the record's
        /// layout; `nil` for any other (``AllocationCensus/reading(rawHeader:order:geometry:claimer:blockChanged:)``
        /// tells what it counts for). Spares the usual header the way through a ``AllocationCensus/NodeReading``.
        @inline(__always)
        static func counted(rawHeader: UInt64, order: Int, geometry: Geometry) -> NodeRecord? {
            guard let header = AllocationHeader(rawValue: rawHeader), geometry.isPlausible(header, atOrder: order)
            else {
                return nil
            }
            return NodeRecord(rawValue: rawHeader & 0x00FF_FFFF_FFFF_FFFF)
        }

        var kind: UInt64 { rawValue &>> 62 }
        /// The node it is the record of, in its block.
        var node: Int { Int(truncatingIfNeeded: (rawValue &>> 56) & 0x3F) }
        /// The record, as that of node `node`.
        func placed(at node: Int) -> NodeRecord {
            NodeRecord(rawValue: rawValue & ~(0x3F &<< 56) | UInt64(truncatingIfNeeded: node) &<< 56)
        }
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

        /// Takes away one allocation of `bytes` node bytes and `requested` bytes; with `counting`,
        /// as a free (allocations are added in runs, by ``OwnerLedger/addAppeared(_:counting:)``).
        /// Wrapping arithmetic: the sums are bounded by the cache's bytes, and the overflow checks
        /// were a tenth of a record's update.
        mutating func remove(bytes: Int, requested: Int, counting: Bool) {
            allocations &-= 1
            self.bytes &-= bytes
            requestedBytes &-= requested
            if counting { freed &+= 1 }
        }
    }

    let geometry: Geometry
    /// Each block's contribution, in pages (index: block / pageBlocks), a page opened when one
    /// of its blocks first holds allocations. A refresh visits the changed blocks in ascending
    /// order, so neighbours share a page.
    private(set) var storage: Storage
    static let pageBlocks = 1 << pageShift
    /// log2(``pageBlocks``): a block's page is found by a shift.
    static let pageShift = 10
    /// Buffers an update reads headers into, kept from one update to the next.
    struct Scratch {
        /// The plan of each block updated.
        var plans: [BlockPlan] = []
        /// What the nodes to read were read as, in order of blocks and nodes (the first ones: the
        /// array only grows, so that an update writes in place without counting its nodes first).
        var records: [NodeRecord] = []
    }
    var scratch = Scratch()
    /// The owners, each with its sums (an owner that holds nothing and did nothing since the last
    /// ``takeActivity()`` is dropped then), and where each pid's sums are. Internal, not private,
    /// for the sums' extension (OwnerLedger+Sums.swift); written only by the ledger's own methods.
    var owners: [OwnerSums] = []
    var ownerIndex: [Int32: Int] = [:]
    /// The owner whose sums changed last: a writer's allocations sit together, and this spares
    /// a hash for most records.
    var lastOwner = 0
    var requestedBytesByOrder: [Int]
    var inFlight = 0
    var unreadable = 0
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

    /// What an update does with one block: the allocation nodes its last reading held and those
    /// of them held in flight, the allocation nodes of its new word, and those of them whose
    /// headers are read (the others keep their records).
    struct BlockPlan {
        var heldNodes: UInt64 = 0
        var heldInFlight: UInt64 = 0
        var nodes: UInt64 = 0
        var nodesToRead: UInt64 = 0
    }

    /// The plan that brings a block whose last reading held `heldNodes` (`heldInFlight` of them
    /// in flight) up to `word`: the nodes to read are the allocations of `word` not held as
    /// settled allocations. A node that held a settled allocation at both readings keeps its
    /// record unread, as a block whose word did not change does: a node freed and allocated again
    /// between two readings is not seen (as for the rates), and most of a changed block's
    /// allocations have not changed.
    @inline(__always)
    func plan(heldNodes: UInt64, heldInFlight: UInt64 = 0, word: UInt64) -> BlockPlan {
        let nodes = geometry.tree.allocations(word)
        return BlockPlan(
            heldNodes: heldNodes, heldInFlight: heldInFlight, nodes: nodes,
            nodesToRead: nodes & ~(heldNodes & ~heldInFlight))
    }

    /// The plan that brings block `block` up to `word`, from the ledger's own records: for a
    /// block with nodes in flight, and where the block's earlier word is not at hand. (A refresh
    /// plans its other changed blocks from their earlier words, which are the nodes the ledger
    /// holds, without touching the ledger.)
    func plan(block: Int, word: UInt64) -> BlockPlan {
        let (page, index) = storage.page(of: block)
        guard !page.pointee.isEmpty else { return plan(heldNodes: 0, word: word) }
        let (held, inFlight) = page.pointee.withRecords(of: index) { records in
            records.reduce(into: (UInt64(0), UInt64(0))) { nodes, record in
                let bit = UInt64(1) &<< UInt64(record.node)
                nodes.0 |= bit
                if record.isUnsettled { nodes.1 |= bit }
            }
        }
        return plan(heldNodes: held, heldInFlight: inFlight, word: word)
    }

    /// How many blocks ahead a block's place is asked for: its misses take about as long as
    /// updating this many blocks.
    static let placeLookahead = 16
    /// How many blocks ahead a block's records are asked for: after its place has come.
    static let recordLookahead = 8

    /// The pages, made this ledger's own (copied when another ledger shares them), to be changed.
    private mutating func uniquePages() -> Storage {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return storage
    }

    /// Brings block `block`'s contribution up to `word`, whose nodes to read (as
    /// ``plan(block:word:)`` gives them) were read as `read` (ascending nodes); the other nodes
    /// keep their records. With `counting`, an allocation node that appeared counts as an
    /// allocation of its new owner and one that disappeared as a free of its old one (the same
    /// lower bound as ``SnapshotRates``).
    mutating func replace(block: Int, word: UInt64, read: ArraySlice<NodeRecord>, counting: Bool) {
        replace(blocks: [block], plans: [plan(block: block, word: word)][...], records: read, counting: counting)
    }

    /// Brings each of `blocks` (ascending, each once) up to its plan in `plans` (one per block,
    /// as ``plan(block:word:)`` gave it), the nodes to read read as `records` (in order of blocks
    /// and nodes), as ``replace(block:word:read:counting:)`` does one block. Each block's place
    /// and records are asked for a few blocks ahead of their use.
    mutating func replace(
        blocks: [Int], plans: ArraySlice<BlockPlan>, records: ArraySlice<NodeRecord>, counting: Bool
    ) {
        precondition(blocks.count == plans.count, "one plan per block")
        // Buffers, unchecked: each block is checked once, as its page is found.
        blocks.withUnsafeBufferPointer { blocks in
            records.withUnsafeBufferPointer { records in
                plans.withUnsafeBufferPointer { plans in
                    withSums(adding: records, counting: counting) { ledger, sums, pages in
                        var update = BlockUpdate(read: records, sums: sums, pages: pages, counting: counting)
                        for position in blocks.indices {
                            let placeAhead = position &+ Self.placeLookahead
                            let recordsAhead = position &+ Self.recordLookahead
                            if placeAhead < blocks.count { pages.prefetchPlace(of: blocks[placeAhead]) }
                            if recordsAhead < blocks.count { pages.prefetchRecords(of: blocks[recordsAhead]) }
                            ledger.replace(block: blocks[position], plan: plans[position], with: &update)
                        }
                        precondition(update.next == records.count, "more records read than the blocks' nodes to read")
                    }
                }
            }
        }
    }

    /// Adds `records` to the sums as nodes that appeared (``addAppeared(_:counting:)``), then calls
    /// `body` with this ledger, its sums as buffers and its pages made its own: both then change
    /// in place, where each write to an array checks that it is unique.
    private mutating func withSums(
        adding records: UnsafeBufferPointer<NodeRecord>, counting: Bool,
        _ body: (inout OwnerLedger, SumBuffers, Storage) -> Void
    ) {
        addAppeared(records, counting: counting)
        let pages = uniquePages()
        withSumBuffers { ledger, sums in body(&ledger, sums, pages) }
    }

    /// The owners' sums and the requested bytes by order, taken out of the ledger while blocks'
    /// records are replaced.
    struct SumBuffers {
        let owners: UnsafeMutableBufferPointer<OwnerSums>
        let requestedBytesByOrder: UnsafeMutableBufferPointer<Int>
    }

    /// What a batch's blocks share while each is brought up to its plan.
    private struct BlockUpdate {
        /// The records read, and the next one to take.
        let read: UnsafeBufferPointer<NodeRecord>
        var next = 0
        let sums: SumBuffers
        /// The ledger's pages, its own.
        let pages: Storage
        let counting: Bool
    }

    /// Brings block `block` up to `plan`, its nodes to read taken from `update`'s records.
    ///
    /// Only the nodes that disappeared or are read change the block's records: one that
    /// disappeared is taken out of the sums and its record's slot filled with the last record;
    /// one read again (held in flight) replaces its record, and one that appeared is appended
    /// (the run moved to a longer one when full). The nodes held settled at both readings keep
    /// their records where they are, untouched.
    @inline(__always)
    private mutating func replace(block: Int, plan: BlockPlan, with update: inout BlockUpdate) {
        let (page, index) = update.pages.page(of: block)
        if page.pointee.isEmpty {
            guard plan.nodes != 0 else { return }
            page.pointee.open()
        }
        var place = page.pointee.places![index]
        let (oldNodes, newNodes) = (plan.heldNodes, plan.nodes)
        // Checked: a plan from another reading than the ledger's would count records twice.
        precondition(place.count == oldNodes.nonzeroBitCount, "a plan made from another reading of block \(block)")
        var run = page.pointee.run(at: place)
        var count = place.count
        var disappeared = oldNodes & ~newNodes
        while disappeared != 0 {
            let slot = Self.slot(ofNode: disappeared.trailingZeroBitCount, in: run, count: count)
            disappeared &= disappeared &- 1
            subtract(run[slot], counting: update.counting, from: update.sums)
            count &-= 1
            run[slot] = run[count]
        }
        var settled = newNodes
        var toRead = plan.nodesToRead
        while toRead != 0 {
            let node = toRead.trailingZeroBitCount
            let bit = toRead & (0 &- toRead)
            toRead &= toRead &- 1
            // `read` is an unchecked buffer, of one record for each node read.
            precondition(update.next < update.read.count, "fewer records read than the blocks' nodes to read")
            let record = update.read[update.next].placed(at: node)
            update.next &+= 1
            if record.isUnsettled { settled &= ~bit }
            if oldNodes & bit != 0 {
                replaceReadAgain(record, in: run, count: count, with: update)
            } else {
                if count == place.capacity {
                    // Room for every node still to be added, so that the run moves once.
                    place.count = count
                    run = page.pointee.grow(&place, toHold: count &+ 1 &+ (toRead & ~oldNodes).nonzeroBitCount)
                }
                run[count] = record
                count &+= 1
            }
        }
        assert(count == newNodes.nonzeroBitCount, "a plan made from another reading")
        place.count = count
        if count == 0, place.hasRun { page.pointee.release(&place) }
        page.pointee.places![index] = place
        // The set is asked only when the block enters or leaves it: most changed blocks do neither.
        if settled != newNodes {
            unsettledBlocks.insert(block)
        } else if plan.heldInFlight != 0 {
            unsettledBlocks.remove(block)
        }
    }

    /// Replaces the record of `record`'s node, read again, among the `count` records at `run`:
    /// neither an allocation nor a free. Rare (only nodes held in flight are read again), and
    /// kept out of the loop over a block's nodes, whose registers its sums would take.
    @inline(never)
    private mutating func replaceReadAgain(
        _ record: NodeRecord, in run: UnsafeMutablePointer<NodeRecord>, count: Int, with update: BlockUpdate
    ) {
        let slot = Self.slot(ofNode: record.node, in: run, count: count)
        subtract(run[slot], counting: false, from: update.sums)
        if update.counting { uncountAllocation(of: record, in: update.sums) }
        run[slot] = record
    }

    /// The slot of node `node`'s record among the `count` records at `run`, which hold one.
    @inline(__always)
    private static func slot(ofNode node: Int, in run: UnsafeMutablePointer<NodeRecord>, count: Int) -> Int {
        var slot = 0
        // Checked: a record missing would be a ledger out of step with its plans.
        while run[slot].node != node {
            slot &+= 1
            precondition(slot < count, "a node held without its record")
        }
        return slot
    }
}
