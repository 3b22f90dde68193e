// The figures a refresh takes from its changed blocks' word pairs, in one pass over them.

import ShmFormat

/// The allocations that appeared and disappeared between the two words of each changed block
/// (the rates) and the leaves each block took or gave back (the heatmap's flashes), made in one
/// pass over the word pairs: both words' allocation masks are computed at once, in the two lanes
/// of a vector, and a valid pair's leaf change comes from the allocations that came and went.
///
/// An allocation is a set node whose parent is clear; a node that is an allocation in the later
/// word and not in the earlier one appeared, the reverse disappeared. The definition holds for
/// any word, valid or not, so damaged words are counted as the tree's queries count them.
struct ChangedBlockFigures {
    /// Allocation nodes that appeared.
    private(set) var allocations = 0
    /// Allocation nodes that disappeared.
    private(set) var frees = 0
    /// Leaves under the allocations that appeared (× the smallest node's bytes = their bytes).
    private(set) var allocatedLeaves = 0
    /// Leaves under the allocations that disappeared.
    private(set) var freedLeaves = 0
    /// For each pair, the later word's taken leaves minus the earlier word's.
    private(set) var takenLeafDeltas: [Int] = []

    /// The figures of the pairs `earlierWords[i]`, `laterWords[i]` of words of `tree`.
    init(earlierWords: [UInt64], laterWords: [UInt64], tree: BuddyTree) {
        precondition(earlierWords.count == laterWords.count, "word pairs of unequal counts")
        takenLeafDeltas = [Int](unsafeUninitializedCapacity: laterWords.count) { deltas, initialized in
            // The leaves under the node of each bit: a table, so that a node costs one load.
            withUnsafeTemporaryAllocation(of: Int.self, capacity: UInt64.bitWidth) { leavesUnder in
                for node in 0..<UInt64.bitWidth {
                    leavesUnder[node] = node == 0 || node > tree.nodeCount ? 0 : 1 << tree.order(ofNode: node)
                }
                earlierWords.withUnsafeBufferPointer { earlier in
                    laterWords.withUnsafeBufferPointer { later in
                        add(earlier, later, tree: tree, leavesUnder: UnsafeBufferPointer(leavesUnder), into: deltas)
                    }
                }
            }
            initialized = laterWords.count
        }
    }

    /// Counts the pairs `earlier[i]`, `later[i]`, writing each pair's leaf change to `deltas[i]`.
    private mutating func add(
        _ earlier: UnsafeBufferPointer<UInt64>, _ later: UnsafeBufferPointer<UInt64>, tree: BuddyTree,
        leavesUnder: UnsafeBufferPointer<Int>, into deltas: UnsafeMutableBufferPointer<Int>
    ) {
        let leafShift = UInt64(tree.leafCount)
        let allLeaves = tree.allLeaves
        let usedBits = SIMD2(repeating: tree.usedBits)
        let internalBits = SIMD2(repeating: tree.internalBits)
        // Sums in locals, so that they stay in registers.
        var (allocations, frees, allocatedLeaves, freedLeaves) = (0, 0, 0, 0)
        for index in 0..<later.count {
            let pair = SIMD2(earlier[index], later[index])
            let underSetParent = Self.childrenOfSetNodes(pair & internalBits)
            let masks = pair & usedBits & ~underSetParent
            var taken = 0
            var nodes = masks[1] & ~masks[0]
            while nodes != 0 {
                taken &+= leavesUnder[nodes.trailingZeroBitCount]
                allocations &+= 1
                nodes &= nodes &- 1
            }
            var given = 0
            nodes = masks[0] & ~masks[1]
            while nodes != 0 {
                given &+= leavesUnder[nodes.trailingZeroBitCount]
                frees &+= 1
                nodes &= nodes &- 1
            }
            allocatedLeaves &+= taken
            freedLeaves &+= given
            // A valid word's (no stray bit, every set node's children set) taken leaves are those
            // under its allocations, so the allocations that came and went are the leaves' change.
            // Other words count their leaf bits.
            let broken = (pair & ~usedBits) | (underSetParent & ~pair)
            if broken[0] | broken[1] == 0 {
                deltas[index] = taken &- given
            } else {
                // The later word's leaves in the high half, the earlier's in the low.
                let leaves = (pair &>> leafShift) & allLeaves
                deltas[index] = Self.highMinusLowBitCount(leaves[1] &<< 32 | leaves[0])
            }
        }
        self.allocations &+= allocations
        self.frees &+= frees
        self.allocatedLeaves &+= allocatedLeaves
        self.freedLeaves &+= freedLeaves
    }

    /// ``BuddyTree/childrenOfSetNodes(_:)`` on both lanes at once (two lanes in one vector register
    /// cost about as much as one word): bits 1 ... 31 spread to the even bits 2 ... 62 in halving
    /// steps (the step of `shift` moves the upper `shift` bits of every 2·`shift`-bit field up by
    /// `shift`, keeping the fields' low halves: the mask `~0 / (2^shift + 1)`), then each copied
    /// one bit up, an add that cannot carry. The loop has constant bounds and unrolls.
    @inline(__always)
    private static func childrenOfSetNodes(_ internalNodes: SIMD2<UInt64>) -> SIMD2<UInt64> {
        var spread = internalNodes & 0xFFFF_FFFF
        var shift: UInt64 = 16
        while shift > 0 {
            spread = (spread | spread &<< shift) & (~0 / ((1 &<< shift) &+ 1))
            shift &>>= 1
        }
        return spread &+ spread &<< 1
    }

    /// The set bits of the high 32 bits of `bits` minus those of the low 32 bits: bit counts per
    /// byte (the SWAR steps: the default x86-64 target has no popcount instruction), then one
    /// multiply that sums the bytes up to each byte, so byte 3 holds the low half's count and
    /// byte 7 the whole word's.
    @inline(__always)
    private static func highMinusLowBitCount(_ bits: UInt64) -> Int {
        var counts = bits &- ((bits &>> 1) & 0x5555_5555_5555_5555)
        counts = (counts & 0x3333_3333_3333_3333) &+ ((counts &>> 2) & 0x3333_3333_3333_3333)
        counts = (counts &+ (counts &>> 4)) & 0x0F0F_0F0F_0F0F_0F0F
        let sums = counts &* 0x0101_0101_0101_0101
        let low = Int(truncatingIfNeeded: (sums &>> 24) & 0xFF)
        let whole = Int(truncatingIfNeeded: sums &>> 56)
        return whole &- 2 &* low
    }
}
