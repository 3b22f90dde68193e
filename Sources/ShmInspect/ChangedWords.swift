// Finding the blocks whose word changed between two copies of the words, fast.

/// The blocks whose word differs between two copies of the words, with both words: what
/// ``SnapshotChanges`` is made from.
///
/// A live view compares consecutive snapshots many times a second, and between two of them only a
/// few per cent of the blocks change, in runs where writers work. So the pass compares the words
/// a span of 64 groups of `chunkWords` (one cache line) at a time: most spans did not change and
/// are tested whole, in one pass of vector operations; in the others each group is tested with
/// one vector difference, making a mask of the groups that differ, and single words are looked at
/// only in those groups. A span's changed blocks are kept in buffers and added to the arrays at
/// once.
struct ChangedWords {
    /// Usable blocks whose word differs, ascending.
    private(set) var blocks: [Int] = []
    /// The earlier word of each of `blocks`.
    private(set) var earlierWords: [UInt64] = []
    /// The later word of each of `blocks`.
    private(set) var laterWords: [UInt64] = []

    /// Words compared at once before looking at single words: 8 words, one 64-byte cache line.
    static let chunkWords = 8
    /// Words in one span of 64 groups: one word of an `emptyGroups` bitmap.
    static let spanWords = 64 * chunkWords
    /// One group's words as one vector.
    private typealias Group = SIMD8<UInt64>

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
    /// `new` may be a live mapping that writers change meanwhile: each word of a group that
    /// differs is loaded once more, alone, and the recorded later word is that load, so the
    /// recorded words and `emptyGroups` agree with each other.
    ///
    /// With `emptyGroups`, a bitmap over the groups of `chunkWords` words of `old` (bit g for
    /// words 8g ..< 8g+8; see ``markEmptyGroups(of:in:)``): a set bit promises that the group of
    /// `old` is all zero, so the group is compared without reading `old` (empty blocks are most of
    /// a cache, and `old` is the part of the comparison that comes from memory). A group that
    /// differs has its bit set or cleared by its new words; others keep theirs, so the bits stay
    /// true of `old` brought up to date with the recorded changes.
    mutating func record<New: WordLoading>(
        _ old: UnsafeBufferPointer<UInt64>, _ new: New, firstBlock: Int,
        emptyGroups: UnsafeMutableBufferPointer<UInt64>? = nil
    ) {
        guard let oldBase = old.baseAddress else { return }
        withUnsafeTemporaryAllocation(of: Int.self, capacity: Self.spanWords) { pendingBlocks in
            // The earlier words, then from `spanWords` on the later words.
            withUnsafeTemporaryAllocation(of: UInt64.self, capacity: 2 * Self.spanWords) { pendingWords in
                var start = 0
                var span = 0
                while start < old.count {
                    let words = min(Self.spanWords, old.count &- start)
                    let knownEmpty = emptyGroups.map { $0[span] } ?? 0
                    let newWords = new.bulkView(from: start, count: words)
                    // Both copies 16-byte aligned (the usual case): the vector operations read
                    // memory directly, without a load of their own.
                    let aligned = (Int(bitPattern: oldBase + start) | Int(bitPattern: newWords.baseAddress)) & 15 == 0
                    var differing =
                        aligned
                        ? Self.differingGroups(oldBase + start, newWords, knownEmpty: knownEmpty, aligned: true)
                        : Self.differingGroups(oldBase + start, newWords, knownEmpty: knownEmpty, aligned: false)
                    var nowEmpty = knownEmpty
                    var pending = 0
                    while differing != 0 {
                        let group = differing.trailingZeroBitCount
                        differing &= differing &- 1
                        let first = start &+ group &* Self.chunkWords
                        var bits: UInt64 = 0
                        @inline(__always) func compare(_ index: Int) {
                            let word = new.word(at: index)
                            bits |= word
                            if word != oldBase[index] {
                                pendingBlocks[pending] = firstBlock &+ index
                                pendingWords[pending] = oldBase[index]
                                pendingWords[Self.spanWords &+ pending] = word
                                pending &+= 1
                            }
                        }
                        // A whole group's words without a loop counter; a short last group's with one.
                        if first &+ Self.chunkWords <= old.count {
                            for offset in 0..<Self.chunkWords { compare(first &+ offset) }
                        } else {
                            for index in first..<old.count { compare(index) }
                        }
                        let bit = UInt64(1) &<< UInt64(group)
                        nowEmpty = bits == 0 ? nowEmpty | bit : nowEmpty & ~bit
                    }
                    if pending > 0 {
                        blocks.append(contentsOf: UnsafeBufferPointer(rebasing: pendingBlocks[..<pending]))
                        earlierWords.append(contentsOf: UnsafeBufferPointer(rebasing: pendingWords[..<pending]))
                        laterWords.append(
                            contentsOf: UnsafeBufferPointer(
                                rebasing: pendingWords[Self.spanWords..<(Self.spanWords &+ pending)]))
                    }
                    emptyGroups?[span] = nowEmpty
                    start &+= words
                    span &+= 1
                }
            }
        }
    }

