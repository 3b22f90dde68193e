// The snapshot as one JSON object with stable keys (documented in docs/snapshot.md).

import Foundation
import ShmFormat

/// The machine-readable form of a snapshot's statistics: what `shmtop snapshot --json` prints.
///
/// Keys are stable; maps keyed by size use the node size in bytes as a decimal string ("32",
/// "64", …). Optional values are absent when the snapshot skipped the allocation header scan (and an
/// allocation's header fields when its header did not decode); `fragmentationIndex` is `null` for
/// the sizes where a request would succeed.
public struct SnapshotReport: Codable, Hashable, Sendable {
    /// `geometry`: the cache's shape.
    public struct GeometryReport: Codable, Hashable, Sendable {
        /// The smallest node in bytes.
        public let minSize: Int
        /// The largest node, which is the block size.
        public let maxSize: Int
        /// Blocks, the null region included.
        public let blockCount: Int
        /// The data region in bytes.
        public let capacity: Int
        /// The page size the file was laid out with.
        public let pageSize: Int

        /// A geometry entry from its fields.
        public init(minSize: Int, maxSize: Int, blockCount: Int, capacity: Int, pageSize: Int) {
            self.minSize = minSize
            self.maxSize = maxSize
            self.blockCount = blockCount
            self.capacity = capacity
            self.pageSize = pageSize
        }
    }

    /// `freeIndex`: the allocator's free-space index checked against the words.
    public struct FreeIndexReport: Codable, Hashable, Sendable {
        /// Blocks the index lists per size class.
        public let listedBySize: [String: Int]
        /// Listings under a class the block has left (advisory; normal in moderation).
        public let staleListings: Int
        /// Blocks no class at or above their own lists (should be 0 once frees complete).
        public let missingListings: Int
    }

    /// One entry of `allocationsBySize`.
    public struct SizeClassReport: Codable, Hashable, Sendable {
        /// Live allocations of this size.
        public let count: Int
        /// Their node bytes.
        public let bytes: Int
        /// Bytes the callers asked for (from the allocation headers).
        public let requestedBytes: Int?

        /// A size class entry from its fields.
        public init(count: Int, bytes: Int, requestedBytes: Int?) {
            self.count = count
            self.bytes = bytes
            self.requestedBytes = requestedBytes
        }
    }

    /// One entry of `fitsPerSizeClass`.
    public struct FitReport: Codable, Hashable, Sendable {
        /// The node size of the class in bytes.
        public let size: Int
        /// How many more requests of this size would fit right now (``CacheStatistics/SizeClass/fits``).
        public let count: Int
    }

    /// One entry of `blockDetails`: a block asked for with `--block`.
    public struct BlockDetailReport: Codable, Hashable, Sendable {
        /// One allocation of the block.
        public struct AllocationReport: Codable, Hashable, Sendable {
            /// The offset callers use (past the 8-byte header), from the user base.
            public let offset: Int
            /// The node's size in bytes, header included.
            public let nodeSize: Int
            /// Bytes the caller asked for; absent when the header did not decode.
            public let requestedBytes: Int?
            /// The owner's pid; absent when the header did not decode.
            public let ownerPid: Int32?
            /// What became of the owner when the block was read; absent when the header did not decode.
            public let ownerState: ProcessState?
        }

        /// The block number.
        public let block: Int
        /// The buddy word as `0x` and hex digits: a string, since most JSON readers keep only 53
        /// bits of a number exact and a word has 64.
        public let word: String
        /// The allocations, in address order.
        public let allocations: [AllocationReport]

        /// The entry of `detail`.
        public init(_ detail: BlockDetail) {
            block = detail.block
            word = "0x" + String(detail.word, radix: 16)
            allocations = detail.allocations.map { allocation in
                AllocationReport(
                    offset: allocation.offset, nodeSize: allocation.nodeSize,
                    requestedBytes: allocation.header.map(\.requestedSize), ownerPid: allocation.header.map(\.ownerPID),
                    ownerState: allocation.ownerState)
            }
        }
    }

