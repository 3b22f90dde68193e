// The owner ledger's page layout under heavy churn of one page's blocks: blocks growing and
// shrinking move their records to longer runs and the page is packed again, and what the ledger
// says still matches a plain model of every block's owners.

import ShmFormat
@testable import ShmInspect
import Testing
import ShmWorkloads

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
        var allocated: [Int32: Int] = [:], freed: [Int32: Int] = [:]
        for step in 0..<30_000 {
            let block = Int.random(in: 0..<geometry.blockCount, using: &random)
            // Emptied often, so that runs are given up and pages packed.
            let count = Int.random(in: 0..<4, using: &random) == 0 ? 0 : Int.random(in: 1...tree.leafCount, using: &random)
            let nodes = (0..<count).map { tree.node(order: 0, firstLeaf: $0) }
            let word = nodes.reduce(UInt64(0)) { $0 | tree.setMask(ofNode: $1) }
            let toRead = ledger.nodesToRead(block: block, word: word)
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
                read.append(OwnerLedger.NodeRecord(.counted(AllocationHeader(ownerPID: pid, requestedSize: 8, order: 0))))
            }
            for pid in model[block].dropFirst(count) { freed[pid, default: 0] += 1 }
            ledger.replace(block: block, word: word, read: read[...], counting: true)
            model[block] = owners
            if step % 5000 == 4999 {
                let activity = ledger.takeActivity()
                for pid: Int32 in 1...3 {
                    #expect(activity.counts[pid].map { $0.allocations } ?? 0 == allocated[pid, default: 0], "step \(step)")
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
}
