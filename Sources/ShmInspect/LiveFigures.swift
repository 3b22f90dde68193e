// The figures a live view shows, computed here from the words so that the view never reads the
// format itself: the geometry's figures, leaf counts, a range of blocks' census, the census kept
// up to date by changes, an allocation's header fields.

import ShmFormat

extension CacheSnapshot {
    /// The blocks of the data region.
    public var blockCount: Int { geometry.blockCount }
    /// The bytes of a block (its largest node).
    public var blockSize: Int { geometry.blockSize }
    /// The smallest node's bytes.
    public var minSize: Int { geometry.minSize }
    /// The largest node's bytes (a block).
    public var maxSize: Int { geometry.maxSize }
    /// The data region's bytes.
    public var capacity: Int { geometry.capacity }
    /// The blocks at the start of the data region that are reserved, never allocated.
    public var nullBlockCount: Int { layout.nullBlockCount }

    /// The header's path cache root word (0: no path cache), for ``CacheInspector/pathCache(root:_:)``.
    public var pathCacheRoot: UInt64 { header.pathCacheRoot }

    /// The leaves (nodes of the smallest size) in one block: what a block's taken leaves are
    /// counted out of.
    public var leavesPerBlock: Int { tree.leafCount }

    /// The figures of `blocks`, a run of this snapshot's blocks (a heatmap cell).
    public func figures(ofBlocks blocks: Range<Int>) -> BlockRangeFigures {
        let census = BuddyCensus(tree: tree, words: words[blocks])
        // The null region's words are full: no free chunks, and its "allocations" are not real.
        let nullBlocks = blocks.clamped(to: 0..<layout.nullBlockCount).count
        return BlockRangeFigures(
            fill: meanFill(ofBlocks: blocks), freeChunks: census.maximalFreeByOrder.reduce(0, +),
            allocations: nullBlocks == blocks.count ? 0 : census.allocationsByOrder.reduce(0, +))
    }
}

/// A run of blocks' figures, as a heatmap cell's status line shows them.
public struct BlockRangeFigures: Hashable, Sendable {
    /// The mean fill of the blocks, 0...1.
    public let fill: Double
    /// Maximal free chunks in the blocks.
    public let freeChunks: Int
    /// Allocations in the blocks (none in the null region).
    public let allocations: Int
}

/// The census of a live view's usable blocks, brought up to date by each refresh's changes rather
/// than counted again over every word.
public struct LiveCensus: Sendable {
    /// The census as of the last snapshot.
    public private(set) var census: BuddyCensus

    /// The census of `snapshot`'s usable blocks, counted.
    public init(of snapshot: CacheSnapshot) {
        census = snapshot.words[snapshot.usableBlocks].withUnsafeBufferPointer {
            BuddyCensus(tree: snapshot.tree, words: $0)
        }
    }

    /// Brings the census up to the later snapshot of `changes`.
    public mutating func apply(_ changes: SnapshotChanges) { census = changes.census(updating: census) }
}

extension BlockDetail {
    /// The leaves (nodes of the smallest size) of the block's tree.
    public var leafCount: Int { tree.leafCount }
    /// The fraction of the block's leaves taken, 0...1.
    public var fill: Double { Double(census.takenLeaves) / Double(tree.leafCount) }
    /// The block's maximal free chunks.
    public var freeChunkCount: Int { census.maximalFreeByOrder.reduce(0, +) }
    /// The size in bytes of a node at `level` of the tree (0: the whole block).
    public func nodeSize(atLevel level: Int) -> Int { offsets.count >> level }
}

extension BlockDetail.Allocation {
    /// The owner's pid, or `nil` when the header could not be read.
    public var ownerPID: Int32? { header?.ownerPID }
    /// The bytes asked for, or `nil` when the header could not be read.
    public var requestedSize: Int? { header?.requestedSize }
}
