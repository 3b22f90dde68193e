// The census pass for the default tree shape (depth 5: 32 leaves, 63 nodes), bit-sliced.
//
// Per word, the census needs facts that relate bits far apart in the word: a node's children
// (bit i against bits 2i and 2i+1, for validity), a node's occupancy (is any leaf under it taken:
// an OR over up to 32 leaf bits), and whether a whole level is occupied (an AND over a level).
// Computed word by word, each is a chain of spreads and folds, 60–80 operations per word.
//
// So the pass transposes blocks of 64 words into 64 *slices*: slice k holds bit k of each of the
// 64 words (bit j of slice k = bit k of word j). In that form, node i's children are simply
// slices 2i and 2i+1, and every tree relation is one AND or OR of two slices that serves 64 words
// at once:
//   invalid  = s[0] | OR over internal i of s[i] & ~(s[2i] & s[2i+1])   (stray bit 0, broken child)
//   occ[i]   = leaves: s[i]; internal nodes: occ[2i] | occ[2i+1]        (a leaf under i is taken)
//   full(L)  = AND of occ[i] over level L                                (no free node on level L)
// and every count is a sum of slice popcounts: set nodes per level (allocations follow, see
// below), occupied nodes per level (free = nodes − occupied), and words with a full level.
// The transpose is the classic six rounds of block swaps (Hacker's Delight 7–3), all shifts and
// masks, so lanes of `SIMD2<UInt64>` carry two blocks through every step at once.
//
// Derived counts, for valid words (a set node's children are set):
// - allocations(level L) = set(L) − 2·set(L−1): each set node at L−1 sets its two children.
// - a level L full of occupied nodes implies level L−1 is too, so the words whose largest free
//   order is o are those with level 5−o not full but level 4−o full (see the fold at the end).
// A batch holding an invalid word is counted again by the exact pass, so corrupt words are
// counted exactly, just slower. Words left over after the last whole batch take the exact pass too.

extension BuddyCensus {
    /// The lanes of the sliced pass: lane b carries the b-th block of 64 words of a batch.
    typealias SliceLanes = SIMD2<UInt64>

    /// Words per block: one bit of every slice per word.
    static let sliceBlockWords = 64
    /// Words per batch: one block per lane.
    static let sliceBatchWords = sliceBlockWords * SliceLanes.scalarCount
    /// Batches between reductions of the 16-bit lane accumulators: a batch adds at most
    /// 2 bytes × 8 bits × 32 slices = 512 to a 16-bit lane, so 64 batches stay below 2^16.
    static let sliceFlushInterval = 64

    /// Where the running sums of the sliced pass live in its scratch buffer, after the 64 slices
    /// and the occupancy slices of nodes 1...31 (at 64 + node). Each is a `SliceLanes` of 16-bit
    /// lanes, reduced every `sliceFlushInterval` batches.
    enum SliceSum {
        /// Set nodes of level 0...5 (level 5 = taken leaves).
        static func set(_ level: Int) -> Int { 96 &+ level }
        /// Occupied nodes (some leaf under them taken) of level 0...4.
        static func occupied(_ level: Int) -> Int { 102 &+ level }
        /// Words whose level 0...5 has every node occupied (level 5: the word is full).
        static func fullLevel(_ level: Int) -> Int { 107 &+ level }
        /// Slices, occupancy and sums.
        static let bufferCount = 113
    }

