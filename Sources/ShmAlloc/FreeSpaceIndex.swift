// The free-space index in the mapped file (see ShmFormat/FreeIndex.swift for its shape), and the
// atomic operations that keep it: insert, remove, find.
//
// Summary protocol, per level: an insert that sets its bit then makes sure the summary bit above is
// set, and so on up to the top, whether or not it changed anything at those levels: a process
// killed between setting a word's first bit and that word's summary bit leaves the summary clear,
// and the next insert that sets any bit of the word mends it (an insert that stopped at the first
// level whose bit was set already would leave the word unreachable for ever, and the loss would
// grow with every block listed there since). A remove clears only its own bit: a summary bit
// over a word that became empty goes stale, and the search that steps over it clears it and then
// re-reads the word below, setting the bit again if an insert refilled the word meanwhile.
// Summaries are thus written when a search finds one stale, not each time a word of a sparse
// class empties and refills (which, with many threads, bounced the few summary words every
// searcher reads between cores).
//
// Memory ordering: every load and read-modify-write here is sequentially consistent. Inserts and
// stale-summary clears are each a write to one word followed by a read of another (the word
// above, or the word below re-read), the store-buffering shape: with acquire/release alone, both
// sides could read the other's word from before its write, and a non-empty word would end with
// its summary clear. On x86 a sequentially consistent load is a plain load and every RMW is
// locked anyway, so this costs nothing there.
//
// Invariant, whenever no operation is between two of its writes: a non-empty word has its summary
// bit set. Between two writes (or after a process died there) a non-empty word may have its
// summary bit clear; the next insert that sets a bit in that word, or the repair pass
// (IndexRepair.swift), mends it. A summary bit may be set over an empty word, which the next
// search to meet it clears.

import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
#endif

/// The free-space index of a mapped cache: per class, a hierarchical bitmap over blocks.
///
/// Kept to a few words (the level table lives in process memory, owned by the index), so the hot
/// paths pass it in registers instead of copying a layout around. Not copyable: the level table
/// is freed once, by `deinit`.
struct FreeSpaceIndex: ~Copyable {
    let words: UnsafeMutablePointer<Atomic<UInt64>>
    /// Per level: the word offset within a class (`levelCount` entries), then the level's bit count.
    private let levels: UnsafeMutablePointer<Int>
    let levelCount: Int
    private let wordsPerClass: Int
    let classCount: Int

    /// Maps the index described by `layout` at `words`; the level table is allocated here and
    /// released by `deinit`.
    init(layout: FreeIndexLayout, words: UnsafeMutablePointer<Atomic<UInt64>>) {
        self.words = words
        levelCount = layout.levelCount
        wordsPerClass = layout.wordsPerClass
        classCount = layout.classCount
        levels = .allocate(capacity: 2 * levelCount)
        var offset = 0
        for level in 0..<levelCount {
            levels[level] = offset
            levels[levelCount + level] = layout.bitCount(level: level)
            offset += layout.wordCount(level: level)
        }
    }

    deinit { levels.deallocate() }

    @inline(__always)
    private func wordIndex(class blockClass: Int, level: Int, bit: Int) -> Int {
        blockClass &* wordsPerClass &+ levels[level] &+ bit &>> 6
    }

    /// The bottom-level word that lists `block` under `blockClass`. Level 0 comes first in each
    /// class's words, so this needs no look-up in the level table (a load on every free).
    @inline(__always)
    private func listingWord(_ block: Int, class blockClass: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        words + (blockClass &* wordsPerClass &+ block &>> 6)
    }

    @inline(__always)
    private func bitCount(level: Int) -> Int { levels[levelCount &+ level] }

    @inline(__always)
    private func bitMask(_ bit: Int) -> UInt64 { 1 &<< UInt64(bit & 63) }

    /// Lists `block` under `blockClass`. When that sets its bit, also makes sure every summary bit
    /// above it is set; a bit already set is left as it is, with whatever is above it (the hot
    /// path of every free: one load). A summary a dead process left clear over that bit is mended
    /// by the next insert that sets any bit of the word, or by the repair pass.
    @inline(__always)
    func insert(_ block: Int, class blockClass: Int) {
        assert(isInRange(block, class: blockClass), "listing of block \(block) under class \(blockClass) out of range")
        if !lists(block, class: blockClass) { setBits(bitMask(block), word: block &>> 6, class: blockClass, level: 0) }
    }

    /// Lists the blocks of `mask` (bit i stands for block `group × 64 + i`) under `blockClass`,
    /// and makes sure every summary bit above them is set.
    ///
    /// - Returns: how many of them were not listed before.
    @discardableResult
    func insert(blocks mask: UInt64, group: Int, class blockClass: Int) -> Int {
        let levelZero = listingWord(group &<< 6, class: blockClass)
        let added = (mask & ~levelZero.pointee.load(ordering: .sequentiallyConsistent)).nonzeroBitCount
        setBits(mask, word: group, class: blockClass, level: 0)
        return added
    }

