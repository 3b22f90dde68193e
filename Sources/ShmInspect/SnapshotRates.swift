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

    /// Rates from the changed blocks' words, `earlier` and `later` (the same blocks, in the same
    /// order), `seconds` apart.
    init(seconds: Double, earlierWords: [UInt64], laterWords: [UInt64], tree: BuddyTree, minSize: Int) {
        self.seconds = seconds
        var allocations = 0, frees = 0, allocatedBytes = 0, freedBytes = 0
        for (earlierWord, laterWord) in zip(earlierWords, laterWords) {
            let before = tree.allocations(earlierWord)
            let after = tree.allocations(laterWord)
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
        self.blocksChanged = laterWords.count
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

    private static func forEachNode(_ nodes: UInt64, _ body: (Int) -> Void) {
        var remaining = nodes
        while remaining != 0 {
            body(remaining.trailingZeroBitCount)
            remaining &= remaining &- 1
        }
    }
}

/// What changed between two snapshots of the same cache, found in one pass over their words: the
/// blocks whose word changed with both words, and from them the rates and the census update.
///
/// A live view compares consecutive snapshots many times a second, and between two of them only a
/// few per cent of the blocks change, in runs where writers work. So the pass compares the words
/// in chunks of `chunkWords` (one cache line) and looks at single words only in chunks that differ.
public struct SnapshotChanges: Sendable {
    /// Usable blocks whose word differs, ascending.
    public private(set) var blocks: [Int] = []
    /// The earlier word of each of `blocks`.
    public private(set) var earlierWords: [UInt64] = []
    /// The later word of each of `blocks`.
    public private(set) var laterWords: [UInt64] = []
    /// Allocations, frees and bytes per second between the two snapshots.
    public private(set) var rates: SnapshotRates

    /// Words compared at once before looking at single words: 8 words, one 64-byte cache line.
    static let chunkWords = 8

    /// Compares `earlier` with `later` (two snapshots of the same file, in that order).
    public init(from earlier: CacheSnapshot, to later: CacheSnapshot) {
        precondition(earlier.layout == later.layout, "snapshots of different caches")
        self.init()
        let usable = later.usableBlocks
        earlier.words.withUnsafeBufferPointer { old in
            later.words.withUnsafeBufferPointer { new in
                record(UnsafeBufferPointer(rebasing: old[usable]), UnsafeBufferPointer(rebasing: new[usable]), firstBlock: usable.lowerBound)
            }
        }
        finish(seconds: Self.seconds(from: earlier.takenAt, to: later.takenAt), tree: later.tree, minSize: later.geometry.minSize)
    }

    /// No changes yet: `record` adds them, `finish` computes the rates. `expected` changes are
    /// made room for at once (a live view expects about as many as last time), so the arrays do
    /// not grow step by step while `record` runs.
    init(expected: Int = 0) {
        rates = SnapshotRates(seconds: 0, earlierWords: [], laterWords: [], tree: BuddyTree(depth: 0), minSize: 1)
        blocks.reserveCapacity(expected)
        earlierWords.reserveCapacity(expected)
        laterWords.reserveCapacity(expected)
    }

    /// Records the blocks whose words differ between `old` and `new`, the words of blocks
    /// `firstBlock ..< firstBlock + old.count` (called in ascending block order).
    ///
    /// `new` may be a live mapping that writers change meanwhile: each of its words is loaded once
    /// for the group comparison, and the recorded later word is that one load, so the recorded
    /// words and `emptyGroups` agree with each other.
    ///
    /// With `emptyGroups`, a bitmap over the groups of `chunkWords` words of `old` (bit g for
    /// words 8g ..< 8g+8): a set bit promises that the group of `old` is all zero, so the group is
    /// compared without reading `old` (empty blocks are most of a cache, and `old` is the part of
    /// the comparison that comes from memory); afterwards each bit says the same of `new`.
    mutating func record<New: WordLoading>(
        _ old: UnsafeBufferPointer<UInt64>, _ new: New, firstBlock: Int,
        emptyGroups: UnsafeMutableBufferPointer<UInt64>? = nil
    ) {
        var start = 0
        var group = 0
        while start < old.count {
            // A whole span of groups (one word of `emptyGroups`) is first tested in one pass
            // without branches: in a live cache most spans are unchanged, and most of those all
            // empty. Their `emptyGroups` word stays as it is.
            if group & 63 == 0, start &+ Self.spanWords <= old.count {
                let emptyWord = emptyGroups.map { $0[group &>> 6] } ?? 0
                if emptyWord == ~0 || (emptyWord == 0 && Self.bulkViewsInHostOrder),
                   Self.isUnchanged(old, new.bulkView(from: start, count: Self.spanWords), from: start, oldIsEmpty: emptyWord != 0) {
                    start &+= Self.spanWords
                    group &+= 64
                    continue
                }
            }
            let end = min(old.count, start &+ Self.chunkWords)
            var loaded = InlineArray<8, UInt64>(repeating: 0)
            var newBits: UInt64 = 0
            for index in start..<end {
                let word = new.word(at: index)
                loaded[index &- start] = word
                newBits |= word
            }
            let bit = UInt64(1) &<< UInt64(group & 63)
            if let emptyGroups, emptyGroups[group &>> 6] & bit != 0 {
                if newBits != 0 {
                    for index in start..<end where loaded[index &- start] != 0 { append(firstBlock &+ index, 0, loaded[index &- start]) }
                }
            } else {
                var difference: UInt64 = 0
                for index in start..<end { difference |= old[index] ^ loaded[index &- start] }
                if difference != 0 {
                    for index in start..<end where old[index] != loaded[index &- start] {
                        append(firstBlock &+ index, old[index], loaded[index &- start])
                    }
                }
            }
            if let emptyGroups {
                emptyGroups[group &>> 6] = newBits == 0 ? emptyGroups[group &>> 6] | bit : emptyGroups[group &>> 6] & ~bit
            }
            start = end
            group &+= 1
        }
    }

    /// Whether a bulk view's words (in the file's byte order, little-endian) can be compared with
    /// host-order words: only on a little-endian host. Elsewhere only the all-zero test, which
    /// byte order does not change, is done in bulk.
    static var bulkViewsInHostOrder: Bool {
        #if _endian(little)
        true
        #else
        false
        #endif
    }

    /// Words in one span of 64 groups, tested at once by `record`.
    static let spanWords = 64 * chunkWords

    /// Whether `new` equals `old`'s words from `start`, or is all zero when `oldIsEmpty` (and
    /// `old` is not read). One pass without branches, which the compiler vectorises.
    @inline(__always)
    private static func isUnchanged(
        _ old: UnsafeBufferPointer<UInt64>, _ new: UnsafeBufferPointer<UInt64>, from start: Int, oldIsEmpty: Bool
    ) -> Bool {
        var difference: UInt64 = 0
        if oldIsEmpty {
            for index in new.indices { difference |= new[index] }
        } else {
            for index in new.indices { difference |= old[start &+ index] ^ new[index] }
        }
        return difference == 0
    }

    private mutating func append(_ block: Int, _ earlier: UInt64, _ later: UInt64) {
        blocks.append(block)
        earlierWords.append(earlier)
        laterWords.append(later)
    }

    /// Computes the rates of the recorded changes, `seconds` apart.
    mutating func finish(seconds: Double, tree: BuddyTree, minSize: Int) {
        rates = SnapshotRates(seconds: seconds, earlierWords: earlierWords, laterWords: laterWords, tree: tree, minSize: minSize)
    }

    static func seconds(from earlier: ContinuousClock.Instant, to later: ContinuousClock.Instant) -> Double {
        Double((later - earlier) / .nanoseconds(1)) / 1e9
    }

    /// The census of the later snapshot's usable blocks, from `census` of the earlier snapshot's:
    /// the changed blocks' earlier words counted out, their later words counted in.
    public func census(updating census: BuddyCensus) -> BuddyCensus {
        census - BuddyCensus(tree: census.tree, words: earlierWords) + BuddyCensus(tree: census.tree, words: laterWords)
    }
}

/// Where ``SnapshotChanges`` reads the later words: a snapshot's copy, or the live words of a
/// mapped file.
protocol WordLoading {
    /// The word at `index`, loaded once.
    func word(at index: Int) -> UInt64
    /// `count` words from `start` as plain memory, for a bulk test whose answer only chooses
    /// between a fast path and `word(at:)`: words may change while it reads them. In the file's
    /// byte order (see ``SnapshotChanges/bulkViewsInHostOrder``).
    func bulkView(from start: Int, count: Int) -> UnsafeBufferPointer<UInt64>
}

extension UnsafeBufferPointer<UInt64>: WordLoading {
    @inline(__always) func word(at index: Int) -> UInt64 { self[index] }
    @inline(__always) func bulkView(from start: Int, count: Int) -> UnsafeBufferPointer<UInt64> {
        UnsafeBufferPointer(rebasing: self[start..<(start &+ count)])
    }
}