    /// The census pass for depth-5 words (see the top of this file).
    mutating func addDepth5(_ words: UnsafeBufferPointer<UInt64>) {
        precondition(tree.depth == 5, "the sliced pass is for depth-5 trees")
        let batch = Self.sliceBatchWords
        let fullWord = tree.fullWord
        var set = [Int](repeating: 0, count: 6)
        var occupied = [Int](repeating: 0, count: 5)
        var fullLevel = [Int](repeating: 0, count: 6)
        var counted = 0
        var start = 0
        withUnsafeTemporaryAllocation(of: SliceLanes.self, capacity: SliceSum.bufferCount) { buffer in
            let slices = buffer.baseAddress.unsafelyUnwrapped
            var sinceFlush = 0
            func flush() {
                for level in 0..<6 { set[level] += Self.laneTotal(slices[SliceSum.set(level)]) }
                for level in 0..<5 { occupied[level] += Self.laneTotal(slices[SliceSum.occupied(level)]) }
                for level in 0..<6 { fullLevel[level] += Self.laneTotal(slices[SliceSum.fullLevel(level)]) }
                for index in 96..<SliceSum.bufferCount { slices[index] = .zero }
                sinceFlush = 0
            }
            for index in 96..<SliceSum.bufferCount { slices[index] = .zero }
            while start &+ batch <= words.count {
                let base = words.baseAddress.unsafelyUnwrapped + start
                // Runs of empty blocks (a fresh or drained region) and of full ones are common
                // and cost one pass of ORs and ANDs: their counts are known.
                switch Self.uniformBatch(base) {
                case 0:
                    counted &+= batch
                    start &+= batch
                    continue
                case fullWord:
                    counted &+= batch
                    for level in 0..<6 {
                        set[level] += batch << level
                        if level < 5 { occupied[level] += batch << level }
                        fullLevel[level] += batch
                    }
                    start &+= batch
                    continue
                default: break
                }
                Self.transpose(base, into: slices)
                if Self.sliceInvalid(slices) {
                    addExactly(UnsafeBufferPointer(start: base, count: batch))
                } else {
                    Self.countSlices(slices)
                    counted &+= batch
                    sinceFlush &+= 1
                    if sinceFlush == Self.sliceFlushInterval { flush() }
                }
                start &+= batch
            }
            flush()
        }
        if start < words.count { addExactly(UnsafeBufferPointer(rebasing: words[start...])) }

        // Fold the valid words' totals in (see the top of this file).
        wordCount += counted
        takenLeaves += set[5]
        for order in 0...5 {
            let level = 5 - order
            allocationsByOrder[order] += set[level] - (level > 0 ? 2 * set[level - 1] : 0)
            freeNodesByOrder[order] += (counted << level) - (level == 5 ? set[5] : occupied[level])
        }
        fullWords += fullLevel[5]
        emptyWords += counted - fullLevel[0]
        wordsByLargestFreeOrder[0] += fullLevel[5]
        for order in 0..<5 { wordsByLargestFreeOrder[order + 1] += fullLevel[4 - order] - fullLevel[5 - order] }
        wordsByLargestFreeOrder[6] += counted - fullLevel[0]
    }

    /// Transposes the batch's 64 rows of 64 bits (row j of lane b = word 64·b + j of `words`)
    /// into `slices`: bit j of slice k is bit k of row j. Six rounds swap ever smaller off-diagonal
    /// blocks (32×32, 16×16, … 1×1); rounds 32, 16 and 8 pair rows 8 apart or more, rounds 4, 2
    /// and 1 pair rows within a group of 8, so two passes over groups of 8 rows do all six rounds
    /// in registers (one store per row per pass, where six separate rounds would store six times).
    @inline(__always)
    static func transpose(_ words: UnsafePointer<UInt64>, into slices: UnsafeMutablePointer<SliceLanes>) {
        @inline(__always) func swap(_ a: inout SliceLanes, _ b: inout SliceLanes, _ width: UInt64, _ mask: UInt64) {
            let swapped = ((a &>> width) ^ b) & mask
            b ^= swapped
            a ^= swapped &<< width
        }
        @inline(__always) func eightRows(
            _ r: inout (SliceLanes, SliceLanes, SliceLanes, SliceLanes, SliceLanes, SliceLanes, SliceLanes, SliceLanes),
            _ widths: (UInt64, UInt64, UInt64), _ masks: (UInt64, UInt64, UInt64)
        ) {
            swap(&r.0, &r.4, widths.0, masks.0)
            swap(&r.1, &r.5, widths.0, masks.0)
            swap(&r.2, &r.6, widths.0, masks.0)
            swap(&r.3, &r.7, widths.0, masks.0)
            swap(&r.0, &r.2, widths.1, masks.1)
            swap(&r.1, &r.3, widths.1, masks.1)
            swap(&r.4, &r.6, widths.1, masks.1)
            swap(&r.5, &r.7, widths.1, masks.1)
            swap(&r.0, &r.1, widths.2, masks.2)
            swap(&r.2, &r.3, widths.2, masks.2)
            swap(&r.4, &r.5, widths.2, masks.2)
            swap(&r.6, &r.7, widths.2, masks.2)
        }
        @inline(__always) func row(_ index: Int) -> SliceLanes {
            var lanes = SliceLanes()
            for block in 0..<SliceLanes.scalarCount { lanes[block] = words[block &* 64 &+ index] }
            return lanes
        }
        /// Stores eight rows at slices `first`, `first + stride`, … `first + 7·stride`.
        @inline(__always) func store(
            _ r: (SliceLanes, SliceLanes, SliceLanes, SliceLanes, SliceLanes, SliceLanes, SliceLanes, SliceLanes),
            first: Int, stride: Int
        ) {
            slices[first] = r.0
            slices[first &+ stride] = r.1
            slices[first &+ 2 &* stride] = r.2
            slices[first &+ 3 &* stride] = r.3
            slices[first &+ 4 &* stride] = r.4
            slices[first &+ 5 &* stride] = r.5
            slices[first &+ 6 &* stride] = r.6
            slices[first &+ 7 &* stride] = r.7
        }
        // Rows g, g+8, …, g+56: rounds 32, 16, 8.
        for group in 0..<8 {
            var r = (
                row(group), row(group &+ 8), row(group &+ 16), row(group &+ 24),
                row(group &+ 32), row(group &+ 40), row(group &+ 48), row(group &+ 56)
            )
            eightRows(&r, (32, 16, 8), (0x0000_0000_FFFF_FFFF, 0x0000_FFFF_0000_FFFF, 0x00FF_00FF_00FF_00FF))
            store(r, first: group, stride: 8)
        }
        // Rows 8g ..< 8g+8: rounds 4, 2, 1.
        for group in 0..<8 {
            let first = group &* 8
            var r = (
                slices[first], slices[first &+ 1], slices[first &+ 2], slices[first &+ 3],
                slices[first &+ 4], slices[first &+ 5], slices[first &+ 6], slices[first &+ 7]
            )
            eightRows(&r, (4, 2, 1), (0x0F0F_0F0F_0F0F_0F0F, 0x3333_3333_3333_3333, 0x5555_5555_5555_5555))
            store(r, first: first, stride: 1)
        }
    }