    /// True when `block` and `blockClass` name a listing of this index (a debug check: a listing out
    /// of range would write another class's words).
    func isInRange(_ block: Int, class blockClass: Int) -> Bool {
        (0..<classCount).contains(blockClass) && (0..<bitCount(level: 0)).contains(block)
    }

    /// Sets the bits of `mask` in word `word` of `level`, then the summary bit of that word in the
    /// level above, up to the top. Each level costs one load when its bit is set already.
    private func setBits(_ mask: UInt64, word: Int, class blockClass: Int, level: Int) {
        var mask = mask
        var word = word
        for level in level..<levelCount {
            let target = words + wordIndex(class: blockClass, level: level, bit: word &<< 6)
            if target.pointee.load(ordering: .sequentiallyConsistent) & mask != mask {
                let before = target.pointee.bitwiseOr(mask, ordering: .sequentiallyConsistent).oldValue
                if before == 0, level &+ 1 < levelCount { crashPoint(.insertBeforeSummary, at: target) }
            }
            // On up even when nothing changed: see the summary protocol above.
            mask = bitMask(word)
            word &>>= 6
        }
    }

    /// True when `block` is listed under `blockClass` at the bottom level (one load).
    @inline(__always)
    func lists(_ block: Int, class blockClass: Int) -> Bool {
        listingWord(block, class: blockClass).pointee.load(ordering: .sequentiallyConsistent) & bitMask(block) != 0
    }

    /// Removes `block` from `blockClass`. Summary bits are left as they are: one over a word this
    /// empties goes stale, and the next search that steps over it clears it (`clearStaleSummary`).
    /// Clearing here instead would write the summary words, which every thread and process reads,
    /// each time a word of a sparse class empties, to be set again by the next insert.
    func remove(_ block: Int, class blockClass: Int) {
        assert(isInRange(block, class: blockClass), "removal of block \(block) from class \(blockClass) out of range")
        let word = listingWord(block, class: blockClass)
        if word.pointee.load(ordering: .sequentiallyConsistent) & bitMask(block) == 0 { return }
        word.pointee.bitwiseAnd(~bitMask(block), ordering: .sequentiallyConsistent)
    }

    /// Clears summary bit `bit` of `level`, found over an empty word, then re-reads that word: an
    /// insert that refilled it meanwhile may have seen the bit still set and not set it again,
    /// so this sets it again for that insert (the store-buffering pair of the file comment).
    /// When the clear empties the summary word itself, the bit above it goes the same way.
    private func clearStaleSummary(_ bit: Int, class blockClass: Int, level: Int) {
        let summary = words + wordIndex(class: blockClass, level: level, bit: bit)
        let after = summary.pointee.bitwiseAnd(~bitMask(bit), ordering: .sequentiallyConsistent).newValue
        crashPoint(.staleSummaryCleared, at: summary)
        if words[wordIndex(class: blockClass, level: level &- 1, bit: bit &<< 6)].load(
            ordering: .sequentiallyConsistent) != 0
        {
            setBits(bitMask(bit), word: bit &>> 6, class: blockClass, level: level)
        } else if after == 0, level &+ 1 < levelCount {
            clearStaleSummary(bit &>> 6, class: blockClass, level: level &+ 1)
        }
    }

    /// The first block at or after `start` listed under `blockClass`, wrapping around once; `nil`
    /// when the class is empty. Reads O(levels) words, plus one step per stale summary bit.
    func first(class blockClass: Int, from start: Int) -> Int? {
        if let block = next(class: blockClass, from: start) { return block }
        return start == 0 ? nil : next(class: blockClass, from: 0)
    }

    /// The first listed block at or after `start`, without wrapping.
    private func next(class blockClass: Int, from start: Int) -> Int? {
        var level = 0
        var bit = start
        while true {
            // Climb until a word holds a set bit at or after `bit`.
            guard bit < bitCount(level: level) else {
                if level + 1 == levelCount { return nil }
                bit = (bit &>> 6) &+ 1
                level &+= 1
                continue
            }
            let word = wordIndex(class: blockClass, level: level, bit: bit)
            let candidates = words[word].load(ordering: .sequentiallyConsistent) & (UInt64.max &<< UInt64(bit & 63))
            guard candidates != 0 else {
                if level + 1 == levelCount { return nil }
                bit = (bit &>> 6) &+ 1
                level &+= 1
                continue
            }
            // Descend along first set bits.
            var found = (bit & ~63) | candidates.trailingZeroBitCount
            while level > 0 {
                let child = words[wordIndex(class: blockClass, level: level - 1, bit: found &<< 6)]
                    .load(ordering: .sequentiallyConsistent)
                if child == 0 {
                    // A stale summary bit: clear it, and resume after it, one level up.
                    clearStaleSummary(found, class: blockClass, level: level)
                    break
                }
                level &-= 1
                found = found &<< 6 | child.trailingZeroBitCount
            }
            if level == 0 { return found }
            bit = found &+ 1
        }
    }
}
