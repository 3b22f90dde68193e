// What changed between two snapshots: the changed blocks with both their words, and the rates.

import ShmFormat
import ShmSystem

/// What changed between two snapshots of the same cache, found in one pass over their words (see
/// ``ChangedWords``): the blocks whose word changed with both words, and from them the rates, the
/// taken leaves' changes and the census update. Complete once made: the rates and leaf changes are
/// computed with the changes, in one pass over the word pairs (``ChangedBlockFigures``).
public struct SnapshotChanges: Sendable {
    /// Usable blocks whose word differs, ascending.
    public let blocks: [Int]
    /// The earlier word of each of `blocks`.
    public let earlierWords: [UInt64]
    /// The later word of each of `blocks`.
    public let laterWords: [UInt64]
    /// For each of `blocks`, how many more leaves it has taken than at the earlier snapshot
    /// (negative: gave back).
    public let takenLeafDeltas: [Int]
    /// Allocations, frees and bytes per second between the two snapshots.
    public let rates: SnapshotRates

    /// Compares `earlier` with `later` (two snapshots of the same file, in that order).
    public init(from earlier: CacheSnapshot, to later: CacheSnapshot) {
        precondition(earlier.layout == later.layout, "snapshots of different caches")
        var changed = ChangedWords()
        let usable = later.usableBlocks
        earlier.words.withUnsafeBufferPointer { old in
            later.words.withUnsafeBufferPointer { new in
                changed.record(
                    UnsafeBufferPointer(rebasing: old[usable]), UnsafeBufferPointer(rebasing: new[usable]),
                    firstBlock: usable.lowerBound)
            }
        }
        self.init(changed, seconds: (later.takenAt - earlier.takenAt).inSeconds, geometry: later.geometry)
    }

    /// The changes `changed` recorded, `seconds` apart, in a cache of `geometry`.
    init(_ changed: ChangedWords, seconds: Double, geometry: Geometry) {
        blocks = changed.blocks
        earlierWords = changed.earlierWords
        laterWords = changed.laterWords
        // The rates and the leaf deltas come from one pass over the word pairs.
        let figures = ChangedBlockFigures(earlierWords: earlierWords, laterWords: laterWords, tree: geometry.tree)
        takenLeafDeltas = figures.takenLeafDeltas
        rates = SnapshotRates(seconds: seconds, figures: figures, geometry: geometry)
    }

    /// The census of the later snapshot's usable blocks, from `census` of the earlier snapshot's:
    /// the changed blocks' earlier words counted out, their later words counted in.
    public func census(updating census: BuddyCensus) -> BuddyCensus {
        census - BuddyCensus(tree: census.tree, words: earlierWords) + BuddyCensus(tree: census.tree, words: laterWords)
    }
}