    /// The word every word of the batch at `words` equals, or `nil` when they differ.
    @inline(__always)
    static func uniformBatch(_ words: UnsafePointer<UInt64>) -> UInt64? {
        let raw = UnsafeRawPointer(words)
        var any = SliceLanes.zero
        var all = SliceLanes(repeating: ~0)
        for pair in 0..<(sliceBatchWords / SliceLanes.scalarCount) {
            let lanes = raw.loadUnaligned(fromByteOffset: pair &* MemoryLayout<SliceLanes>.size, as: SliceLanes.self)
            any |= lanes
            all &= lanes
        }
        let first = any[0]
        return any == all && any == SliceLanes(repeating: first) ? first : nil
    }

    /// True when some word of the batch breaks the invariant: bit 0 set, or a set internal node
    /// without both children set.
    @inline(__always)
    static func sliceInvalid(_ slices: UnsafeMutablePointer<SliceLanes>) -> Bool {
        var bad = slices[0]
        for node in 1..<32 { bad |= slices[node] & ~(slices[2 &* node] & slices[2 &* node &+ 1]) }
        return bad != .zero
    }

    /// Adds the batch's counts (valid words) to the lane sums; fills the occupancy slices.
    @inline(__always)
    static func countSlices(_ slices: UnsafeMutablePointer<SliceLanes>) {
        let occupancy = slices + 64  // occupancy[node] for internal nodes 1...31
        // Level 4 folds pairs of leaves; each level above folds pairs of the one below.
        for node in 16..<32 { occupancy[node] = slices[2 &* node] | slices[2 &* node &+ 1] }
        for node in (1..<16).reversed() { occupancy[node] = occupancy[2 &* node] | occupancy[2 &* node &+ 1] }

        // The byte counts of `count` slices from `first` (at most 16: a byte gains 8 per slice),
        // widened to 16-bit lanes, and their AND. Constant counts, so every loop unrolls.
        @inline(__always) func group(_ first: UnsafePointer<SliceLanes>, _ count: Int) -> (
            counts: SliceLanes, all: SliceLanes
        ) {
            var counts = SliceLanes.zero
            var all = first[0]
            for index in 0..<count {
                counts &+= byteCounts(first[index])
                all &= first[index]
            }
            return (widened(counts), all)
        }
        @inline(__always) func add(_ value: SliceLanes, at index: Int) { slices[index] &+= value }

        // Levels of 16 slices and more take carry-save adders first (see `count16`).
        add(count16(slices + 32) &+ count16(slices + 48), at: SliceSum.set(5))
        var allLeaves = slices[32]
        for leaf in 33..<64 { allLeaves &= slices[leaf] }
        add(widened(byteCounts(allLeaves)), at: SliceSum.fullLevel(5))
        add(count16(slices + 16), at: SliceSum.set(4))
        add(count16(occupancy + 16), at: SliceSum.occupied(4))
        var allOccupied = occupancy[16]
        for node in 17..<32 { allOccupied &= occupancy[node] }
        add(widened(byteCounts(allOccupied)), at: SliceSum.fullLevel(4))
        @inline(__always) func level(_ level: Int) {
            let first = 1 &<< level
            let set = group(slices + first, first)
            let occupied = group(occupancy + first, first)
            add(set.counts, at: SliceSum.set(level))
            add(occupied.counts, at: SliceSum.occupied(level))
            add(widened(byteCounts(occupied.all)), at: SliceSum.fullLevel(level))
        }
        level(0)
        level(1)
        level(2)
        level(3)
    }

