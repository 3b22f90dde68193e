// Counting what many buddy words hold, in one pass: the additive part of a cache's statistics.
//
// Everything an inspector reports about the words is a sum over blocks of a function of one word
// (taken leaves, allocations per order, free nodes per order, empty/full blocks, invalid words,
// blocks per largest free order). `BuddyCensus` is that sum. Its hot loop avoids popcount
// instructions (the default x86-64 target has none) by summing bit counts in byte lanes of 64-bit
// accumulators and reducing them every few dozen words; see `add(_:)` for the per-word work.

/// Counts over a set of buddy words (blocks) of one tree shape.
///
/// Two censuses of the same tree add up (`+`), so a pass can be split across ranges or threads,
/// and a census can be kept up to date by subtracting a block's old word and adding its new one.
public struct BuddyCensus: Hashable, Sendable {
    /// The tree every counted word belongs to.
    public let tree: BuddyTree
    /// The number of words counted.
    public internal(set) var wordCount = 0
    /// Leaves taken by allocations, over all words (× `minSize` = allocated bytes).
    public internal(set) var takenLeaves = 0
    /// Allocations per order (index 0 = `minSize` nodes … `depth` = whole blocks).
    public internal(set) var allocationsByOrder: [Int]
    /// Free nodes per order, maximal or not: a free node of order o+1 has two free children of order o.
    public internal(set) var freeNodesByOrder: [Int]
    /// Words with no leaf taken.
    public internal(set) var emptyWords = 0
    /// Words with every leaf taken.
    public internal(set) var fullWords = 0
    /// Words breaking the buddy invariant: stray bits, or a set node with a clear child.
    public internal(set) var invalidWords = 0
    /// Words per largest free order: index 0 counts full words, index o+1 the words whose largest
    /// free node has order o (so index `depth + 1` counts the empty words).
    public internal(set) var wordsByLargestFreeOrder: [Int]

    /// An empty census for words of `tree`.
    public init(tree: BuddyTree) {
        self.tree = tree
        allocationsByOrder = Array(repeating: 0, count: tree.depth + 1)
        freeNodesByOrder = Array(repeating: 0, count: tree.depth + 1)
        wordsByLargestFreeOrder = Array(repeating: 0, count: tree.depth + 2)
    }

    /// The census of `words`.
    public init(tree: BuddyTree, words: UnsafeBufferPointer<UInt64>) {
        self.init(tree: tree)
        add(words)
    }

    /// The census of `words`.
    public init(tree: BuddyTree, words: some Collection<UInt64>) {
        self.init(tree: tree)
        if words.withContiguousStorageIfAvailable({ add($0) }) == nil {
            Array(words).withUnsafeBufferPointer { add($0) }
        }
    }

    /// The census of a single word: what one block contributes.
    public init(tree: BuddyTree, word: UInt64) {
        self.init(tree: tree)
        withUnsafePointer(to: word) { add(UnsafeBufferPointer(start: $0, count: 1)) }
    }

    // MARK: - Derived counts

    /// *Maximal* free nodes per order (free, with a parent that is not free): the chunks
    /// `/proc/buddyinfo` counts. A free node of order o is either maximal or one of the two
    /// free children of a free node of order o+1, so maximal(o) = free(o) − 2·free(o+1).
    public var maximalFreeByOrder: [Int] {
        (0...tree.depth).map { order in
            freeNodesByOrder[order] - (order < tree.depth ? 2 * freeNodesByOrder[order + 1] : 0)
        }
    }

    /// Words with some but not all leaves taken.
    public var partialWords: Int { wordCount - emptyWords - fullWords }

    /// Leaves not taken, over all words (× `minSize` = free bytes).
    public var freeLeaves: Int { wordCount * tree.leafCount - takenLeaves }

    /// The order of the largest free node in any word, or `nil` when every word is full.
    public var largestFreeOrder: Int? { freeNodesByOrder.lastIndex { $0 > 0 } }

    // MARK: - Combining

