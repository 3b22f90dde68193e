// The census pass for the default tree shape (depth 5: 32 leaves, 63 nodes): byte tables.
//
// A depth-5 word is eight bytes with fixed meanings: byte 0 holds levels 0–2 (bits 1, 2–3, 4–7),
// byte 1 level 3, bytes 2–3 level 4, bytes 4–7 the 32 leaves. Everything the census counts is a
// sum over bytes of a per-byte fact, except three things that look across bytes: free nodes of
// orders 4 and 5 (two or four clear leaf bytes), the largest free order (a maximum), and validity.
// So each byte is looked up in one 256-entry table (2 KiB, always in L1) whose entries are packed
// counters that add up directly; four such sums per word replace dozens of bit operations.
//
// Allocations per level come from set-node counts: in a valid word a set node's children are set,
// so allocations(L) = set(L) − 2·set(L−1). Validity is checked per word (the children of the set
// internal nodes, spread from a second byte table, must be set); a batch that holds an invalid word
// is counted again by the exact pass, so corrupt words are counted exactly, just slower.

extension BuddyCensus {
    /// Field offsets of a byte-table entry. Widths hold a batch's sums without carrying into the
    /// next field: 15 words × 4 leaf bytes × at most 8 (pop), 4 (free1), 2 (free2), 1 (free3).
    enum ByteField {
        static let pop: UInt64 = 0            // 9 bits: set bits of the byte
        static let free1: UInt64 = 9          // 8 bits: clear aligned pairs (free 64 B nodes)
        static let free2: UInt64 = 17         // 7 bits: clear aligned quads (free 128 B nodes)
        static let free3: UInt64 = 24         // 6 bits: 1 when the byte is clear (a free 256 B node)
        static let level0: UInt64 = 30        // 4 bits: as byte 0, bit 1 (the root)
        static let level1: UInt64 = 34        // 5 bits: as byte 0, bits 2–3
        static let level2: UInt64 = 39        // 6 bits: as byte 0, bits 4–7
        static let indicators: UInt64 = 60    // 4 bits: a free node of order 0, 1, 2, 3 exists (not summed)
    }

    /// Words per batch: 15 keeps every field of the summed entries within its width.
    static let depth5Batch = 15

    /// The packed facts of one byte, as the depth-5 pass sums them.
    static func byteFacts(_ byte: UInt64) -> UInt64 {
        func clearRuns(_ width: Int) -> UInt64 {
            UInt64(stride(from: 0, to: 8, by: width).filter { byte >> UInt64($0) & ((1 << UInt64(width)) - 1) == 0 }.count)
        }
        let free1 = clearRuns(2), free2 = clearRuns(4), free3 = clearRuns(8)
        var facts = UInt64(byte.nonzeroBitCount) << ByteField.pop
        facts |= free1 << ByteField.free1 | free2 << ByteField.free2 | free3 << ByteField.free3
        facts |= (byte >> 1 & 1) << ByteField.level0
        facts |= UInt64((byte & 0x0C).nonzeroBitCount) << ByteField.level1
        facts |= UInt64((byte & 0xF0).nonzeroBitCount) << ByteField.level2
        let indicators = (byte != 0xFF ? 1 : 0) | (free1 > 0 ? 2 : 0) | (free2 > 0 ? 4 : 0) | (free3 > 0 ? 8 : 0)
        return facts | UInt64(indicators) << ByteField.indicators
    }

    /// `byteFacts` of every byte value.
    static let byteFactTable: [UInt64] = (0..<256).map { byteFacts(UInt64($0)) }
    /// The children of the set nodes of a byte's bits, for validity: bit i → bits 2i and 2i+1.
    static let byteChildrenTable: [UInt16] = (0..<256).map { UInt16(BuddyTree.childrenOfSetNodes(UInt64($0))) }

