// What the allocator's free-space index says, checked against the buddy words of the same snapshot.

import ShmFormat

/// The free-space index of one snapshot: how many blocks each size class lists, and how the
/// listings compare with the blocks' actual classes (the order of their largest free node).
///
/// The index is advisory (see `FreeIndex.swift`): claims do not update it, so a block may stay listed
/// under a class it has left until a search meets it and re-files it. Such *stale* listings are
/// normal and cost a searcher a retry. A search for order o looks through classes o, o+1, …, so a
/// block stays findable as long as some class at or above its own lists it. A block that no such
/// class lists is *missing*: its largest free chunk is invisible to searches of that size. In a live
/// snapshot a free whose index update is still in flight shows as missing for an instant; a count
/// that stays above zero across snapshots is a bug.
public struct FreeIndexStatistics: Hashable, Sendable, Codable {
    /// Blocks listed per class (index = order), from the index's bottom level.
    public let listedByOrder: [Int]
    /// Usable blocks per class by their words (index = order); full blocks belong to none.
    public let actualByOrder: [Int]
    /// Listings under a class the block is not in (full blocks included).
    public let staleListings: Int
    /// Usable, not full blocks that no class at or above their own lists.
    public let missingListings: Int

    /// Checks `snapshot`'s index against its words; `nil` for a file without an index.
    public init?(_ snapshot: CacheSnapshot) {
        let layout = snapshot.layout
        guard layout.indexLength > 0, !snapshot.indexWords.isEmpty else { return nil }
        let index = layout.freeIndex
        let tree = snapshot.tree
        var listed = Array(repeating: 0, count: index.classCount)
        var actual = Array(repeating: 0, count: index.classCount)
        var stale = 0
        var missing = 0
        snapshot.indexWords.withUnsafeBufferPointer { indexWords in
            for block in snapshot.usableBlocks {
                let blockClass = tree.largestFreeOrder(snapshot.words[block])
                if let blockClass { actual[blockClass] += 1 }
                for order in 0..<index.classCount where index.lists(indexWords, block: block, class: order) {
                    listed[order] += 1
                    if order != blockClass { stale += 1 }
                }
                if let blockClass,
                    !(blockClass..<index.classCount).contains(where: {
                        index.lists(indexWords, block: block, class: $0)
                    })
                {
                    missing += 1
                }
            }
        }
        listedByOrder = listed
        actualByOrder = actual
        staleListings = stale
        missingListings = missing
    }
}
