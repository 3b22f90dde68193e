// BuddyTree's bit tricks against the brute-force model, for every depth, order and position.

import ShmFormat
import ShmWorkloads
import Testing

@Suite("BuddyTree against a brute-force model")
struct BuddyTreeTests {
    static let depths = Array(0...Geometry.largestDepth)

    /// Compares every function that is defined on any word (valid or not).
    func expectStructureAgrees(_ tree: BuddyTree, _ model: BuddyModel, word: UInt64) {
        let context = Comment("depth \(tree.depth), word 0x\(String(word, radix: 16))")
        #expect(tree.isValid(word) == model.isValid, context)
        #expect(tree.nodesUnderSetParent(word) == model.nodesUnderSetParent, context)
        #expect(tree.allocations(word) == model.allocations, context)
        #expect(tree.takenLeafCount(word) == model.takenLeafCount, context)
        for node in model.nodes {
            #expect(tree.isAllocation(word, node: node) == model.isAllocation(node), "\(context), node \(node)")
        }
    }

    /// Compares the free-space functions, which are defined on valid words only.
    func expectFreeSpaceAgrees(_ tree: BuddyTree, _ model: BuddyModel, word: UInt64) {
        let context = Comment("depth \(tree.depth), word 0x\(String(word, radix: 16))")
        #expect(tree.largestFreeOrder(word) == model.largestFreeOrder(), context)
        for order in 0...tree.depth {
            #expect(tree.freeStarts(word, order: order) == model.freeStarts(order: order), "\(context), order \(order)")
            #expect(
                tree.maximalFreeStarts(word, order: order) == model.leafMask(model.maximalFreeNodes(order: order)),
                "\(context), order \(order)")
            #expect(
                tree.firstFreeNode(word, order: order) == model.firstFreeNode(order: order),
                "\(context), order \(order)")
            #expect(
                tree.bestFitNode(word, order: order) == model.bestFitNode(order: order), "\(context), order \(order)")
            for position in model.positions(order: order) {
                let node = model.node(order: order, position: position)
                #expect(tree.isFree(word, node: node) == model.isFree(node), "\(context), node \(node)")
            }
        }
    }

    @Test("shape: node numbering, set masks, byte offsets", arguments: depths)
    func shape(depth: Int) {
        let tree = BuddyTree(depth: depth)
        let model = BuddyModel(depth: depth)
        #expect(tree.nodeCount == model.nodeCount)
        #expect(tree.leafCount == 1 << depth)
        #expect(tree.usedBits == model.nodeMask(Array(model.nodes)))
        #expect(tree.fullWord == model.nodeMask(Array(model.nodes)))
        for order in 0...depth {
            for position in model.positions(order: order) {
                let node = model.node(order: order, position: position)
                #expect(tree.node(order: order, position: position) == node)
                #expect(tree.node(order: order, firstLeaf: model.firstLeaf(of: node)) == node)
                #expect(tree.order(ofNode: node) == order)
                #expect(tree.level(ofNode: node) == depth - order)
                #expect(tree.position(ofNode: node) == position)
                #expect(tree.setMask(ofNode: node) == model.setMask(node), "node \(node)")
                #expect(tree.byteOffset(ofNode: node, minSize: 32) == position * (32 << order))
            }
        }
    }

    @Test("every word of depths 0...3: structure; every valid one: free space", arguments: 0...3)
    func exhaustiveSmallTrees(depth: Int) {
        let tree = BuddyTree(depth: depth)
        var validCount = 0
        // Every combination of the tree's bits (bit 0 stays clear; stray bits are tested separately).
        for bits in 0..<(UInt64(1) << UInt64(tree.nodeCount)) {
            let word = bits << 1
            let model = BuddyModel(depth: depth, word: word)
            expectStructureAgrees(tree, model, word: word)
            if model.isValid {
                validCount += 1
                expectFreeSpaceAgrees(tree, model, word: word)
            }
        }
        // Valid trees: v(0) = 2 (set or clear), v(d) = v(d-1)² + 1 (both halves free-form, or all set).
        let expectedValid = (0..<depth).reduce(2) { count, _ in count * count + 1 }
        #expect(validCount == expectedValid)
    }

    @Test("random allocate/free sequences: every function, every order and position", arguments: depths)
    func randomSequences(depth: Int) {
        let tree = BuddyTree(depth: depth)
        var random = SplitMix64(seed: 0x5EED_0000 + UInt64(depth))
        for _ in 0..<(depth <= 3 ? 20 : 10) {
            var model = BuddyModel(depth: depth)
            var word: UInt64 = 0
            var live: [Int] = []
            for _ in 0..<40 {
                if !live.isEmpty, Bool.random(using: &random) {
                    let node = live.remove(at: Int.random(in: 0..<live.count, using: &random))
                    #expect(tree.isAllocation(word, node: node))
                    word &= ~tree.setMask(ofNode: node)
                    model.free(node)
                } else {
                    // A random node of a random order: claim it when free, as the allocator's CAS would.
                    let order = Int.random(in: 0...depth, using: &random)
                    let node = model.node(
                        order: order, position: Int.random(in: model.positions(order: order), using: &random))
                    #expect(tree.isFree(word, node: node) == model.isFree(node))
                    guard model.isFree(node) else { continue }
                    word |= tree.setMask(ofNode: node)
                    model.allocate(node)
                    live.append(node)
                }
                #expect(word == model.word)
                #expect(model.isValid)
                expectStructureAgrees(tree, model, word: word)
                expectFreeSpaceAgrees(tree, model, word: word)
                #expect(model.allocations == model.nodeMask(live))
            }
        }
    }

    @Test("random arbitrary words of depths 4 and 5: structure", arguments: [4, 5])
    func randomArbitraryWords(depth: Int) {
        let tree = BuddyTree(depth: depth)
        var random = SplitMix64(seed: 0xA4B1_7000 + UInt64(depth))
        for _ in 0..<2000 {
            let word = random.next() & tree.usedBits
            expectStructureAgrees(tree, BuddyModel(depth: depth, word: word), word: word)
        }
    }

    @Test("a word with bits outside the tree is invalid", arguments: depths)
    func strayBitsAreInvalid(depth: Int) {
        let tree = BuddyTree(depth: depth)
        #expect(tree.isValid(0))
        #expect(tree.isValid(tree.fullWord))
        #expect(!tree.isValid(1), "bit 0 is never used")
        if tree.nodeCount < 63 {
            #expect(!tree.isValid(UInt64(1) << UInt64(tree.nodeCount + 1)), "first bit past the tree")
        }
        #expect(tree.largestFreeOrder(tree.fullWord) == nil)
        #expect(tree.largestFreeOrder(0) == depth)
        for order in 0...depth {
            #expect(tree.bestFitNode(tree.fullWord, order: order) == nil)
            #expect(tree.firstFreeNode(tree.fullWord, order: order) == nil)
        }
    }

    /// A hand-checked case: the best fit leaves the larger chunk whole even though it comes first.
    @Test("best fit prefers the smaller chunk over the leftmost one")
    func bestFitExample() {
        let tree = BuddyTree(depth: 2)  // leaves 4..7, halves 2 and 3, root 1
        let word = tree.setMask(ofNode: 7)  // the last leaf taken: left half free, leaf 6 free alone
        #expect(tree.firstFreeNode(word, order: 0) == 4)
        #expect(tree.bestFitNode(word, order: 0) == 6)
        #expect(tree.bestFitNode(word, order: 1) == 2)
        #expect(tree.bestFitNode(word, order: 2) == nil)
    }
}