    /// Sets the bit of each group of `words` that is all zero in `emptyGroups` (which holds
    /// one bit per group, see ``record(_:_:firstBlock:emptyGroups:)``), and clears the others.
    static func markEmptyGroups(
        of words: UnsafeBufferPointer<UInt64>, in emptyGroups: UnsafeMutableBufferPointer<UInt64>
    ) {
        guard let start = words.baseAddress else { return }
        let base = UnsafeRawPointer(start)
        let fullGroups = words.count / chunkWords
        for span in 0..<((words.count + spanWords - 1) / spanWords) {
            var empty: UInt64 = 0
            for index in (span &* 64)..<min(fullGroups, span &* 64 &+ 64) {
                let group = base.loadUnaligned(fromByteOffset: index &* MemoryLayout<Group>.size, as: Group.self)
                empty |= (isZero(group) ? 1 : 0) &<< UInt64(index & 63)
            }
            emptyGroups[span] = empty
        }
        // A short last group.
        if fullGroups &* chunkWords < words.count, words[(fullGroups &* chunkWords)...].allSatisfy({ $0 == 0 }) {
            emptyGroups[fullGroups / 64] |= 1 &<< UInt64(fullGroups & 63)
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

    /// The groups of a span (up to `spanWords` words of `new`, from `old`) whose words may differ,
    /// as a bit mask: each full group's words are compared with one vector difference, or tested
    /// for zero when `knownEmpty` has its bit (and `old` is not read). A short last group, and
    /// on a big-endian host every group not known to be empty, counts as differing. `aligned`:
    /// both copies start on 16 bytes.
    @inline(__always)
    private static func differingGroups(
        _ old: UnsafePointer<UInt64>, _ new: UnsafeBufferPointer<UInt64>, knownEmpty: UInt64, aligned: Bool
    ) -> UInt64 {
        let newBase = UnsafeRawPointer(new.baseAddress.unsafelyUnwrapped)
        let oldBase = UnsafeRawPointer(old)
        @inline(__always) func group(_ base: UnsafeRawPointer, _ index: Int) -> Group {
            let offset = index &* MemoryLayout<Group>.size
            return aligned
                ? base.load(fromByteOffset: offset, as: Group.self)
                : base.loadUnaligned(fromByteOffset: offset, as: Group.self)
        }
        let fullGroups = new.count / chunkWords
        // Most spans did not change: a span all known empty that is still all zero (one pass of
        // ORs), or a span of words that all equal the old ones (one pass of XORs and ORs).
        if fullGroups == 64, knownEmpty == ~0 || (knownEmpty == 0 && bulkViewsInHostOrder) {
            var bits = Group()
            if knownEmpty == 0 {
                for index in 0..<64 { bits |= group(newBase, index) ^ group(oldBase, index) }
            } else {
                // Four groups a step: fewer loop steps than the compiler's unrolling makes.
                for index in stride(from: 0, to: 64, by: 4) {
                    bits |=
                        group(newBase, index) | group(newBase, index &+ 1) | group(newBase, index &+ 2)
                        | group(newBase, index &+ 3)
                }
            }
            if isZero(bits) { return 0 }
        }
        var differing: UInt64 = 0
        for index in 0..<fullGroups {
            let newWords = group(newBase, index)
            let difference: Group
            if knownEmpty &>> UInt64(index) & 1 != 0 {
                difference = newWords
            } else if bulkViewsInHostOrder {
                difference = newWords ^ group(oldBase, index)
            } else {
                difference = Group(repeating: 1)
            }
            differing |= (isZero(difference) ? 0 : 1) &<< UInt64(index)
        }
        if fullGroups &* chunkWords < new.count { differing |= 1 &<< UInt64(fullGroups) }
        return differing
    }

    /// Whether every lane of `words` is zero: the lanes ORed down to one.
    @inline(__always)
    private static func isZero(_ words: Group) -> Bool {
        let four = words.lowHalf | words.highHalf
        let two = four.lowHalf | four.highHalf
        return two[0] | two[1] == 0
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
