// Everything the inspector reports about one snapshot, as one value.

import Foundation
import ShmFormat
import Synchronization

/// The statistics of one ``CacheSnapshot``: memory, blocks, size classes, fragmentation, owners.
///
/// Byte figures follow one invariant, true of every snapshot of a healthy cache:
/// `allocatedBytes + freeBytes + reservedBytes == managedBytes` (the file's size). Allocated bytes
/// count whole nodes (the header and the rounding included); requested bytes count what callers
/// asked for; their difference is the internal fragmentation.
public struct CacheStatistics: Hashable, Sendable {
    /// One size class (order) of the buddy trees.
    public struct SizeClass: Hashable, Sendable {
        /// The order: 0 is `minSize`.
        public let order: Int
        /// The node size of this class in bytes.
        public let size: Int
        /// Live allocations of this size.
        public let allocations: Int
        /// Requested bytes of those allocations (from their headers); `nil` without a header scan.
        public let requestedBytes: Int?
        /// Maximal free chunks of this size (free nodes whose parent is not free): a buddyinfo column.
        public let freeChunks: Int
        /// Blocks whose largest free chunk has this size: how many blocks can take a request of
        /// this size but none larger.
        public let blocksWithLargestFreeChunk: Int
        /// The kernel's unusable free space index for this order, 0...1 (see ``FragmentationIndices``).
        public let unusableFreeIndex: Double
        /// The kernel's fragmentation index for this order: −1 when a chunk this large is free,
        /// else 0...1 (see ``FragmentationIndices``).
        public let fragmentationIndex: Double
        /// How many more requests of this size would fit right now, one after another: the free
        /// nodes of this order. In a buddy tree the free nodes of one order are aligned and
        /// disjoint, and a request of that order takes exactly one of them (best fit or not), so
        /// this is exact, not an estimate; it counts each size alone, not a mix.
        public let fits: Int

        /// Node bytes of this class's live allocations.
        public var allocatedBytes: Int { allocations * size }

        /// The fragmentation index where a request of this size would fail; `nil` where it would
        /// succeed (the kernel's −1), which reports show as a dash rather than as a number.
        public var failingFragmentationIndex: Double? { fragmentationIndex < 0 ? nil : fragmentationIndex }
    }

    /// How many blocks are in which state (also the report's `blocks` object).
    public struct BlockCounts: Hashable, Sendable, Codable {
        /// Usable blocks with nothing allocated.
        public let empty: Int
        /// Usable blocks partly allocated.
        public let partial: Int
        /// Usable blocks with every byte allocated.
        public let full: Int
        /// Blocks under the null page (reserved, never allocated).
        public let null: Int

        /// Block counts from their fields.
        public init(empty: Int, partial: Int, full: Int, null: Int) {
            self.empty = empty
            self.partial = partial
            self.full = full
            self.null = null
        }
    }

    /// The geometry of the cache.
    public let geometry: Geometry
    /// The file's format version.
    public let formatVersion: UInt32
    /// The file's size: every byte the cache manages.
    public let managedBytes: Int
    /// Header page, words, index and null region: bytes that can never be allocated.
    public let reservedBytes: Int
    /// Node bytes of all live allocations (taken leaves × `minSize`).
    public let allocatedBytes: Int
    /// Bytes in free nodes of usable blocks.
    public let freeBytes: Int
    /// Bytes requested by the callers of the live allocations; `nil` without a header scan.
    public let requestedBytes: Int?
    /// Live allocations (allocation nodes in the words).
    public let liveAllocations: Int
    /// The size of the largest free chunk, 0 when nothing is free.
    public let largestFreeChunk: Int
    /// Block counts.
    public let blocks: BlockCounts
    /// Per size class, smallest first.
    public let sizeClasses: [SizeClass]
    /// Owners of the allocations, largest holder first; `nil` without a header scan. After
    /// ``attributing(_:)``, without the path cache's nodes.
    public private(set) var owners: [OwnerAllocations]?
    /// The path cache's nodes, taken away from their owners by ``attributing(_:)``; `nil` before.
    public private(set) var heldByPathCache: PathCacheHolding?
    /// Allocation nodes whose header could not be read although their block held still
    /// (damaged); `nil` without a header scan.
    public let unreadableHeaders: Int?
    /// Allocation nodes claimed or freed while the snapshot was taken; `nil` without a header scan.
    public let inFlightHeaders: Int?
    /// Words that break the buddy invariant: 0 in a healthy cache.
    public let invalidWords: Int
    /// The header's count of allocations that found no room, since creation.
    public let failedAllocations: UInt64
    /// The header's count of refused frees, since creation.
    public let invalidFrees: UInt64
    /// The census of the usable blocks' words, for any figure not listed here.
    public let census: BuddyCensus

