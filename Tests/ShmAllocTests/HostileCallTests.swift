// The hostile calls of the hardening issue that BadCallTests did not cover yet: `malloc(0)`, and a
// free whose offset names a well-formed allocation header in the wrong block.

import Foundation
import ShmAlloc
import ShmFormat
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension BadCallTests {
    @Test("a request of 0 bytes gets its own minimum-size allocation, freeable once, and changes no other")
    func zeroBytes() throws {
        let populated = try PopulatedCache()
        let before = populated.snapshot()
        let wordsBefore = before.words
        let zero = try populated.cache.allocate(0)
        let other = try populated.cache.allocate(0)
        #expect(zero != other, "two zero-byte requests are two allocations")
        #expect(!populated.live.contains { $0.offset == zero || $0.offset == other })
        let header = AllocationHeader(
            rawValue: (populated.cache.pointer(to: zero)! - AllocationHeader.size).load(as: UInt64.self))
        #expect(header?.requestedSize == 0 && header?.order == 0)
        try populated.cache.free(zero)
        try populated.cache.free(other)
        #expect(populated.snapshot() == before, "the other allocations and every word are as they were")
        #expect(populated.cache.allWords == wordsBefore)
        populated.expectRefused(
            FreeError.notAllocated(zero), message: "free of \(zero): not allocated (double free?)",
            countsAsInvalidFree: true
        ) { () throws(FreeError) in try populated.cache.free(zero) }
        let zeroed = try populated.cache.allocateZeroed(count: 0, size: 100)
        try populated.cache.free(zeroed)
        #expect(populated.snapshot() == before)
    }

    @Test("an offset in another block: a live allocation's header copied to the same place in an empty block")
    func offsetInAnotherBlock() throws {
        let populated = try PopulatedCache()
        let cache = populated.cache
        let blockSize = cache.geometry.blockSize
        let emptyBlock = try #require(cache.allWords.indices.last { cache.word(ofBlock: $0) == 0 })
        for allocation in populated.live {
            // The same position inside an empty block, with the allocation's own (valid) header.
            let positionInBlock = Int(allocation.offset.rawValue) % blockSize
            let elsewhere = ShmOffset(rawValue: UInt64(emptyBlock * blockSize + positionInBlock))
            let header = (cache.pointer(to: allocation.offset)! - AllocationHeader.size).load(as: UInt64.self)
            (cache.pointer(to: elsewhere)! - AllocationHeader.size).storeBytes(of: header, as: UInt64.self)
            populated.expectRefused(
                FreeError.notAllocated(elsewhere), message: "free of \(elsewhere): not allocated (double free?)",
                countsAsInvalidFree: true
            ) { () throws(FreeError) in try cache.free(elsewhere) }
            (cache.pointer(to: elsewhere)! - AllocationHeader.size).storeBytes(of: 0, as: UInt64.self)
        }
        // And a live block other than the allocation's own: every other allocation's block.
        for (index, allocation) in populated.live.enumerated() {
            let positionInBlock = Int(allocation.offset.rawValue) % blockSize
            for other in populated.live.indices where other != index {
                let otherBlock = Int(populated.live[other].offset.rawValue) / blockSize
                guard otherBlock != Int(allocation.offset.rawValue) / blockSize else { continue }
                let elsewhere = ShmOffset(rawValue: UInt64(otherBlock * blockSize + positionInBlock))
                // The same position may start the other block's own allocation: a valid free, not this case.
                guard !populated.live.contains(where: { $0.offset == elsewhere }) else { continue }
                let before = populated.snapshot()
                let invalidBefore = cache.invalidFrees
                #expect(throws: FreeError.self) { try cache.free(elsewhere) }
                #expect(populated.snapshot().words == before.words, "no word changed")
                #expect(cache.invalidFrees == invalidBefore + 1)
            }
        }
    }
}
