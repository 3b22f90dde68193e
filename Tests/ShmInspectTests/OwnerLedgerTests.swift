// The owner ledger under heavy churn of one page's blocks: blocks growing and shrinking move their
// records to longer runs and the page is packed again, and what the ledger says still matches a
// plain model of every block's owners. Also: a node first read in flight, and the rates the same
// changed words give, against a walk of every allocation.

import ShmFormat
import ShmWorkloads
import Testing

@testable import ShmInspect

@Suite("Owner ledger")
struct OwnerLedgerTests {
    @Test("random words in two pages' blocks: sums, activity and each block's owners match a model")
    func churnMatchesModel() {
        let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 2 << 20)
        let tree = geometry.tree
        var ledger = OwnerLedger(geometry: geometry)
        var random = SplitMix64(seed: 0x1ED6E8)
        // The owner of each leaf allocation of each block (a block's allocations are its first leaves).
        var model = [[Int32]](repeating: [], count: geometry.blockCount)
        var allocated: [Int32: Int] = [:]
        var freed: [Int32: Int] = [:]
        for step in 0..<30_000 {
            let block = Int.random(in: 0..<geometry.blockCount, using: &random)
            // Emptied often, so that runs are given up and pages packed.
            let count =
                Int.random(in: 0..<4, using: &random) == 0 ? 0 : Int.random(in: 1...tree.leafCount, using: &random)
            let nodes = (0..<count).map { tree.node(order: 0, firstLeaf: $0) }
            let word = nodes.reduce(UInt64(0)) { $0 | tree.setMask(ofNode: $1) }
            let toRead = ledger.plan(block: block, word: word).nodesToRead
            var owners: [Int32] = []
            var read: [OwnerLedger.NodeRecord] = []
            for (leaf, node) in nodes.enumerated() {
                guard toRead & (1 << UInt64(node)) != 0 else {
                    owners.append(model[block][leaf])
                    continue
                }
                let pid = Int32.random(in: 1...3, using: &random)
                owners.append(pid)
                allocated[pid, default: 0] += 1
                read.append(
                    OwnerLedger.NodeRecord(.counted(AllocationHeader(ownerPID: pid, requestedSize: 8, order: 0))))
            }
            for pid in model[block].dropFirst(count) { freed[pid, default: 0] += 1 }
            ledger.replace(block: block, word: word, read: read[...], counting: true)
            model[block] = owners
            if step % 5000 == 4999 {
                let activity = ledger.takeActivity()
                for pid: Int32 in 1...3 {
                    #expect(
                        activity.counts[pid].map { $0.allocations } ?? 0 == allocated[pid, default: 0], "step \(step)")
                    #expect(activity.counts[pid].map { $0.frees } ?? 0 == freed[pid, default: 0], "step \(step)")
                }
                allocated = [:]
                freed = [:]
            }
        }
        let census = ledger.census(state: { _ in .alive })
        for pid: Int32 in 1...3 {
            let held = model.reduce(0) { $0 + $1.count { $0 == pid } }
            #expect(census.owners.first { $0.pid == pid }?.allocations ?? 0 == held)
            for block in model.indices { #expect(ledger.owns(block: block, pid: pid) == model[block].contains(pid)) }
        }
    }

    @Test("blocks growing to every leaf and shrinking again: each record stays with its node, only new nodes are read")
    func recordsFollowTheirNodes() {
        let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 2 << 20)
        let tree = geometry.tree
        var ledger = OwnerLedger(geometry: geometry)
        // Two blocks of one page, so that a run one outgrows is taken again by the other.
        let blocks = [3, 4]
        // Each leaf's record tells its leaf apart: its owner and requested size follow from it.
        func record(ofLeaf leaf: Int) -> OwnerLedger.NodeRecord {
            .init(.counted(AllocationHeader(ownerPID: Int32(1 + leaf % 5), requestedSize: 1 + leaf % 24, order: 0)))
        }
        var held = [Set<Int>](repeating: [], count: blocks.count)
        func bringUp(_ which: Int, to leaves: Set<Int>) {
            let word = leaves.reduce(UInt64(0)) { $0 | tree.setMask(ofNode: tree.node(order: 0, firstLeaf: $1)) }
            let toRead = ledger.plan(block: blocks[which], word: word).nodesToRead
            let read = leaves.sorted().filter { toRead & (1 << UInt64(tree.node(order: 0, firstLeaf: $0))) != 0 }
            #expect(read.count == leaves.subtracting(held[which]).count, "only the new nodes are read")
            ledger.replace(block: blocks[which], word: word, read: read.map(record(ofLeaf:))[...], counting: false)
            held[which] = leaves
            let census = ledger.census(state: { _ in .alive })
            let all = held.flatMap { $0 }
            for pid: Int32 in 1...5 {
                let mine = all.filter { 1 + $0 % 5 == Int(pid) }
                let owner = census.owners.first { $0.pid == pid }
                #expect(owner?.allocations ?? 0 == mine.count)
                #expect(owner?.requestedBytes ?? 0 == mine.reduce(0) { $0 + 1 + $1 % 24 })
                for (index, block) in blocks.enumerated() {
                    #expect(ledger.owns(block: block, pid: pid) == held[index].contains { 1 + $0 % 5 == Int(pid) })
                }
            }
        }
        // Left after shrinking: a few records, in the run of the block's longest.
        let left = 3
        var random = SplitMix64(seed: 0x5B111)
        for round in 0..<6 {
            let which = round % 2
            // Grows one allocation at a time to every leaf, its records moving to longer runs...
            for leaf in (0..<tree.leafCount).shuffled(using: &random) { bringUp(which, to: held[which].union([leaf])) }
            // ...and shrinks again, the records of the nodes left moving down their run.
            for leaf in held[which].shuffled(using: &random).dropFirst(left) {
                bringUp(which, to: held[which].subtracting([leaf]))
            }
            #expect(held[which].count == left)
        }
        #expect(ledger.allocationCount == held.reduce(0) { $0 + $1.count })
    }

    @Test(
        "a block's records follow their nodes through holes filled from the run's end, reads again, runs grown by several lengths at once and emptied"
    )
    func recordsInPlace() {
        let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 2 << 20)
        let tree = geometry.tree
        var ledger = OwnerLedger(geometry: geometry)
        var random = SplitMix64(seed: 0x1A_9ACE)
        // Block 7's leaf allocations: leaf → its record (in flight until read again).
        var model: [Int: OwnerLedger.NodeRecord] = [:]
        func record(_ leaf: Int) -> OwnerLedger.NodeRecord {
            guard Int.random(in: 0..<5, using: &random) > 0 else { return .init(.inFlight) }
            let size = Int.random(in: 1...24, using: &random)
            return .init(.counted(AllocationHeader(ownerPID: Int32(1 + leaf % 3), requestedSize: size, order: 0)))
        }
        for round in 0..<300 {
            // Now and then emptied, or filled from few records to many in one update.
            switch round % 50 {
            case 0: model = [:]
            case 1:
                for leaf in 0..<tree.leafCount where model[leaf] == nil && Bool.random(using: &random) {
                    model[leaf] = record(leaf)
                }
            default:
                // Distinct leaves: one freed and allocated again between two readings is not seen.
                let count = Int.random(in: 1...3, using: &random)
                for leaf in (0..<tree.leafCount).shuffled(using: &random).prefix(count) {
                    model[leaf] = model[leaf] == nil ? record(leaf) : nil
                }
            }
            let word = model.keys.reduce(UInt64(0)) { $0 | tree.setMask(ofNode: tree.node(order: 0, firstLeaf: $1)) }
            let toRead = ledger.plan(block: 7, word: word).nodesToRead
            var read: [OwnerLedger.NodeRecord] = []
            for leaf in model.keys.sorted() where toRead & (1 << UInt64(tree.node(order: 0, firstLeaf: leaf))) != 0 {
                if model[leaf]!.isUnsettled { model[leaf] = record(leaf) }
                read.append(model[leaf]!)
            }
            ledger.replace(block: 7, word: word, read: read[...], counting: true)
            let (page, index) = ledger.storage.page(of: 7)
            let held =
                page.pointee.isEmpty
                ? [:]
                : page.pointee.withRecords(of: index) { records in
                    Dictionary(uniqueKeysWithValues: records.map { ($0.node, $0) })
                }
            let expected = Dictionary(
                uniqueKeysWithValues: model.map {
                    let node = tree.node(order: 0, firstLeaf: $0.key)
                    return (node, $0.value.placed(at: node))
                })
            #expect(held == expected, "round \(round)")
            let census = ledger.census(state: { _ in .alive })
            #expect(census.inFlightHeaders == model.values.count { $0.isUnsettled }, "round \(round)")
            #expect(census.requestedBytes == model.values.reduce(0) { $0 + ($1.isUnsettled ? 0 : $1.requestedSize) })
        }
    }

    @Test("a node read in flight is read again at the next update and then counted, once")
    func inFlightNodeSettles() {
        let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 2 << 20)
        let tree = geometry.tree
        var ledger = OwnerLedger(geometry: geometry)
        let settledNode = tree.node(order: 2, position: 0)
        let claimedNode = tree.node(order: 0, position: 8)
        let word = tree.setMask(ofNode: settledNode) | tree.setMask(ofNode: claimedNode)
        let settledBit = UInt64(1) << UInt64(settledNode)
        let claimedBit = UInt64(1) << UInt64(claimedNode)
        let counted = OwnerLedger.NodeRecord(.counted(AllocationHeader(ownerPID: 7, requestedSize: 100, order: 2)))
        #expect(ledger.plan(block: 5, word: word).nodesToRead == settledBit | claimedBit)
        ledger.replace(block: 5, word: word, read: [counted, OwnerLedger.NodeRecord(.inFlight)][...], counting: true)
        #expect(ledger.unsettledBlocks == [5])
        #expect(ledger.census(state: { _ in .alive }).inFlightHeaders == 1)
        // The word holds still: only the node in flight is read again, the settled one is kept.
        #expect(ledger.plan(block: 5, word: word).nodesToRead == claimedBit)
        let written = OwnerLedger.NodeRecord(.counted(AllocationHeader(ownerPID: 7, requestedSize: 20, order: 0)))
        ledger.replace(block: 5, word: word, read: [written][...], counting: true)
        #expect(ledger.unsettledBlocks.isEmpty)
        #expect(ledger.plan(block: 5, word: word).nodesToRead == 0)
        let census = ledger.census(state: { _ in .alive })
        #expect(census.inFlightHeaders == 0)
        #expect(census.owners.map(\.pid) == [7])
        #expect(census.owners.first?.allocations == 2)
        #expect(census.owners.first?.bytes == 128 + 32)
        #expect(census.requestedBytes == 120)
        // The settled node was allocated as the words show it; the claimed one was first seen in
        // flight, so neither reading counts it as an allocation (the rates' lower bound).
        #expect(ledger.takeActivity().counts[7].map { $0.allocations } == 1)
        #expect(ledger.owns(block: 5, pid: 7))
        ledger.replace(block: 5, word: 0, read: ArraySlice<OwnerLedger.NodeRecord>(), counting: true)
        #expect(ledger.takeActivity().counts[7].map { $0.frees } == 2)
        #expect(ledger.allocationCount == 0)
        #expect(!ledger.owns(block: 5, pid: 7))
    }

    @Test(
        "random allocations of every order, updated in batches: the figures equal a ledger built afresh, and a copy keeps its own"
    )
    func batchUpdatesMatchFreshLedger() {
        let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 2 << 20)
        let tree = geometry.tree
        var random = SplitMix64(seed: 0xB47C4)
        // Each block's allocations: node → its record (in flight until read again, as the
        // inspector reads a header being written).
        var model = [[Int: OwnerLedger.NodeRecord]](repeating: [:], count: geometry.blockCount)
        func word(of block: Int) -> UInt64 { model[block].keys.reduce(0) { $0 | tree.setMask(ofNode: $1) } }
        /// A record for `node`: mostly a header of one of four owners, sometimes one in flight.
        func freshRecord(_ node: Int) -> OwnerLedger.NodeRecord {
            guard Int.random(in: 0..<10, using: &random) > 0 else { return .init(.inFlight) }
            let order = tree.order(ofNode: node)
            let header = AllocationHeader(
                ownerPID: Int32.random(in: 1...4, using: &random),
                requestedSize: Int.random(in: 1...(geometry.nodeSize(ofOrder: order) - 8), using: &random), order: order
            )
            return .init(.counted(header))
        }
        /// The block's allocations changed at random: some freed, nodes of random orders claimed
        /// (not one just freed: a node freed and claimed again between two readings is not seen).
        func change(_ block: Int) {
            let freed = model[block].keys.sorted().filter { _ in Bool.random(using: &random) }
            for node in freed { model[block][node] = nil }
            var taken = word(of: block)
            for _ in 0..<Int.random(in: 0...6, using: &random) {
                let order = Int.random(in: 0...tree.depth, using: &random)
                let node = tree.node(
                    order: order, position: Int.random(in: 0..<(tree.leafCount >> order), using: &random))
                guard tree.isFree(taken, node: node), !freed.contains(node) else { continue }
                taken |= tree.setMask(ofNode: node)
                model[block][node] = freshRecord(node)
            }
        }
        /// The batch the inspector hands the ledger: each block's nodes to read and their records,
        /// a node in flight read again (and then found written).
        func update(_ ledger: inout OwnerLedger, blocks: [Int], counting: Bool) {
            var plans: [OwnerLedger.BlockPlan] = []
            var records: [OwnerLedger.NodeRecord] = []
            for block in blocks {
                let plan = ledger.plan(block: block, word: word(of: block))
                plans.append(plan)
                for node in model[block].keys.sorted() where plan.nodesToRead & (1 << UInt64(node)) != 0 {
                    if model[block][node]!.isUnsettled, counting { model[block][node] = freshRecord(node) }
                    records.append(model[block][node]!)
                }
            }
            ledger.replace(blocks: blocks, plans: plans[...], records: records[...], counting: counting)
        }
        /// A ledger that read every allocation of the model once.
        func freshLedger() -> OwnerLedger {
            var fresh = OwnerLedger(geometry: geometry)
            update(&fresh, blocks: model.indices.filter { !model[$0].isEmpty }, counting: false)
            return fresh
        }
        var ledger = OwnerLedger(geometry: geometry)
        var copy: (ledger: OwnerLedger, census: AllocationCensus, owned: [Bool])?
        var updatesWithNodesInFlight = 0
        for step in 0..<400 {
            // Neighbours and far blocks of both pages, ascending, and those read in flight last time.
            let changed = Set(
                (0..<Int.random(in: 1...40, using: &random)).map { _ in
                    Int.random(in: 0..<geometry.blockCount, using: &random)
                })
            for block in changed.sorted() { change(block) }
            update(&ledger, blocks: changed.union(ledger.unsettledBlocks).sorted(), counting: true)
            if !ledger.unsettledBlocks.isEmpty { updatesWithNodesInFlight += 1 }
            if step == 200 {
                copy = (
                    ledger, ledger.census(state: { _ in .alive }),
                    (0..<geometry.blockCount).map { ledger.owns(block: $0, pid: 2) }
                )
            }
        }
        let expected = freshLedger().census(state: { _ in .alive })
        let census = ledger.census(state: { _ in .alive })
        #expect(census.owners.count == 4)
        #expect(updatesWithNodesInFlight > 100)
        #expect(census == expected)
        #expect(ledger.allocationCount == model.reduce(0) { $0 + $1.count })
        #expect(
            model.indices.first { ledger.owns(block: $0, pid: 3) != model[$0].values.contains { $0.isCounted(for: 3) } }
                == nil)
        // The copy taken midway shares nothing the ledger changed since.
        let kept = try! #require(copy)
        #expect(kept.ledger.census(state: { _ in .alive }) == kept.census)
        #expect((0..<geometry.blockCount).first { kept.ledger.owns(block: $0, pid: 2) != kept.owned[$0] } == nil)
        #expect(kept.census != census)
    }

    @Test("rates count the nodes that appeared and disappeared, and their bytes, as a walk of every allocation does")
    func ratesMatchModel() {
        let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 2 << 20)
        let tree = geometry.tree
        var random = SplitMix64(seed: 0x7A7E5)
        /// A word of allocations of one random order at random positions.
        func randomWord() -> UInt64 {
            let order = Int.random(in: 0...tree.depth, using: &random)
            return (0..<(tree.leafCount >> order)).reduce(UInt64(0)) { word, position in
                let node = tree.node(order: order, position: position)
                return Bool.random(using: &random) ? word | tree.setMask(ofNode: node) : word
            }
        }
        let earlier = (0..<2000).map { _ in randomWord() }
        let later = earlier.map { Int.random(in: 0..<4, using: &random) == 0 ? $0 : randomWord() }
        var allocations = 0
        var frees = 0
        var allocatedBytes = 0
        var freedBytes = 0
        for (before, after) in zip(earlier, later) {
            geometry.forEachAllocation(inWord: after, ofBlock: 0) { found in
                guard tree.allocations(before) & (1 << UInt64(found.node)) == 0 else { return }
                allocations += 1
                allocatedBytes += geometry.nodeSize(ofOrder: found.order)
            }
            geometry.forEachAllocation(inWord: before, ofBlock: 0) { found in
                guard tree.allocations(after) & (1 << UInt64(found.node)) == 0 else { return }
                frees += 1
                freedBytes += geometry.nodeSize(ofOrder: found.order)
            }
        }
        let rates = SnapshotRates(
            seconds: 1, figures: ChangedBlockFigures(earlierWords: earlier, laterWords: later, tree: tree),
            geometry: geometry)
        #expect(allocations > 0 && frees > 0)
        #expect(rates.allocations == allocations)
        #expect(rates.frees == frees)
        #expect(rates.allocatedBytes == allocatedBytes)
        #expect(rates.freedBytes == freedBytes)
    }
}
