// The census and the kernel indices against a brute-force model that walks every node of every
// word one at a time: no masks, no folding, no lanes.

import ShmFormat
import ShmInspect
import ShmWorkloads
import Testing

/// What one word holds, found node by node (heap numbering: root 1, children 2i and 2i+1).
struct BruteForceWord {
    var takenLeaves = 0
    var allocationsByOrder: [Int]
    var freeNodesByOrder: [Int]
    var maximalFreeByOrder: [Int]
    var isEmpty = false
    var isFull = false
    var isValid = true
    /// nil when no node is free.
    var largestFreeOrder: Int?

    init(_ word: UInt64, depth: Int) {
        let nodeCount = (2 << depth) - 1
        func bit(_ node: Int) -> Bool { word >> UInt64(node) & 1 == 1 }
        func level(_ node: Int) -> Int { Int.bitWidth - 1 - node.leadingZeroBitCount }
        func order(_ node: Int) -> Int { depth - level(node) }
        func leaves(under node: Int) -> [Int] {
            let shift = depth - level(node)
            return Array((node << shift)..<((node + 1) << shift))
        }
        func isFree(_ node: Int) -> Bool { leaves(under: node).allSatisfy { !bit($0) } }

        allocationsByOrder = Array(repeating: 0, count: depth + 1)
        freeNodesByOrder = Array(repeating: 0, count: depth + 1)
        maximalFreeByOrder = Array(repeating: 0, count: depth + 1)
        for stray in [0] + Array((nodeCount + 1)..<64) where bit(stray) { isValid = false }
        for node in 1...nodeCount {
            if bit(node), node < (1 << depth), !(bit(2 * node) && bit(2 * node + 1)) { isValid = false }
            if bit(node), node == 1 || !bit(node / 2) { allocationsByOrder[order(node)] += 1 }
            if level(node) == depth, bit(node) { takenLeaves += 1 }
            if isFree(node) {
                freeNodesByOrder[order(node)] += 1
                if node == 1 || !isFree(node / 2) { maximalFreeByOrder[order(node)] += 1 }
                largestFreeOrder = max(largestFreeOrder ?? 0, order(node))
            }
        }
        isEmpty = takenLeaves == 0
        isFull = takenLeaves == 1 << depth
    }
}

/// Valid words: random allocations of random orders where they fit, as an allocator would make them.
func randomValidWord(depth: Int, allocations: Int, using random: inout some RandomNumberGenerator) -> UInt64 {
    let tree = BuddyTree(depth: depth)
    var word: UInt64 = 0
    for _ in 0..<allocations {
        let order = Int.random(in: 0...depth, using: &random)
        let node = tree.node(order: order, position: Int.random(in: 0..<(1 << (depth - order)), using: &random))
        if tree.isFree(word, node: node) { word |= tree.setMask(ofNode: node) }
    }
    return word
}

/// Sums the brute-force model over `words` and checks every count of the census.
func expectCensusMatchesModel(_ words: [UInt64], depth: Int, sourceLocation: SourceLocation = #_sourceLocation) {
    let census = BuddyCensus(tree: BuddyTree(depth: depth), words: words)
    let models = words.map { BruteForceWord($0, depth: depth) }
    func sum(_ values: (BruteForceWord) -> [Int]) -> [Int] {
        models.reduce(Array(repeating: 0, count: depth + 1)) { zip($0, values($1)).map(+) }
    }
    var byLargest = Array(repeating: 0, count: depth + 2)
    for model in models { byLargest[model.largestFreeOrder.map { $0 + 1 } ?? 0] += 1 }

    #expect(census.wordCount == words.count, sourceLocation: sourceLocation)
    #expect(census.takenLeaves == models.reduce(0) { $0 + $1.takenLeaves }, sourceLocation: sourceLocation)
    #expect(census.allocationsByOrder == sum(\.allocationsByOrder), sourceLocation: sourceLocation)
    #expect(census.freeNodesByOrder == sum(\.freeNodesByOrder), sourceLocation: sourceLocation)
    #expect(census.maximalFreeByOrder == sum(\.maximalFreeByOrder), sourceLocation: sourceLocation)
    #expect(census.emptyWords == models.filter(\.isEmpty).count, sourceLocation: sourceLocation)
    #expect(census.fullWords == models.filter(\.isFull).count, sourceLocation: sourceLocation)
    #expect(census.invalidWords == models.filter { !$0.isValid }.count, sourceLocation: sourceLocation)
    #expect(census.wordsByLargestFreeOrder == byLargest, sourceLocation: sourceLocation)
}

