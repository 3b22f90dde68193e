// Finding the blocks whose word changed between two copies of the words, fast.

/// The blocks whose word differs between two copies of the words, with both words: what
/// ``SnapshotChanges`` is made from.
///
/// A live view compares consecutive snapshots many times a second, and between two of them only a
/// few per cent of the blocks change, in runs where writers work. So the pass compares the words
/// in chunks of `chunkWords` (one cache line) and looks at single words only in chunks that differ.
struct ChangedWords {
    /// Usable blocks whose word differs, ascending.
    private(set) var blocks: [Int] = []
    /// The earlier word of each of `blocks`.
    private(set) var earlierWords: [UInt64] = []
    /// The later word of each of `blocks`.
    private(set) var laterWords: [UInt64] = []

    /// Words compared at once before looking at single words: 8 words, one 64-byte cache line.
    static let chunkWords = 8

    /// No changes yet: `record` adds them. `expected` changes are made room for at once (a live
    /// view expects about as many as last time), so the arrays do not grow step by step while
    /// `record` runs.
    init(expected: Int = 0) {
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
                    Self.isUnchanged(
                        old, new.bulkView(from: start, count: Self.spanWords), from: start, oldIsEmpty: emptyWord != 0)
                {
                    start &+= Self.spanWords
                    group &+= 64
                    continue
                }
            }
            let end = min(old.count, start &+ Self.chunkWords)
            let bit = UInt64(1) &<< UInt64(group & 63)
            // In a span that changed, most groups still did not: each is first tested in bulk too.
            // An unchanged group's `emptyGroups` bit is set only when the group is all zero.
            if end &- start == Self.chunkWords, Self.bulkViewsInHostOrder {
                let oldIsEmpty = emptyGroups.map { $0[group &>> 6] & bit != 0 } ?? false
                let (unchanged, empty) = Self.compareGroup(
                    old, new.bulkView(from: start, count: Self.chunkWords), from: start, oldIsEmpty: oldIsEmpty)
                if unchanged {
                    if empty, let emptyGroups { emptyGroups[group &>> 6] |= bit }
                    start = end
                    group &+= 1
                    continue
                }
            }
            var loaded = InlineArray<8, UInt64>(repeating: 0)
            var newBits: UInt64 = 0
            for index in start..<end {
                let word = new.word(at: index)
                loaded[index &- start] = word
                newBits |= word
            }
            if let emptyGroups, emptyGroups[group &>> 6] & bit != 0 {
                if newBits != 0 {
                    for index in start..<end where loaded[index &- start] != 0 {
                        append(firstBlock &+ index, 0, loaded[index &- start])
                    }
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
                emptyGroups[group &>> 6] =
                    newBits == 0 ? emptyGroups[group &>> 6] | bit : emptyGroups[group &>> 6] & ~bit
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

    /// Whether the group of `chunkWords` words of `new` equals `old`'s words from `start` (is all
    /// zero when `oldIsEmpty`, and `old` is not read), and whether it is all zero. Without
    /// branches, as `isUnchanged`.
    @inline(__always)
    private static func compareGroup(
        _ old: UnsafeBufferPointer<UInt64>, _ new: UnsafeBufferPointer<UInt64>, from start: Int, oldIsEmpty: Bool
    ) -> (unchanged: Bool, empty: Bool) {
        var bits: UInt64 = 0
        var difference: UInt64 = 0
        if oldIsEmpty {
            for index in 0..<chunkWords { bits |= new[index] }
            return (bits == 0, bits == 0)
        }
        for index in 0..<chunkWords {
            bits |= new[index]
            difference |= old[start &+ index] ^ new[index]
        }
        return (difference == 0, bits == 0)
    }

    private mutating func append(_ block: Int, _ earlier: UInt64, _ later: UInt64) {
        blocks.append(block)
        earlierWords.append(earlier)
        laterWords.append(later)
    }
}

/// Where ``ChangedWords`` reads the later words: a snapshot's copy, or the live words of a
/// mapped file.
protocol WordLoading {
    /// The word at `index`, loaded once.
    func word(at index: Int) -> UInt64
    /// `count` words from `start` as plain memory, for a bulk test whose answer only chooses
    /// between a fast path and `word(at:)`: words may change while it reads them. In the file's
    /// byte order (see ``ChangedWords/bulkViewsInHostOrder``).
    func bulkView(from start: Int, count: Int) -> UnsafeBufferPointer<UInt64>
}

extension UnsafeBufferPointer<UInt64>: WordLoading {
    @inline(__always) func word(at index: Int) -> UInt64 { self[index] }
    @inline(__always) func bulkView(from start: Int, count: Int) -> UnsafeBufferPointer<UInt64> {
        UnsafeBufferPointer(rebasing: self[start..<(start &+ count)])
    }
}
