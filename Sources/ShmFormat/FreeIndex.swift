// The free-space index: which blocks can serve which request, findable without a scan.
//
// Every block belongs to one *class*: the order of its largest free node (a full block belongs to
// none). For each class the index holds a bitmap over blocks, bit b = "block b may be of this
// class", topped by summary levels: bit i of a level-k word says "word i of level k−1 may be
// non-zero". A search descends from the one-word top level with find-first-set, so finding a
// block, or learning that a class is empty, costs O(levels) = O(log64 blocks) word reads.
//
// The index is advisory. Ownership changes only by the CAS on a block's buddy word; the index may
// list a block under a class it has left (a searcher that finds it there re-files it), but every
// free files its block under the class it rises to, so a block is never missing from the class
// its free space belongs to once the frees that made it are complete.
//
// Layout, in 64-bit words from the start of the index region: class 0's levels (level 0 first,
// the top last), then class 1's, …, class `depth`'s.

/// The shape of the free-space index for a geometry: how many words each level of each class has
/// and where they are. Pure arithmetic: no I/O.
public struct FreeIndexLayout: Hashable, Sendable {
    // Hashable by hand: everything else is derived from these two.
    public static func == (lhs: Self, rhs: Self) -> Bool {
        lhs.blockCount == rhs.blockCount && lhs.classCount == rhs.classCount
    }
    public func hash(into hasher: inout Hasher) {
        hasher.combine(blockCount)
        hasher.combine(classCount)
    }

    /// The most levels an index can have: 64^7 bits cover any block count a header allows.
    public static let maximumLevels = 7

    /// The number of blocks indexed (the null region's blocks are never listed).
    public let blockCount: Int
    /// The number of classes: one per order, `minSize` to the block size.
    public let classCount: Int
    /// The number of levels per class (1 when every block fits one word).
    public let levelCount: Int
    /// The words of one class: every level of its bitmap.
    public let wordsPerClass: Int
    @usableFromInline var wordCounts = InlineArray<7, Int>(repeating: 0)
    @usableFromInline var offsets = InlineArray<7, Int>(repeating: 0)

    /// The index for `geometry`'s blocks and orders.
    public init(geometry: Geometry) {
        blockCount = geometry.blockCount
        classCount = geometry.orderCount
        var bits = blockCount
        var level = 0
        var total = 0
        repeat {
            let words = (bits + 63) / 64
            wordCounts[level] = words
            offsets[level] = total
            total += words
            bits = words
            level += 1
        } while bits > 1
        levelCount = level
        wordsPerClass = total
    }

    /// Every word of every class.
    public var totalWords: Int { classCount * wordsPerClass }
    /// The words of `level` in each class.
    @inlinable public func wordCount(level: Int) -> Int { wordCounts[level] }
    /// The number of meaningful bits at `level`: blocks at level 0, the level below's words above.
    @inlinable public func bitCount(level: Int) -> Int { level == 0 ? blockCount : wordCounts[level - 1] }
    /// The index-region word that holds bit `bit` of `level` for `blockClass`.
    @inlinable
    public func wordIndex(class blockClass: Int, level: Int, bit: Int) -> Int {
        blockClass &* wordsPerClass &+ offsets[level] &+ bit &>> 6
    }

    /// True when `words` (a copy of the index region) lists `block` under `blockClass`.
    public func lists(_ words: UnsafeBufferPointer<UInt64>, block: Int, class blockClass: Int) -> Bool {
        words[wordIndex(class: blockClass, level: 0, bit: block)] & (1 &<< UInt64(block & 63)) != 0
    }

    /// Writes the index of a new cache into zeroed `words`: every block from `firstBlock` on is
    /// empty, so it is listed under the top class and nowhere else.
    public func initialise(_ words: UnsafeMutableBufferPointer<UInt64>, firstBlock: Int) {
        precondition(words.count >= totalWords, "index buffer too small")
        let top = classCount - 1
        var firstBit = firstBlock
        var endBit = blockCount
        for level in 0..<levelCount {
            for bit in stride(from: firstBit & ~63, to: endBit, by: 64) {
                let low = max(firstBit - bit, 0)
                let high = min(endBit - bit, 64)
                let mask = high - low == 64 ? UInt64.max : ((1 << UInt64(high - low)) - 1) << UInt64(low)
                words[wordIndex(class: top, level: level, bit: bit)] |= mask
            }
            firstBit >>= 6
            endBit = (endBit + 63) >> 6
        }
    }
}