    /// The file inspected.
    public let path: String
    /// The file's format version.
    public let formatVersion: UInt32
    /// The cache's shape.
    public let geometry: GeometryReport
    /// The file's size.
    public let managedBytes: Int
    /// Header page, words, index and null region.
    public let reservedBytes: Int
    /// Node bytes of the live allocations.
    public let allocatedBytes: Int
    /// Bytes in free nodes of usable blocks.
    public let freeBytes: Int
    /// Bytes the callers asked for (from the allocation headers).
    public let requestedBytes: Int?
    /// Allocated minus requested bytes.
    public let internalFragmentationBytes: Int?
    /// Allocation nodes in the words.
    public let liveAllocations: Int
    /// The largest free node in bytes, 0 when none.
    public let largestFreeChunk: Int
    /// The share of the free bytes outside whole free blocks (``CacheStatistics/externalFragmentation``).
    public let externalFragmentation: Double
    /// Allocated share of the usable bytes.
    public let utilisation: Double
    /// Maximal free nodes per size: the buddyinfo columns.
    public let freeChunksBySize: [String: Int]
    /// The kernel's unusable free space index per size.
    public let unusableFreeIndex: [String: Double]
    /// The kernel's fragmentation index per size; `null` where a request of that size would
    /// succeed (the kernel's −1).
    public let fragmentationIndex: [String: Double?]
    /// How many more requests of each size would fit right now, smallest size first.
    public let fitsPerSizeClass: [FitReport]
    /// Live allocations per size.
    public let allocationsBySize: [String: SizeClassReport]
    /// Usable blocks per size of their largest free node.
    public let blocksByLargestFreeChunk: [String: Int]
    /// Empty, partial, full and null blocks.
    public let blocks: CacheStatistics.BlockCounts
    /// Allocations per owner pid, largest holder first.
    public let owners: [OwnerAllocations]?
    /// The seconds between the two snapshots the owners' rates compare (`snapshot --interval`);
    /// absent for a single snapshot, whose owners have no rates.
    public let rateSeconds: Double?
    /// Node bytes held by owners that are not alive.
    public let leakedBytes: Int?
    /// Words breaking the buddy invariant.
    public let invalidWords: Int
    /// Allocation nodes whose header did not decode although their block held still: damaged.
    public let unreadableHeaders: Int?
    /// Allocation nodes claimed or freed while the snapshot was taken.
    public let inFlightHeaders: Int?
    /// The free-space index against the words; absent without an index.
    public let freeIndex: FreeIndexReport?
    /// The header's failed-allocation counter.
    public let failedAllocations: UInt64
    /// The header's refused-free counter.
    public let invalidFrees: UInt64
    /// When the copy was taken, nanoseconds since the Unix epoch.
    public let takenAtNanoseconds: UInt64
    /// The mean fill, 0...1, of every heatmap cell the text draws, in block order.
    public let heatmap: [Double]
    /// The blocks asked for, with their words and allocations, in the order asked.
    public let blockDetails: [BlockDetailReport]
    /// The path cache: its walk's figures, its nodes per owner, the processes' counters and rates.
    public let pathCache: PathCacheReport?
    /// Node bytes of the path cache, taken out of `owners` and `leakedBytes` (absent with them).
    public let heldByPathCache: PathCacheHolding?

    /// The report of `statistics`, computed from `snapshot`, with the block `details` and the
    /// heatmap cells `text` would draw (so that the JSON holds what the text shows), the
    /// seconds the owners' rates cover when they have rates, and the path cache's report.
    public init(
        snapshot: CacheSnapshot, statistics: CacheStatistics, details: [BlockDetail] = [],
        heatmapAs text: SnapshotText = SnapshotText(ascii: true), rateSeconds: Double? = nil,
        pathCache: PathCacheReport? = nil
    ) {
        self.pathCache = pathCache
        heldByPathCache = statistics.heldByPathCache
        self.rateSeconds = rateSeconds
        let geometry = snapshot.geometry
        func bySize<Value>(_ value: (CacheStatistics.SizeClass) -> Value) -> [String: Value] {
            Dictionary(uniqueKeysWithValues: statistics.sizeClasses.map { (String($0.size), value($0)) })
        }
        path = snapshot.path
        formatVersion = statistics.formatVersion
        self.geometry = GeometryReport(
            minSize: geometry.minSize, maxSize: geometry.maxSize, blockCount: geometry.blockCount,
            capacity: geometry.capacity, pageSize: snapshot.layout.pageSize)
        managedBytes = statistics.managedBytes
        reservedBytes = statistics.reservedBytes
        allocatedBytes = statistics.allocatedBytes
        freeBytes = statistics.freeBytes
        requestedBytes = statistics.requestedBytes
        internalFragmentationBytes = statistics.internalFragmentationBytes
        liveAllocations = statistics.liveAllocations
        largestFreeChunk = statistics.largestFreeChunk
        externalFragmentation = statistics.externalFragmentation
        utilisation = statistics.utilisation
        freeChunksBySize = bySize(\.freeChunks)
        unusableFreeIndex = bySize(\.unusableFreeIndex)
        fragmentationIndex = bySize(\.failingFragmentationIndex)
        fitsPerSizeClass = statistics.sizeClasses.map { FitReport(size: $0.size, count: $0.fits) }
        allocationsBySize = bySize {
            SizeClassReport(count: $0.allocations, bytes: $0.allocatedBytes, requestedBytes: $0.requestedBytes)
        }
        blocksByLargestFreeChunk = bySize(\.blocksWithLargestFreeChunk)
        blocks = statistics.blocks
        owners = statistics.owners
        leakedBytes = statistics.leakedBytes
        invalidWords = statistics.invalidWords
        unreadableHeaders = statistics.unreadableHeaders
        inFlightHeaders = statistics.inFlightHeaders
        freeIndex = FreeIndexStatistics(snapshot).map { index in
            FreeIndexReport(
                listedBySize: Dictionary(
                    uniqueKeysWithValues: index.listedByOrder.enumerated().map {
                        (String(geometry.nodeSize(ofOrder: $0.offset)), $0.element)
                    }),
                staleListings: index.staleListings, missingListings: index.missingListings)
        }
        failedAllocations = statistics.failedAllocations
        invalidFrees = statistics.invalidFrees
        takenAtNanoseconds = snapshot.wallClockNanoseconds
        heatmap = text.heatmapCells(snapshot)
        blockDetails = details.map(BlockDetailReport.init)
    }

    /// The report as pretty-printed JSON with sorted keys, ending in a newline.
    public func jsonText() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        // Encoding plain integers, strings, booleans and finite doubles cannot fail.
        let data = try! encoder.encode(self)
        return String(decoding: data, as: UTF8.self) + "\n"
    }
}
