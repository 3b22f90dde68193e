// The snapshot as one JSON object with stable keys (documented in docs/snapshot.md).

import Foundation
import ShmFormat

/// The machine-readable form of a snapshot's statistics: what `shmtop snapshot --json` prints.
///
/// Keys are stable; maps keyed by size use the node size in bytes as a decimal string ("32",
/// "64", …). Optional values are absent when the snapshot skipped the allocation header scan.
public struct SnapshotReport: Codable, Hashable, Sendable {
    /// `geometry`: the cache's shape.
    public struct GeometryReport: Codable, Hashable, Sendable {
        public let minSize: Int
        public let maxSize: Int
        public let blockCount: Int
        public let capacity: Int
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
        /// Blocks not listed under their own class (should be 0 once frees complete).
        public let missingListings: Int
    }

    /// One entry of `allocationsBySize`.
    public struct SizeClassReport: Codable, Hashable, Sendable {
        public let count: Int
        public let bytes: Int
        public let requestedBytes: Int?

        /// A size class entry from its fields.
        public init(count: Int, bytes: Int, requestedBytes: Int?) {
            self.count = count
            self.bytes = bytes
            self.requestedBytes = requestedBytes
        }
    }

    public let path: String
    public let formatVersion: UInt32
    public let geometry: GeometryReport
    public let managedBytes: Int
    public let reservedBytes: Int
    public let allocatedBytes: Int
    public let freeBytes: Int
    public let requestedBytes: Int?
    public let internalFragmentationBytes: Int?
    public let liveAllocations: Int
    public let largestFreeChunk: Int
    public let externalFragmentation: Double
    public let utilisation: Double
    public let freeChunksBySize: [String: Int]
    public let unusableFreeIndex: [String: Double]
    public let fragmentationIndex: [String: Double]
    public let allocationsBySize: [String: SizeClassReport]
    public let blocksByLargestFreeChunk: [String: Int]
    public let blocks: CacheStatistics.BlockCounts
    public let owners: [OwnerAllocations]?
    public let leakedBytes: Int?
    public let invalidWords: Int
    public let unreadableHeaders: Int?
    public let freeIndex: FreeIndexReport?
    public let failedAllocations: UInt64
    public let invalidFrees: UInt64
    public let takenAtNanoseconds: UInt64

    /// The report of `statistics`, computed from `snapshot`.
    public init(snapshot: CacheSnapshot, statistics: CacheStatistics) {
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
        fragmentationIndex = bySize(\.fragmentationIndex)
        allocationsBySize = bySize { SizeClassReport(count: $0.allocations, bytes: $0.allocatedBytes, requestedBytes: $0.requestedBytes) }
        blocksByLargestFreeChunk = bySize(\.blocksWithLargestFreeChunk)
        blocks = statistics.blocks
        owners = statistics.owners
        leakedBytes = statistics.leakedBytes
        invalidWords = statistics.invalidWords
        unreadableHeaders = statistics.unreadableHeaders
        freeIndex = FreeIndexStatistics(snapshot).map { index in
            FreeIndexReport(
                listedBySize: Dictionary(uniqueKeysWithValues: index.listedByOrder.enumerated().map {
                    (String(geometry.nodeSize(ofOrder: $0.offset)), $0.element)
                }),
                staleListings: index.staleListings, missingListings: index.missingListings)
        }
        failedAllocations = statistics.failedAllocations
        invalidFrees = statistics.invalidFrees
        takenAtNanoseconds = snapshot.wallClockNanoseconds
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