    /// The census of both sets of words.
    public static func + (lhs: Self, rhs: Self) -> Self {
        var sum = lhs
        sum.merge(rhs, sign: 1)
        return sum
    }

    /// The census of `lhs` without the words of `rhs` (which must be a part of it).
    public static func - (lhs: Self, rhs: Self) -> Self {
        var difference = lhs
        difference.merge(rhs, sign: -1)
        return difference
    }

    mutating func merge(_ other: Self, sign: Int) {
        precondition(tree == other.tree, "censuses of different trees")
        wordCount += sign * other.wordCount
        takenLeaves += sign * other.takenLeaves
        emptyWords += sign * other.emptyWords
        fullWords += sign * other.fullWords
        invalidWords += sign * other.invalidWords
        for order in 0...tree.depth {
            allocationsByOrder[order] += sign * other.allocationsByOrder[order]
            freeNodesByOrder[order] += sign * other.freeNodesByOrder[order]
        }
        for index in wordsByLargestFreeOrder.indices {
            wordsByLargestFreeOrder[index] += sign * other.wordsByLargestFreeOrder[index]
        }
    }

    // MARK: - The pass

    /// Adds `words` to the census.
    ///
    /// Trees of depth 5 (the default 32 B … 1 KiB) take the bit-sliced pass of
    /// `addDepth5(_:)`; other depths, any batch there that holds an invalid word, and the words
    /// after its last whole batch take the exact pass `addExactly(_:)`.
    public mutating func add(_ words: UnsafeBufferPointer<UInt64>) {
        if tree.depth == 5 { addDepth5(words) } else { addExactly(words) }
    }

