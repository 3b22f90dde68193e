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
        self = SnapshotChanges(from: earlier, to: later).rates
    }

    /// Rates from the figures of the changed blocks, `seconds` apart, in a cache of `geometry`.
    init(seconds: Double, figures: ChangedBlockFigures, geometry: Geometry) {
        self.seconds = seconds
        allocations = figures.allocations
        frees = figures.frees
        allocatedBytes = figures.allocatedLeaves * geometry.minSize
        freedBytes = figures.freedLeaves * geometry.minSize
        blocksChanged = figures.takenLeafDeltas.count
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
        SnapshotChanges(from: earlier, to: later).blocks
    }
}
