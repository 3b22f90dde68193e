// What changed between two snapshots, per second.

import ShmFormat

/// Activity between two snapshots of the same cache, estimated from the words alone.
///
/// An allocation node present in the later word but not the earlier one counts as one allocation,
/// the reverse as one free. A node freed and allocated again between the two copies is invisible,
/// so these are lower bounds; sampling more often makes them tighter.
public struct SnapshotRates: Hashable, Sendable {
    /// Seconds between the two snapshots.
    public let seconds: Double
    /// Allocation nodes that appeared.
    public let allocations: Int
    /// Allocation nodes that disappeared.
    public let frees: Int
    /// Node bytes of the allocations that appeared.
    public let allocatedBytes: Int
    /// Node bytes of the allocations that disappeared.
    public let freedBytes: Int
    /// Blocks whose word changed.
    public let blocksChanged: Int

    /// Compares `earlier` with `later` (two snapshots of the same file, in that order).
    public init(from earlier: CacheSnapshot, to later: CacheSnapshot) {
        precondition(earlier.layout == later.layout, "snapshots of different caches")
        let tree = later.tree
        let minSize = later.geometry.minSize
        seconds = Double((later.takenAt - earlier.takenAt) / .nanoseconds(1)) / 1e9
        var allocations = 0, frees = 0, allocatedBytes = 0, freedBytes = 0, changed = 0
        for block in later.usableBlocks where earlier.words[block] != later.words[block] {
            changed += 1
            let before = tree.allocations(earlier.words[block])
            let after = tree.allocations(later.words[block])
            Self.forEachNode(after & ~before) { node in
                allocations += 1
                allocatedBytes += minSize << tree.order(ofNode: node)
            }
            Self.forEachNode(before & ~after) { node in
                frees += 1
                freedBytes += minSize << tree.order(ofNode: node)
            }
        }
        self.allocations = allocations
        self.frees = frees
        self.allocatedBytes = allocatedBytes
        self.freedBytes = freedBytes
        self.blocksChanged = changed
    }

    /// Allocations per second.
    public var allocationsPerSecond: Double { perSecond(allocations) }
    /// Frees per second.
    public var freesPerSecond: Double { perSecond(frees) }
    /// Node bytes allocated per second.
    public var allocatedBytesPerSecond: Double { perSecond(allocatedBytes) }
    /// Node bytes freed per second.
    public var freedBytesPerSecond: Double { perSecond(freedBytes) }
    /// Net growth of allocated bytes per second (negative while the cache shrinks).
    public var netBytesPerSecond: Double { perSecond(allocatedBytes - freedBytes) }

    private func perSecond(_ count: Int) -> Double { seconds > 0 ? Double(count) / seconds : 0 }

    /// The blocks whose word differs between two snapshots of the same cache (for flashing them).
    public static func changedBlocks(from earlier: CacheSnapshot, to later: CacheSnapshot) -> [Int] {
        later.words.indices.filter { earlier.words[$0] != later.words[$0] }
    }

    private static func forEachNode(_ nodes: UInt64, _ body: (Int) -> Void) {
        var remaining = nodes
        while remaining != 0 {
            body(remaining.trailingZeroBitCount)
            remaining &= remaining &- 1
        }
    }
}