    /// Computes the statistics of `snapshot`.
    ///
    /// - Parameter threads: how many threads share the census pass; on large caches (≥ 2^16
    ///   blocks) they take turns at `piecesPerThread` ranges each, whose censuses add up. 1 keeps
    ///   it on the calling thread.
    public init(_ snapshot: CacheSnapshot, threads: Int = Self.defaultThreads) {
        let tree = snapshot.tree
        let words = snapshot.words
        let usable = snapshot.usableBlocks
        @Sendable func censusOfPart(_ part: Int, of parts: Int) -> BuddyCensus {
            let start = usable.lowerBound + part * usable.count / parts
            let end = usable.lowerBound + (part + 1) * usable.count / parts
            return words[start..<end].withUnsafeBufferPointer { BuddyCensus(tree: tree, words: $0) }
        }
        let workers = usable.count < 1 << 16 ? 1 : max(1, threads)
        let census: BuddyCensus
        if workers == 1 {
            census = censusOfPart(0, of: 1)
        } else {
            // The workers claim pieces from a shared counter rather than one range each: a worker
            // that starts late (another process holds its core) leaves its share to the others
            // instead of finishing last.
            let pieces = workers * Self.piecesPerThread
            //
            // Each worker writes only its own result slot, and the slots are read only after
            // `concurrentPerform` returns, which orders every worker's writes before the reads. (A
            // `Mutex` would do the same, but ThreadSanitizer cannot see its futex-based locking and
            // reports the array it guards as raced.)
            let nextPiece = Atomic<Int>(0)
            nonisolated(unsafe) let partials = UnsafeMutableBufferPointer<BuddyCensus>.allocate(capacity: workers)
            defer { partials.deallocate() }
            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                var partial = BuddyCensus(tree: tree)
                while case let piece = nextPiece.wrappingAdd(1, ordering: .relaxed).oldValue, piece < pieces {
                    partial = partial + censusOfPart(piece, of: pieces)
                }
                partials.initializeElement(at: worker, to: partial)
            }
            census = partials.reduce(BuddyCensus(tree: tree), +)
            partials.deinitialize()
        }
        self.init(census: census, snapshot: snapshot)
    }

    /// The statistics of `snapshot`, computed from those of an `earlier` snapshot of the same
    /// cache by recounting only the blocks whose word changed: a live view refreshing many times a
    /// second pays for a comparison of the words plus the changed blocks, not a full census.
    public init(_ snapshot: CacheSnapshot, updating previous: CacheStatistics, of earlier: CacheSnapshot) {
        self.init(
            census: SnapshotChanges(from: earlier, to: snapshot).census(updating: previous.census), snapshot: snapshot)
    }

    /// Pieces of the census pass per thread, claimed one at a time.
    static let piecesPerThread = 16

    /// The threads a census pass uses by default: one per processor, at most 4.
    public static var defaultThreads: Int { min(4, ProcessInfo.processInfo.activeProcessorCount) }

    /// Statistics from a census already computed for `snapshot`'s usable blocks (e.g. kept up to
    /// date incrementally from the blocks that changed), with the owner figures of `allocations`
    /// (e.g. an ``OwnerLedger``'s) or else of the snapshot's own header scan.
    public init(census: BuddyCensus, snapshot: CacheSnapshot, allocations: AllocationCensus? = nil) {
        let allocations = allocations ?? snapshot.allocations
        let geometry = snapshot.geometry
        let layout = snapshot.layout
        self.geometry = geometry
        self.census = census
        formatVersion = snapshot.header.formatVersion
        managedBytes = layout.fileSize
        reservedBytes = layout.reservedBytes
        allocatedBytes = census.takenLeaves * geometry.minSize
        freeBytes = census.freeLeaves * geometry.minSize
        requestedBytes = allocations?.requestedBytes
        liveAllocations = census.allocationsByOrder.reduce(0, +)
        largestFreeChunk = census.largestFreeOrder.map(geometry.nodeSize(ofOrder:)) ?? 0
        blocks = BlockCounts(
            empty: census.emptyWords, partial: census.partialWords, full: census.fullWords, null: layout.nullBlockCount)
        let maximalFree = census.maximalFreeByOrder
        let indices = FragmentationIndices(freeChunksByOrder: maximalFree)
        sizeClasses = (0..<geometry.orderCount).map { order in
            SizeClass(
                order: order, size: geometry.nodeSize(ofOrder: order),
                allocations: census.allocationsByOrder[order],
                requestedBytes: allocations?.requestedBytesByOrder[order],
                freeChunks: maximalFree[order],
                blocksWithLargestFreeChunk: census.wordsByLargestFreeOrder[order + 1],
                unusableFreeIndex: indices.unusableFreeIndex(order: order),
                fragmentationIndex: indices.fragmentationIndex(order: order),
                fits: census.freeNodesByOrder[order])
        }
        owners = allocations?.owners
        unreadableHeaders = allocations?.unreadableHeaders
        inFlightHeaders = allocations?.inFlightHeaders
        invalidWords = census.invalidWords
        failedAllocations = snapshot.header.failedAllocations
        invalidFrees = snapshot.header.invalidFrees
    }

    // MARK: - Derived figures

    /// Bytes the allocations spend beyond what was requested (headers and rounding).
    public var internalFragmentationBytes: Int? { requestedBytes.map { allocatedBytes - $0 } }

    /// External fragmentation: the share of the free bytes that cannot serve the largest request
    /// (a whole block), i.e. the free bytes outside whole free blocks over the free bytes; 0 when
    /// nothing is free.
    ///
    /// The classic `1 − largest free chunk / free bytes` is about 1 in any cache of more than one
    /// block, since no chunk can exceed a block: it would call an empty cache fragmented. This one
    /// is 0 for an empty cache and rises as free space shatters into partly used blocks.
    public var externalFragmentation: Double {
        guard freeBytes > 0, let largestClass = sizeClasses.last else { return 0 }
        return 1 - Double(largestClass.fits * largestClass.size) / Double(freeBytes)
    }

    /// The share of the usable bytes that is allocated, 0...1.
    public var utilisation: Double {
        let usable = allocatedBytes + freeBytes
        return usable == 0 ? 0 : Double(allocatedBytes) / Double(usable)
    }

    /// These statistics with the path cache's nodes (`pathCache`'s owners) counted as held by the
    /// path cache (``heldByPathCache``) instead of by the owners that allocated them: a writer
    /// that exits leaves its entries to the cache, not leaked. The nodes of a walk that ended
    /// before these statistics were taken are all still there (the path cache never frees a
    /// published node), so each owner keeps at least what is taken away. A dead owner left
    /// holding nothing is dropped (it leaked nothing); a live one stays, holding nothing: it is
    /// still a process sharing the cache (a writer that only inserted paths), and it is counted
    /// as one.
    public func attributing(_ pathCache: PathCacheAttribution) -> CacheStatistics {
        var attributed = self
        attributed.heldByPathCache = pathCache.held
        attributed.owners = owners.map { owners in
            let remaining = owners.map { owner in
                pathCache.byOwner[owner.pid].map { owner.removing($0, capacity: geometry.capacity) } ?? owner
            }.filter { $0.allocations > 0 || $0.alive }
            return OwnerOrder.byBytes.sorted(remaining)
        }
        return attributed
    }

    /// Node bytes held by owners that no longer run: leaked; `nil` without a header scan.
    public var leakedBytes: Int? { owners.map { $0.filter { !$0.alive }.reduce(0) { $0 + $1.bytes } } }

    /// Owners that were alive when the snapshot was taken; `nil` without a header scan.
    public var aliveOwnerCount: Int? { owners.map { $0.filter(\.alive).count } }
}
