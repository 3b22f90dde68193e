// One consistent copy of a cache's state: the thing every figure is computed from.

import ShmFormat

/// A copy of a cache file's header and buddy words, taken at one moment, plus (optionally) what
/// the allocation headers said. A value: keep as many as you like, compare two for rates.
public struct CacheSnapshot: Sendable {
    /// The file the snapshot was taken of.
    public let path: String
    /// The header as read for this snapshot (its counters are current).
    public let header: FileHeader
    /// Every block's buddy word, the null region's blocks included (index = block number).
    public internal(set) var words: [UInt64]
    /// The free-space index region's words (the allocator's per-class block bitmaps), copied just
    /// after the buddy words; empty for a file without an index.
    public let indexWords: [UInt64]
    /// Owners and requested sizes from the allocation headers; `nil` when the snapshot skipped the scan.
    public let allocations: AllocationCensus?
    /// When the copy started, for rates.
    public let takenAt: ContinuousClock.Instant
    /// When the copy started, in nanoseconds since the Unix epoch, for display.
    public let wallClockNanoseconds: UInt64

    /// A snapshot from parts (the inspector builds them; tests and tools may too).
    public init(
        path: String, header: FileHeader, words: [UInt64], indexWords: [UInt64] = [], allocations: AllocationCensus?,
        takenAt: ContinuousClock.Instant, wallClockNanoseconds: UInt64
    ) {
        precondition(words.count == header.geometry.blockCount, "one word per block")
        self.path = path
        self.header = header
        self.words = words
        self.indexWords = indexWords
        self.allocations = allocations
        self.takenAt = takenAt
        self.wallClockNanoseconds = wallClockNanoseconds
    }

    /// The file's layout.
    public var layout: FileLayout { header.layout }
    /// The file's geometry.
    public var geometry: Geometry { header.geometry }
    /// The shape of every block's tree.
    public var tree: BuddyTree { header.geometry.tree }

    /// The blocks that can hold allocations (all but the null region).
    public var usableBlocks: Range<Int> { layout.nullBlockCount..<geometry.blockCount }

    /// True for the blocks under the null page: reserved, never allocated.
    public func isNullBlock(_ block: Int) -> Bool { block < layout.nullBlockCount }

    /// The share of block `block`'s bytes taken by allocations, 0...1 (1 for null blocks).
    public func fill(ofBlock block: Int) -> Double {
        Double(tree.takenLeafCount(words[block])) / Double(tree.leafCount)
    }

    /// The mean fill of `blocks` (what one heatmap cell shows when it stands for several blocks).
    public func meanFill(ofBlocks blocks: Range<Int>) -> Double {
        guard !blocks.isEmpty else { return 0 }
        var taken = 0
        for block in blocks { taken += tree.takenLeafCount(words[block]) }
        return Double(taken) / Double(blocks.count * tree.leafCount)
    }

    /// Splits all blocks into `cellCount` consecutive groups of (nearly) equal size, for a heatmap
    /// of that many cells: cell i covers `heatmapGroup(i, of: cellCount)`.
    public func heatmapGroup(_ cell: Int, of cellCount: Int) -> Range<Int> {
        let blocks = geometry.blockCount
        let cells = max(1, min(cellCount, blocks))
        return (cell * blocks / cells)..<((cell + 1) * blocks / cells)
    }

    /// The mean fill of every heatmap cell, for a heatmap of at most `cellCount` cells.
    public func heatmap(cellCount: Int) -> [Double] {
        let cells = max(1, min(cellCount, geometry.blockCount))
        return (0..<cells).map { meanFill(ofBlocks: heatmapGroup($0, of: cells)) }
    }
}