@Suite("BuddyCensus against a brute-force model")
struct CensusTests {
    @Test("hand-built words: empty, full, one allocation of every order at every position", arguments: 0...5)
    func handBuilt(depth: Int) {
        let tree = BuddyTree(depth: depth)
        let full = tree.setMask(ofNode: 1)
        var words: [UInt64] = [0, full]
        for node in 1...tree.nodeCount { words.append(tree.setMask(ofNode: node)) }
        for words in [words, [0], [full], []] { expectCensusMatchesModel(words, depth: depth) }
    }

    @Test("hand-built invalid words: stray bit 0, bits past the tree, a set node with clear children")
    func invalidWords() {
        let tree = BuddyTree(depth: 5)
        let words: [UInt64] = [1, 1 | tree.setMask(ofNode: 40), 0b10, tree.setMask(ofNode: 2) & ~(1 << 4), 1 << 3]
        expectCensusMatchesModel(words, depth: 5)
        #expect(BuddyCensus(tree: tree, words: words).invalidWords == 5)
        // Depth 3 uses bits 1...15 only.
        expectCensusMatchesModel([1 << 20, BuddyTree(depth: 3).setMask(ofNode: 1)], depth: 3)
        #expect(BuddyCensus(tree: BuddyTree(depth: 3), words: [1 << 20]).invalidWords == 1)
    }

    @Test("random valid words, batches of every length around the lane flush", arguments: 0...5)
    func randomValid(depth: Int) {
        var random = SplitMix64(seed: 0x5EED_0006)
        for count in [1, 30, 31, 32, 62, 1000] {
            let words = (0..<count).map { _ in
                randomValidWord(depth: depth, allocations: Int.random(in: 0...40, using: &random), using: &random)
            }
            expectCensusMatchesModel(words, depth: depth)
        }
    }

    @Test("random 64-bit words (mostly invalid)", arguments: 0...5)
    func randomAnything(depth: Int) {
        var random = SplitMix64(seed: 0x5EED_0007)
        let words = (0..<500).map { _ in UInt64.random(in: 0...UInt64.max, using: &random) }
        expectCensusMatchesModel(words, depth: depth)
    }

    @Test("depth 5: valid words with invalid ones sprinkled in (the sliced pass and its exact fallback)")
    func mixedBatches() {
        var random = SplitMix64(seed: 0x5EED_0008)
        var words = (0..<3000).map { _ in
            randomValidWord(depth: 5, allocations: Int.random(in: 0...30, using: &random), using: &random)
        }
        for _ in 0..<20 {
            words[Int.random(in: 0..<words.count, using: &random)] = UInt64.random(in: 0...UInt64.max, using: &random)
        }
        words += Array(repeating: 0, count: 40) + Array(repeating: BuddyTree(depth: 5).setMask(ofNode: 1), count: 40)
        expectCensusMatchesModel(words, depth: 5)
        expectCensusMatchesModel(words.shuffled(using: &random), depth: 5)
    }

    @Test("depth 5: whole batches of empty and of full blocks (the sliced pass's shortcut), beside mixed ones")
    func uniformBatches() {
        var random = SplitMix64(seed: 0x5EED_0009)
        let full = BuddyTree(depth: 5).setMask(ofNode: 1)
        let mixed = (0..<128).map { _ in randomValidWord(depth: 5, allocations: 10, using: &random) }
        for words in [
            Array(repeating: 0, count: 256), Array(repeating: full, count: 128),
            Array(repeating: 0, count: 128) + Array(repeating: full, count: 128) + mixed
                + Array(repeating: 0, count: 300),
            Array(repeating: 0, count: 127) + [full] + Array(repeating: full, count: 127) + [0],
        ] { expectCensusMatchesModel(words, depth: 5) }
    }

