// A header decoded straight to its ledger record, without the census reading on the way: the
// same record for every plausible header, and no record for one the reading would not count.

import ShmFormat
import ShmWorkloads
import Testing

@testable import ShmInspect

@Suite("Owner ledger records")
struct OwnerLedgerRecordTests {
    @Test("a plausible header's record is the one its census reading makes; any other header has none")
    func headerDecodedToRecord() {
        let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 2 << 20)
        var random = SplitMix64(seed: 0x4EC0D)
        func record(_ raw: UInt64, order: Int) -> OwnerLedger.NodeRecord? {
            OwnerLedger.NodeRecord.counted(rawHeader: raw, order: order, geometry: geometry)
        }
        for _ in 0..<2_000 {
            let order = Int.random(in: 0...geometry.tree.depth, using: &random)
            let largest = geometry.nodeSize(ofOrder: order) - AllocationHeader.size
            let header = AllocationHeader(
                ownerPID: Int32.random(in: 1...Int32.max, using: &random),
                requestedSize: Int.random(in: 0...largest, using: &random), order: order)
            #expect(record(header.rawValue, order: order) == OwnerLedger.NodeRecord(.counted(header)))
            // Read at a node of another order, released, too large for its node, or its check byte damaged.
            #expect(record(header.rawValue, order: (order + 1) % (geometry.tree.depth + 1)) == nil)
            #expect(record(header.released.rawValue, order: order) == nil)
            let oversized = AllocationHeader(ownerPID: header.ownerPID, requestedSize: largest + 1, order: order)
            #expect(record(oversized.rawValue, order: order) == nil)
            #expect(record(header.rawValue ^ (1 << UInt64.random(in: 56..<64, using: &random)), order: order) == nil)
        }
    }
}