/// What the allocation headers of one snapshot said, summed.
///
/// A header is *readable* when its check byte matches and its order and requested size fit the
/// node it sits in. A node that names no owner is attributed to the process whose owner-table
/// intent names it (claiming or freeing it, or dead while doing so). Of the rest, a node whose
/// block's word changed between the copy of the words and the read of the header was in flight
/// (claimed or freed meanwhile) and is counted in ``inFlightHeaders``; what remains is damaged
/// (overwritten by user code) and counted in ``unreadableHeaders``.
public struct AllocationCensus: Hashable, Sendable {
    /// Requested bytes per order, over readable headers.
    public let requestedBytesByOrder: [Int]
    /// Allocations per owner, largest holder first (ties by pid).
    public let owners: [OwnerAllocations]
    /// Allocation nodes whose header could not be read while their block held still: damaged.
    public let unreadableHeaders: Int
    /// Allocation nodes whose header did not match because their block changed after the words
    /// were copied (a claim or free in flight), not damage.
    public let inFlightHeaders: Int

    /// Requested bytes over all readable headers.
    public var requestedBytes: Int { requestedBytesByOrder.reduce(0, +) }

    /// What one allocation node's header counts for.
    public enum NodeReading: Hashable, Sendable {
        /// An allocation of the owner and size the header (or the claimer) names.
        case counted(AllocationHeader)
        /// Claimed or freed while it was read: counted for nobody.
        case inFlight
        /// Damaged: counted for nobody.
        case unreadable
    }

    /// What the raw header found at an allocation node of `order` counts for. A header that names
    /// no owner (not written yet, or left by a free that has not cleared the node yet) counts for
    /// `claimer`, the process whose owner-table intent names the node, when there is one (asked
    /// only then). `blockChanged` says whether the node's block changed since its word was read;
    /// it is asked only for a header that decodes to nothing usable.
    public static func reading(
        rawHeader: UInt64, order: Int, geometry: Geometry, claimer: @autoclosure () -> Int32?,
        blockChanged: @autoclosure () -> Bool
    ) -> NodeReading {
        let stored = AllocationHeader(rawValue: rawHeader)
        if let stored, geometry.isPlausible(stored, atOrder: order) { return .counted(stored) }
        if let claimer = claimer() {
            // A released header tells what was last asked for the node (plausible once it names the
            // claimer); a stale one does not.
            let asked = stored.map {
                AllocationHeader(ownerPID: claimer, requestedSize: $0.requestedSize, order: $0.order)
            }
            if let asked, geometry.isPlausible(asked, atOrder: order) { return .counted(asked) }
            return .counted(AllocationHeader(ownerPID: claimer, requestedSize: 0, order: order))
        }
        return blockChanged() ? .inFlight : .unreadable
    }

    /// Sums headers one at a time; `census(state:)` finishes.
    public struct Builder {
        let geometry: Geometry
        var requestedBytesByOrder: [Int]
        var byOwner: [Int32: OwnerAllocations] = [:]
        /// The owner of the latest headers, summed here until another owner's header comes: a
        /// writer's allocations sit together, and this spares a dictionary lookup per header.
        var current: OwnerAllocations?
        var unreadable = 0
        var inFlight = 0

        /// A builder for headers of a cache of `geometry`.
        public init(geometry: Geometry) {
            self.geometry = geometry
            requestedBytesByOrder = Array(repeating: 0, count: geometry.orderCount)
        }

        /// Adds the raw header found at an allocation node of `order`. A header that names no
        /// owner (not written yet, or left by a free that has not cleared the node yet) counts
        /// for `claimer`, the process whose owner-table intent names the node, when there is one
        /// (asked only then).
        ///
        /// `blockChanged` says whether the node's block changed since the words were copied; it is
        /// asked only for a header that decodes to nothing usable.
        public mutating func add(
            rawHeader: UInt64, order: Int, claimer: @autoclosure () -> Int32? = nil,
            blockChanged: @autoclosure () -> Bool = false
        ) {
            add(
                AllocationCensus.reading(
                    rawHeader: rawHeader, order: order, geometry: geometry, claimer: claimer(),
                    blockChanged: blockChanged()), order: order)
        }

        /// Adds what an allocation node of `order` counts for.
        public mutating func add(_ reading: NodeReading, order: Int) {
            let header: AllocationHeader
            switch reading {
            case .counted(let counted): header = counted
            case .inFlight:
                inFlight += 1
                return
            case .unreadable:
                unreadable += 1
                return
            }
            requestedBytesByOrder[order] += header.requestedSize
            if current?.pid != header.ownerPID {
                flushCurrent()
                current = byOwner.removeValue(forKey: header.ownerPID) ?? OwnerAllocations(pid: header.ownerPID)
            }
            current!.add(nodeSize: geometry.nodeSize(ofOrder: order), requestedSize: header.requestedSize)
        }

