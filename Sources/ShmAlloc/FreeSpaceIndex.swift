// The free-space index in the mapped file (see ShmFormat/FreeIndex.swift for its shape), and the
// atomic operations that keep it: insert, remove, find.
//
// Summary protocol, per level: an insert that turns a word from zero to non-zero sets the word's
// bit one level up. A remove that turns a word to zero clears that bit, then re-reads the word:
// if an insert refilled it in between, the bit is set again. With sequentially consistent RMWs and
// re-read, a non-empty word always ends with its summary bit set; a summary bit may be set over an
// empty word for a moment, which a search simply steps over.

import ShmFormat
import Synchronization

/// The free-space index of a mapped cache: per class, a hierarchical bitmap over blocks.
///
/// Kept to a few words (the level table lives in `SharedCache`'s process memory), so the hot paths
/// pass it in registers instead of copying a layout around.
struct FreeSpaceIndex {
    let words: UnsafeMutablePointer<Atomic<UInt64>>
    /// Per level: the word offset within a class (`levelCount` entries), then the level's bit count.
    private let levels: UnsafeMutablePointer<Int>
    let levelCount: Int
    private let wordsPerClass: Int
    let classCount: Int

    /// Maps the index described by `layout` at `words`; the level table is allocated here and
    /// released by `deallocate()`.
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

    /// Releases the level table.
    func deallocate() { levels.deallocate() }

    @inline(__always)
    private func wordIndex(class blockClass: Int, level: Int, bit: Int) -> Int {
        blockClass &* wordsPerClass &+ levels[level] &+ bit &>> 6
    }

    @inline(__always)
    private func bitCount(level: Int) -> Int { levels[levelCount &+ level] }

    @inline(__always)
    private func bitMask(_ bit: Int) -> UInt64 { 1 &<< UInt64(bit & 63) }

    /// Lists `block` under `blockClass`, setting summary bits up the levels as words become non-empty.
    func insert(_ block: Int, class blockClass: Int) { insertBit(block, class: blockClass, level: 0) }

    /// Sets bit `bit` of `level` and, where that makes a word non-empty, the summary bits above it.
    private func insertBit(_ bit: Int, class blockClass: Int, level: Int) {
        var bit = bit
        for level in level..<levelCount {
            let word = wordIndex(class: blockClass, level: level, bit: bit)
            // Already set: an earlier insert owns the summary above (or a remove will restore it).
            if words[word].load(ordering: .relaxed) & bitMask(bit) != 0 { return }
            let before = words[word].bitwiseOr(bitMask(bit), ordering: .sequentiallyConsistent).oldValue
            if before != 0 { return }
            bit &>>= 6
        }
    }

    /// Removes `block` from `blockClass`, clearing summary bits as words become empty.
    func remove(_ block: Int, class blockClass: Int) { removeBit(block, class: blockClass, level: 0) }

    private func removeBit(_ bit: Int, class blockClass: Int, level: Int) {
        let word = wordIndex(class: blockClass, level: level, bit: bit)
        if words[word].load(ordering: .relaxed) & bitMask(bit) == 0 { return }
        let after = words[word].bitwiseAnd(~bitMask(bit), ordering: .sequentiallyConsistent).newValue
        guard after == 0, level + 1 < levelCount else { return }
        removeBit(bit &>> 6, class: blockClass, level: level + 1)
        // An insert may have refilled the word after it emptied and before its summary bit went.
        if words[word].load(ordering: .sequentiallyConsistent) != 0 {
            insertBit(bit &>> 6, class: blockClass, level: level + 1)
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
                if child == 0 { break }   // a stale summary bit: resume after it, one level up
                level &-= 1
                found = found &<< 6 | child.trailingZeroBitCount
            }
            if level == 0 { return found }
            bit = found &+ 1
        }
    }
}