    /// Adds `words` to the census, exactly for any word, valid or not.
    ///
    /// Per word (numbers for the default depth 5): the nodes under a set parent come from one bit
    /// spread of the internal levels (`BuddyTree.childrenOfSetNodes`); allocations are set nodes
    /// without them. Bit counts of the allocation mask and of the leaves are summed per byte with
    /// the SWAR popcount steps and reduced every `lanesFlushInterval` words: levels 3, 4 and 5 of a
    /// word are bytes 1, 2–3 and 4–7, so byte lanes keep the levels apart; levels 0–2 (byte 0)
    /// are split by their 2-bit and 4-bit partial sums. Free nodes per order come from folding the
    /// leaves (`takenRuns`): order-1 counts share the leaves' SWAR pass, the sparser orders are
    /// summed with one multiply each. All-zero words (empty blocks) take a shortcut.
    mutating func addExactly(_ words: UnsafeBufferPointer<UInt64>) {
        let depth = tree.depth
        let leafShift = UInt64(tree.leafCount)  // the leaves are bits leafCount ..< 2·leafCount
        let allLeaves = tree.allLeaves
        let usedBits = tree.usedBits
        let internalBits = depth == 0 ? 0 : (UInt64(1) &<< leafShift) &- 2
        // The start masks of orders 1...5, zero beyond this tree's depth.
        func start(_ order: Int) -> UInt64 { order <= depth ? tree.startMask(order: order) : 0 }
        let start1 = start(1)
        let start2 = start(2)
        let start3 = start(3)
        let start4 = start(4)
        let start5 = start(5)

        var zeroWords = 0
        var taken = 0
        var invalid = 0
        var levelTotals = (0, 0, 0, 0, 0, 0)  // set-parent-free (allocation) nodes per level
        var freeTotals = (0, 0, 0, 0, 0)  // free nodes of orders 1...5
        var largestFreeTotals = (0, 0, 0, 0, 0, 0, 0)  // full, then largest free order 0...5

        var index = 0
        while index < words.count {
            let batchEnd = min(words.count, index &+ Self.lanesFlushInterval)
            // Byte lanes: allocation bits of levels 3...5 (bytes 1...7), taken leaves (bytes 0...3 of
            // `leafLanes`) and free order-1 nodes (bytes 4...7). Each byte gains at most 8 per word.
            var allocationLanes: UInt64 = 0
            var leafLanes: UInt64 = 0
            // 16-bit lanes: allocations of levels 0, 1, 2 (from byte 0's partial sums).
            var lowLevelLanes: UInt64 = 0
            // 16-bit lanes: free nodes of orders 2, 3, 4, 5.
            var sparseFreeLanes: UInt64 = 0
            // 8-bit lanes: words per largest-free class (lane 0 = full, lane o+1 = order o).
            var largestFreeLanes: UInt64 = 0
            while index < batchEnd {
                let word = words[index]
                index &+= 1
                if word == 0 {
                    zeroWords &+= 1
                    continue
                }

                let underSetParent = BuddyTree.childrenOfSetNodes(word & internalBits)
                invalid &+= (underSetParent & ~word) | (word & ~usedBits) == 0 ? 0 : 1
                let allocations = word & usedBits & ~underSetParent

                let low = Self.pairCounts(allocations & 0xFF)
                lowLevelLanes &+= (low & 3) | (low &>> 2 & 3) &<< 16 | ((low &>> 4 & 3) &+ (low &>> 6 & 3)) &<< 32
                allocationLanes &+= Self.byteCounts(allocations & ~0xFF)

                // Taken runs: bit j of `runsN` is set when a leaf in j ..< j + 2^N is taken.
                let leaves = word &>> leafShift & allLeaves
                let runs1 = leaves | leaves &>> 1
                let runs2 = runs1 | runs1 &>> 2
                let runs3 = runs2 | runs2 &>> 4
                let runs4 = runs3 | runs3 &>> 8
                let runs5 = runs4 | runs4 &>> 16
                let free1 = ~runs1 & start1
                let free2 = ~runs2 & start2
                let free3 = ~runs3 & start3
                let free4 = ~runs4 & start4
                let free5 = ~runs5 & start5
                leafLanes &+= Self.byteCounts(leaves | free1 &<< 32)
                // One set bit per 4 (8, 16) leaves: a multiply sums the nibbles (bytes) into the top one.
                let count2 = (free2 &* 0x1111_1111) &>> 28 & 0xF
                let count3 = (free3 &* 0x0101_0101) &>> 24 & 0xF
                let count4 = (free4 & 1) &+ (free4 &>> 16)
                sparseFreeLanes &+= count2 | count3 &<< 16 | count4 &<< 32 | free5 &<< 48

                // The largest free order is the number of orders with a free node, minus one (a free
                // node of order o+1 implies free nodes of every order below). Lane 0 = full word.
                let freeOrders =
                    (leaves == allLeaves ? 0 : 1) &+ (free1 == 0 ? 0 : 1) &+ (count2 == 0 ? 0 : 1)
                    &+ (count3 == 0 ? 0 : 1) &+ (count4 == 0 ? 0 : 1) &+ Int(free5)
                largestFreeLanes &+= UInt64(1) &<< UInt64(freeOrders &* 8)
            }
            func byte(_ lanes: UInt64, _ lane: Int) -> Int {
                Int(truncatingIfNeeded: lanes &>> UInt64(lane * 8) & 0xFF)
            }
            func half(_ lanes: UInt64, _ lane: Int) -> Int {
                Int(truncatingIfNeeded: lanes &>> UInt64(lane * 16) & 0xFFFF)
            }
            levelTotals.0 += half(lowLevelLanes, 0)
            levelTotals.1 += half(lowLevelLanes, 1)
            levelTotals.2 += half(lowLevelLanes, 2)
            levelTotals.3 += byte(allocationLanes, 1)
            levelTotals.4 += byte(allocationLanes, 2) + byte(allocationLanes, 3)
            levelTotals.5 += (4..<8).reduce(0) { $0 + byte(allocationLanes, $1) }
            taken += (0..<4).reduce(0) { $0 + byte(leafLanes, $1) }
            freeTotals.0 += (4..<8).reduce(0) { $0 + byte(leafLanes, $1) }
            freeTotals.1 += half(sparseFreeLanes, 0)
            freeTotals.2 += half(sparseFreeLanes, 1)
            freeTotals.3 += half(sparseFreeLanes, 2)
            freeTotals.4 += half(sparseFreeLanes, 3)
            largestFreeTotals.0 += byte(largestFreeLanes, 0)
            largestFreeTotals.1 += byte(largestFreeLanes, 1)
            largestFreeTotals.2 += byte(largestFreeLanes, 2)
            largestFreeTotals.3 += byte(largestFreeLanes, 3)
            largestFreeTotals.4 += byte(largestFreeLanes, 4)
            largestFreeTotals.5 += byte(largestFreeLanes, 5)
            largestFreeTotals.6 += byte(largestFreeLanes, 6)
        }

        // Fold the fixed-width totals into this tree's orders; an all-zero word is one free root.
        let levels = [levelTotals.0, levelTotals.1, levelTotals.2, levelTotals.3, levelTotals.4, levelTotals.5]
        let freeAbove = [freeTotals.0, freeTotals.1, freeTotals.2, freeTotals.3, freeTotals.4]
        let largest = [
            largestFreeTotals.0, largestFreeTotals.1, largestFreeTotals.2, largestFreeTotals.3,
            largestFreeTotals.4, largestFreeTotals.5, largestFreeTotals.6,
        ]
        wordCount += words.count
        takenLeaves += taken
        invalidWords += invalid
        for order in 0...depth {
            allocationsByOrder[order] += levels[depth - order]
            let counted = order == 0 ? (words.count - zeroWords) * tree.leafCount - taken : freeAbove[order - 1]
            freeNodesByOrder[order] += counted + zeroWords * (tree.leafCount >> order)
        }
        fullWords += largest[0]
        emptyWords += largest[depth + 1] + zeroWords
        for index in 0...(depth + 1) { wordsByLargestFreeOrder[index] += largest[index] }
        wordsByLargestFreeOrder[depth + 1] += zeroWords
    }