        /// Moves the current owner's sums back into `byOwner`.
        private mutating func flushCurrent() {
            if let owner = current { byOwner[owner.pid] = owner }
            current = nil
        }

        /// The census, with each owner's process state as `state` gives it, and the command name
        /// of each live owner as `command` gives it.
        public func census(state: (Int32) -> ProcessState, command: (Int32) -> String? = { _ in nil })
            -> AllocationCensus
        {
            var builder = self
            builder.flushCurrent()
            let owners = builder.byOwner.values.map { owner in
                var owner = owner
                let ownerState = state(owner.pid)
                owner.mark(
                    ownerState, command: ownerState == .alive ? command(owner.pid) : nil, capacity: geometry.capacity)
                return owner
            }
            return AllocationCensus(
                requestedBytesByOrder: requestedBytesByOrder,
                owners: OwnerOrder.byBytes.sorted(owners),
                unreadableHeaders: unreadable,
                inFlightHeaders: inFlight)
        }
    }
}

/// The allocations one process holds.
public struct OwnerAllocations: Hashable, Sendable, Codable {
    /// The owner's pid, from the allocation headers.
    public let pid: Int32
    /// Whether the owner was ``ProcessState/alive`` when the snapshot was taken: a zombie is not,
    /// for it can never free again. Kept beside ``state`` for readers of the JSON key `alive`.
    public private(set) var alive: Bool
    /// What became of the owner when the snapshot was taken.
    public private(set) var state: ProcessState
    /// The owner's command name (`/proc/<pid>/comm`) while it is alive; `nil` otherwise.
    public private(set) var command: String?
    /// The number of allocations.
    public private(set) var allocations: Int
    /// Their node bytes (rounded sizes, headers included).
    public private(set) var bytes: Int
    /// The bytes their callers asked for.
    public private(set) var requestedBytes: Int

    /// The share of the cache's capacity (its data region) these bytes take, 0...1.
    public private(set) var share: Double
    /// Allocations per second over the snapshot's rate window; absent without a previous frame.
    public private(set) var allocationsPerSecond: Double?
    /// Frees per second over the snapshot's rate window; absent without a previous frame.
    public private(set) var freesPerSecond: Double?

    init(pid: Int32, allocations: Int = 0, bytes: Int = 0, requestedBytes: Int = 0) {
        self.pid = pid
        alive = false
        state = .dead
        self.allocations = allocations
        self.bytes = bytes
        self.requestedBytes = requestedBytes
        share = 0
    }

    /// Records the owner's allocations and frees per second (`nil`: unknown).
    mutating func setRates(_ rates: (allocations: Double, frees: Double)?) {
        allocationsPerSecond = rates?.allocations
        freesPerSecond = rates?.frees
    }

    /// Records the owner's process state and, while it is alive, its command name, and its
    /// share of a cache of `capacity` bytes.
    mutating func mark(_ state: ProcessState, command: String?, capacity: Int) {
        share = capacity > 0 ? Double(bytes) / Double(capacity) : 0
        self.state = state
        self.command = command
        alive = state == .alive
    }

    /// The owner without the path cache nodes it allocated (`held`), clamped at nothing, its
    /// share of a cache of `capacity` bytes recomputed.
    func removing(_ held: PathCacheHolding, capacity: Int) -> OwnerAllocations {
        var owner = self
        owner.allocations = max(0, allocations - held.allocations)
        owner.bytes = max(0, bytes - held.bytes)
        owner.requestedBytes = max(0, requestedBytes - held.requestedBytes)
        owner.share = capacity > 0 ? Double(owner.bytes) / Double(capacity) : 0
        return owner
    }

    /// Counts one more allocation of `nodeSize` bytes for which `requestedSize` were asked.
    mutating func add(nodeSize: Int, requestedSize: Int) {
        allocations += 1
        bytes += nodeSize
        requestedBytes += requestedSize
    }
}