    /// The census pass for depth-5 words (see the top of this file).
    mutating func addDepth5(_ words: UnsafeBufferPointer<UInt64>) {
        precondition(tree.depth == 5, "the byte-table pass is for depth-5 trees")
        var counted = 0
        var levelSets = (0, 0, 0, 0, 0, 0)          // set nodes per level 0...5 (level 5 = taken leaves)
        var freeTotals = (0, 0, 0, 0, 0)            // free nodes of orders 1...5
        var largestFree = (0, 0, 0, 0, 0, 0, 0)     // full, then largest free order 0...5

        Self.byteFactTable.withUnsafeBufferPointer { factTable in
            Self.byteChildrenTable.withUnsafeBufferPointer { childrenTable in
                let facts = factTable.baseAddress.unsafelyUnwrapped
                let children = childrenTable.baseAddress.unsafelyUnwrapped
                var start = 0
                while start < words.count {
                    let end = min(words.count, start &+ Self.depth5Batch)
                    var leafSums: UInt64 = 0, level3Sums: UInt64 = 0, level4Sums: UInt64 = 0, lowSums: UInt64 = 0
                    var largestLanes: UInt64 = 0      // 8-bit lanes: words per largest-free class
                    var free4 = 0, free5 = 0
                    var bad: UInt64 = 0
                    for index in start..<end {
                        // No shortcut for empty blocks: the tables count a zero word right, and a
                        // branch on it would be mispredicted wherever empty and used blocks mix.
                        let word = words[index]
                        let low = UInt32(truncatingIfNeeded: word), leaves = UInt32(truncatingIfNeeded: word &>> 32)
                        let byte0 = Int(low & 0xFE), byte1 = Int(low &>> 8 & 0xFF)
                        let byte2 = Int(low &>> 16 & 0xFF), byte3 = Int(low &>> 24)
                        let leaf0 = facts[Int(leaves & 0xFF)], leaf1 = facts[Int(leaves &>> 8 & 0xFF)]
                        let leaf2 = facts[Int(leaves &>> 16 & 0xFF)], leaf3 = facts[Int(leaves &>> 24)]
                        leafSums &+= leaf0 &+ leaf1 &+ leaf2 &+ leaf3
                        level3Sums &+= facts[byte1]
                        level4Sums &+= facts[byte2] &+ facts[byte3]
                        lowSums &+= facts[byte0]

                        // Set internal nodes must have both children set; bit 0 must be clear.
                        let childrenOfSet = UInt64(children[byte0]) | UInt64(children[byte1]) &<< 16
                            | UInt64(children[byte2]) &<< 32 | UInt64(children[byte3]) &<< 48
                        bad |= (childrenOfSet & ~word) | (word & 1)

                        // Orders 4 and 5 span bytes: two or four clear leaf bytes.
                        let clearLowHalf = leaves & 0xFFFF == 0, clearHighHalf = leaves &>> 16 == 0
                        let freeOrder4 = (clearLowHalf ? 1 : 0) &+ (clearHighHalf ? 1 : 0)
                        let freeOrder5 = leaves == 0 ? 1 : 0
                        free4 &+= freeOrder4
                        free5 &+= freeOrder5
                        // Free orders form a prefix 0...k, so the indicator bits are 2^(k+1) − 1 and
                        // the class (0 = full, k + 1 = largest free order k) is the count of ones.
                        var indicators = (leaf0 | leaf1 | leaf2 | leaf3) &>> ByteField.indicators
                        indicators |= UInt64(freeOrder4 == 0 ? 0 : 16) | UInt64(freeOrder5 &* 32)
                        largestLanes &+= 1 &<< (UInt64((indicators &+ 1).trailingZeroBitCount) &* 8)
                    }
                    guard bad == 0 else {
                        // An invalid word: count this batch exactly instead.
                        addExactly(UnsafeBufferPointer(rebasing: words[start..<end]))
                        start = end
                        continue
                    }
                    func field(_ sums: UInt64, _ offset: UInt64, _ width: UInt64) -> Int {
                        Int(truncatingIfNeeded: sums &>> offset & ((1 &<< width) &- 1))
                    }
                    func lane(_ lanes: UInt64, _ index: UInt64) -> Int { Int(truncatingIfNeeded: lanes &>> (index &* 8) & 0xFF) }
                    counted &+= end &- start
                    levelSets.0 &+= field(lowSums, ByteField.level0, 4)
                    levelSets.1 &+= field(lowSums, ByteField.level1, 5)
                    levelSets.2 &+= field(lowSums, ByteField.level2, 6)
                    levelSets.3 &+= field(level3Sums, ByteField.pop, 9)
                    levelSets.4 &+= field(level4Sums, ByteField.pop, 9)
                    levelSets.5 &+= field(leafSums, ByteField.pop, 9)
                    freeTotals.0 &+= field(leafSums, ByteField.free1, 8)
                    freeTotals.1 &+= field(leafSums, ByteField.free2, 7)
                    freeTotals.2 &+= field(leafSums, ByteField.free3, 6)
                    freeTotals.3 &+= free4
                    freeTotals.4 &+= free5
                    largestFree.0 &+= lane(largestLanes, 0)
                    largestFree.1 &+= lane(largestLanes, 1)
                    largestFree.2 &+= lane(largestLanes, 2)
                    largestFree.3 &+= lane(largestLanes, 3)
                    largestFree.4 &+= lane(largestLanes, 4)
                    largestFree.5 &+= lane(largestLanes, 5)
                    largestFree.6 &+= lane(largestLanes, 6)
                    start = end
                }
            }
        }

        // Fold the valid words' totals in.
        let sets = [levelSets.0, levelSets.1, levelSets.2, levelSets.3, levelSets.4, levelSets.5]
        let freeAbove = [freeTotals.0, freeTotals.1, freeTotals.2, freeTotals.3, freeTotals.4]
        let largest = [largestFree.0, largestFree.1, largestFree.2, largestFree.3, largestFree.4, largestFree.5, largestFree.6]
        wordCount += counted
        takenLeaves += sets[5]
        for order in 0...5 {
            let level = 5 - order
            allocationsByOrder[order] += sets[level] - (level > 0 ? 2 * sets[level - 1] : 0)
            let free = order == 0 ? counted * 32 - sets[5] : freeAbove[order - 1]
            freeNodesByOrder[order] += free
        }
        fullWords += largest[0]
        emptyWords += largest[6]
        for index in 0...6 { wordsByLargestFreeOrder[index] += largest[index] }
    }
}