    @Test("censuses add and subtract like the sets of words they count")
    func arithmetic() {
        var random = SplitMix64(seed: 0x5EED_000A)
        let tree = BuddyTree(depth: 5)
        let first = (0..<100).map { _ in randomValidWord(depth: 5, allocations: 20, using: &random) }
        let second = (0..<77).map { _ in randomValidWord(depth: 5, allocations: 5, using: &random) }
        let whole = BuddyCensus(tree: tree, words: first + second)
        #expect(BuddyCensus(tree: tree, words: first) + BuddyCensus(tree: tree, words: second) == whole)
        #expect(whole - BuddyCensus(tree: tree, words: second) == BuddyCensus(tree: tree, words: first))
        #expect(
            second.reduce(BuddyCensus(tree: tree)) { $0 + BuddyCensus(tree: tree, word: $1) }
                == BuddyCensus(tree: tree, words: second))
    }
}

@Suite("Kernel fragmentation indices")
struct FragmentationIndexTests {
    /// The formulas of mm/vmstat.c in the kernel's integer arithmetic (scaled by 1000), on pages.
    static func kernelIndices(_ chunks: [Int], order: Int) -> (unusable: Int, fragmentation: Int) {
        var freePages = 0
        var totalBlocks = 0
        var suitable = 0
        for (chunkOrder, count) in chunks.enumerated() {
            totalBlocks += count
            freePages += count << chunkOrder
            if chunkOrder >= order { suitable += count << (chunkOrder - order) }
        }
        let unusable = freePages == 0 ? 0 : (freePages - (suitable << order)) * 1000 / freePages
        let fragmentation: Int
        if totalBlocks == 0 {
            fragmentation = 0
        } else if suitable > 0 {
            fragmentation = -1000
        } else {
            fragmentation = 1000 - (1000 + freePages * 1000 / (1 << order)) / totalBlocks
        }
        return (unusable, fragmentation)
    }

    @Test("matches the kernel's integer formulas to a thousandth")
    func matchesKernel() {
        var random = SplitMix64(seed: 0x5EED_000B)
        let cases: [[Int]] =
            [[0, 0, 0, 0, 0, 0], [5, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 3], [12, 4, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1]]
            + (0..<200).map { _ in
                (0..<6).map { _ in Int.random(in: 0...50, using: &random) * Int.random(in: 0...1, using: &random) }
            }
        for chunks in cases {
            let indices = FragmentationIndices(freeChunksByOrder: chunks)
            for order in 0..<6 {
                let kernel = Self.kernelIndices(chunks, order: order)
                #expect(
                    abs(indices.unusableFreeIndex(order: order) * 1000 - Double(kernel.unusable)) < 1.0001,
                    "\(chunks) order \(order)")
                #expect(
                    abs(indices.fragmentationIndex(order: order) * 1000 - Double(kernel.fragmentation)) < 1.0001,
                    "\(chunks) order \(order)")
            }
        }
    }

    @Test("worked example: 12 chunks of 32 B, 4 of 64 B, 1 of 128 B")
    func workedExample() {
        let indices = FragmentationIndices(freeChunksByOrder: [12, 4, 1, 0, 0, 0])
        // free = 12 + 8 + 4 = 24 units; order 2 (128 B): 1 suitable chunk = 4 units usable.
        #expect(indices.freeUnits == 24)
        #expect(indices.unusableFreeIndex(order: 2) == 20.0 / 24.0)
        #expect(indices.fragmentationIndex(order: 2) == -1)
        // Order 3: nothing suitable; 1 − (1 + 24/8) / 17.
        #expect(indices.fragmentationIndex(order: 3) == 1 - 4.0 / 17.0)
        #expect(indices.unusableFreeIndex(order: 0) == 0)
    }
}
