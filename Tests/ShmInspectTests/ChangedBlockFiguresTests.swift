// The one pass over a refresh's changed word pairs (rates and taken-leaf changes together)
// against the figures computed separately, word by word, with the tree's own queries.

import ShmFormat
import ShmWorkloads
import Testing

@testable import ShmInspect

@Suite("Changed block figures")
struct ChangedBlockFiguresTests {
    /// The figures of the pairs, each computed on its own: the nodes that are allocations in
    /// one word and not the other, their node bytes, and the difference of the leaf counts.
    struct SeparateFigures: Equatable {
        var allocations = 0
        var frees = 0
        var allocatedBytes = 0
        var freedBytes = 0
        var takenLeafDeltas: [Int] = []

        init(earlier: [UInt64], later: [UInt64], geometry: Geometry) {
            let tree = geometry.tree
            for (before, after) in zip(earlier, later) {
                for node in 1...tree.nodeCount {
                    let bit = UInt64(1) << UInt64(node)
                    let wasAllocation = tree.allocations(before) & bit != 0
                    let isAllocation = tree.allocations(after) & bit != 0
                    let bytes = geometry.nodeSize(ofOrder: tree.order(ofNode: node))
                    if isAllocation, !wasAllocation {
                        allocations += 1
                        allocatedBytes += bytes
                    }
                    if wasAllocation, !isAllocation {
                        frees += 1
                        freedBytes += bytes
                    }
                }
                takenLeafDeltas.append(tree.takenLeafCount(after) - tree.takenLeafCount(before))
            }
        }
    }

    /// A valid word: allocations of random orders at random free places.
    static func validWord(_ tree: BuddyTree, using random: inout SplitMix64) -> UInt64 {
        var word: UInt64 = 0
        for _ in 0..<Int.random(in: 0...(2 * tree.leafCount), using: &random) {
            let order = Int.random(in: 0...tree.depth, using: &random)
            let node = tree.node(order: order, position: Int.random(in: 0..<(tree.leafCount >> order), using: &random))
            if tree.isFree(word, node: node) { word |= tree.setMask(ofNode: node) }
        }
        return word
    }

    @Test(
        "rates and leaf changes of random valid and damaged word pairs, at every tree depth, equal the separate counts",
        arguments: 0...Geometry.largestDepth)
    func matchesSeparateComputations(depth: Int) throws {
        let geometry = try Geometry(minSize: 32, maxSize: 32 << depth, capacity: 32 << 20)
        let tree = geometry.tree
        var random = SplitMix64(seed: 0xF16_0000 + UInt64(depth))
        var earlier: [UInt64] = []
        var later: [UInt64] = []
        for pair in 0..<3000 {
            let before = Self.validWord(tree, using: &random)
            var after = Self.validWord(tree, using: &random)
            switch pair % 10 {
            case 0: after = 0  // emptied
            case 1: after = tree.fullWord  // filled
            case 2: after = random.next() & tree.usedBits  // damaged: set nodes with clear children
            case 3: after = random.next()  // damaged: stray bits too
            case 4: after = before | tree.setMask(ofNode: 1)  // grown to the whole block
            default: break
            }
            // Some pairs the other way round, so that damage and emptiness are on both sides.
            if pair % 3 == 0 {
                (earlier, later) = (earlier + [after], later + [before])
            } else {
                (earlier, later) = (earlier + [before], later + [after])
            }
        }
        let figures = ChangedBlockFigures(earlierWords: earlier, laterWords: later, tree: tree)
        let expected = SeparateFigures(earlier: earlier, later: later, geometry: geometry)
        #expect(expected.allocations > 0 && expected.frees > 0)
        #expect(expected.takenLeafDeltas.contains { $0 > 0 } && expected.takenLeafDeltas.contains { $0 < 0 })
        #expect(figures.allocations == expected.allocations)
        #expect(figures.frees == expected.frees)
        #expect(figures.allocatedLeaves * geometry.minSize == expected.allocatedBytes)
        #expect(figures.freedLeaves * geometry.minSize == expected.freedBytes)
        #expect(figures.takenLeafDeltas == expected.takenLeafDeltas)
        // What SnapshotChanges hands on is the same pass.
        let rates = SnapshotRates(seconds: 2, figures: figures, geometry: geometry)
        #expect(rates.allocations == expected.allocations && rates.frees == expected.frees)
        #expect(rates.allocatedBytes == expected.allocatedBytes && rates.freedBytes == expected.freedBytes)
        #expect(rates.blocksChanged == later.count)
    }

    @Test("no pairs: no figures")
    func empty() throws {
        let figures = ChangedBlockFigures(earlierWords: [], laterWords: [], tree: BuddyTree(depth: 5))
        #expect(figures.allocations == 0 && figures.frees == 0 && figures.takenLeafDeltas.isEmpty)
    }
}