    /// The set bits of 16 slices from `first`, summed per 16-bit lane of each SIMD lane.
    ///
    /// Carry-save adders (Harley–Seal) first add the slices bitwise into slices of weight 1, 2,
    /// 4, 8 and 16, so five byte counts replace sixteen. Each byte of the weighted sum is at most
    /// 8 · 31 = 248, so it fits before widening.
    @inline(__always)
    static func count16(_ first: UnsafePointer<SliceLanes>) -> SliceLanes {
        /// A full adder on every bit: (carry, sum) of a + b + c.
        @inline(__always) func add(_ a: SliceLanes, _ b: SliceLanes, _ c: SliceLanes) -> (SliceLanes, SliceLanes) {
            let partial = a ^ b
            return ((a & b) | (partial & c), partial ^ c)
        }
        // Ones absorb two slices per adder, passing carries on as twos; twos, fours, eights alike.
        var (twos0, ones) = add(first[0], first[1], first[2])
        let (twos1, ones1) = add(ones, first[3], first[4])
        ones = ones1
        let (twos2, ones2) = add(ones, first[5], first[6])
        ones = ones2
        let (twos3, ones3) = add(ones, first[7], first[8])
        ones = ones3
        let (twos4, ones4) = add(ones, first[9], first[10])
        ones = ones4
        let (twos5, ones5) = add(ones, first[11], first[12])
        ones = ones5
        let (twos6, ones6) = add(ones, first[13], first[14])
        ones = ones6
        let twos7 = ones & first[15]
        ones ^= first[15]
        let (fours0, twosA) = add(twos0, twos1, twos2)
        let (fours1, twosB) = add(twosA, twos3, twos4)
        let (fours2, twosC) = add(twosB, twos5, twos6)
        let fours3 = twosC & twos7
        twos0 = twosC ^ twos7
        let (eights0, foursA) = add(fours0, fours1, fours2)
        let eights1 = foursA & fours3
        let fours = foursA ^ fours3
        let sixteens = eights0 & eights1
        let eights = eights0 ^ eights1
        let bytes =
            byteCounts(ones) &+ (byteCounts(twos0) &<< 1) &+ (byteCounts(fours) &<< 2)
            &+ (byteCounts(eights) &<< 3) &+ (byteCounts(sixteens) &<< 4)
        return widened(bytes)
    }

    /// The number of set bits in each byte of each lane.
    @inline(__always)
    static func byteCounts(_ value: SliceLanes) -> SliceLanes {
        let pairs = value &- ((value &>> 1) & 0x5555_5555_5555_5555)
        let nibbles = (pairs & 0x3333_3333_3333_3333) &+ ((pairs &>> 2) & 0x3333_3333_3333_3333)
        return (nibbles &+ (nibbles &>> 4)) & 0x0F0F_0F0F_0F0F_0F0F
    }

    /// Byte lanes summed pairwise into 16-bit lanes.
    @inline(__always)
    static func widened(_ bytes: SliceLanes) -> SliceLanes {
        (bytes & 0x00FF_00FF_00FF_00FF) &+ ((bytes &>> 8) & 0x00FF_00FF_00FF_00FF)
    }

    /// The sum of every 16-bit lane of every SIMD lane.
    static func laneTotal(_ halves: SliceLanes) -> Int {
        var total = 0
        for lane in 0..<SliceLanes.scalarCount {
            var value = halves[lane]
            for _ in 0..<4 {
                total += Int(value & 0xFFFF)
                value >>= 16
            }
        }
        return total
    }
}