    /// Words per batch between lane reductions: a byte lane gains at most 8 per word, so 31 words
    /// (248) cannot overflow it.
    static let lanesFlushInterval = 31

    /// The number of set bits in each byte of `value`, one count per byte (the SWAR popcount steps
    /// without the final horizontal sum).
    @inline(__always)
    static func byteCounts(_ value: UInt64) -> UInt64 {
        let pairs = pairCounts(value)
        let nibbles = (pairs & 0x3333_3333_3333_3333) &+ (pairs &>> 2 & 0x3333_3333_3333_3333)
        return (nibbles &+ nibbles &>> 4) & 0x0F0F_0F0F_0F0F_0F0F
    }

    /// The number of set bits in each 2-bit pair of `value`.
    @inline(__always)
    static func pairCounts(_ value: UInt64) -> UInt64 {
        value &- (value &>> 1 & 0x5555_5555_5555_5555)
    }
}

extension BuddyTree {
    /// The nodes whose parent is set, for a word whose internal nodes are `internalNodes` (the
    /// bits below the leaves), in a constant number of steps: node i's children are bits 2i and 2i+1, so spreading bit i to bit 2i (a Morton
    /// "part 1 by 1" of the low 32 bits) and multiplying by 3 (= adding the copy shifted by one,
    /// which cannot carry because the spread bits are even) marks both children.
    @inlinable
    public static func childrenOfSetNodes(_ internalNodes: UInt64) -> UInt64 {
        var spread = internalNodes & 0xFFFF_FFFF
        spread = (spread | spread &<< 16) & 0x0000_FFFF_0000_FFFF
        spread = (spread | spread &<< 8) & 0x00FF_00FF_00FF_00FF
        spread = (spread | spread &<< 4) & 0x0F0F_0F0F_0F0F_0F0F
        spread = (spread | spread &<< 2) & 0x3333_3333_3333_3333
        spread = (spread | spread &<< 1) & 0x5555_5555_5555_5555
        return spread &* 3
    }
}
