// Hostile files the inspector must take in its stride: valid words over garbage allocation headers,
// and a file that grows while attached (RobustnessTests covers the shrinking one).

import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmTestSupport
import ShmWorkloads
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension RobustnessTests {
    /// A small cache file holding three allocations of a finished owner, and an inspector attached to it.
    static func attachedSmallCache(_ name: String) throws -> (TemporaryFile, CacheInspector) {
        let file = TemporaryFile(name)
        do {
            let cache = try file.createCache(smallGeometry)
            for size in [10, 200, 900] { _ = try cache.allocate(size) }
        }
        return (file, try CacheInspector(path: file.path))
    }

    @Test("valid words, garbage allocation headers: every allocation counted, none attributed, no crash")
    func garbageAllocationHeaders() throws {
        let file = TemporaryFile("garbageheaders")
        defer { file.remove() }
        let sizes = [1, 8, 24, 25, 56, 100, 200, 500, 1000, 1016, 7, 300]
        var blocks: Set<Int> = []
        do {
            let cache = try file.createCache(smallGeometry)
            var random = SplitMix64(seed: 0x5EED_0004)
            for (index, size) in sizes.enumerated() {
                let offset = try cache.allocate(size)
                blocks.insert(Int(offset.rawValue) / smallGeometry.blockSize)
                let header = cache.pointer(to: offset)! - AllocationHeader.size
                let original = AllocationHeader(rawValue: header.load(as: UInt64.self))!
                // Every kind of bad header: zeros, ones, random bits with a wrong check byte, and
                // well-formed headers that claim another order or more bytes than the node holds.
                let garbage: UInt64 =
                    switch index % 5 {
                    case 0: 0
                    case 1: ~0
                    case 2:
                        {
                            var raw = random.next() as UInt64
                            while AllocationHeader(rawValue: raw) != nil { raw = random.next() }
                            return raw
                        }()
                    case 3:
                        AllocationHeader(
                            ownerPID: 1, requestedSize: 0, order: (original.order + 1) % smallGeometry.orderCount
                        ).rawValue
                    default:
                        AllocationHeader(
                            ownerPID: getpid(), requestedSize: smallGeometry.nodeSize(ofOrder: original.order),
                            order: original.order
                        ).rawValue
                    }
                header.storeBytes(of: garbage, as: UInt64.self)
                // And the allocation's bytes are garbage too.
                for byte in 0..<size {
                    cache.pointer(to: offset)!.storeBytes(
                        of: UInt8.random(in: 0...255), toByteOffset: byte, as: UInt8.self)
                }
            }
        }

        let inspector = try CacheInspector(path: file.path)
        let snapshot = try inspector.snapshot()
        let statistics = CacheStatistics(snapshot)
        #expect(statistics.invalidWords == 0)
        #expect(statistics.liveAllocations == sizes.count, "the words still say where the allocations are")
        #expect(statistics.allocatedBytes == sizes.map { nodeSize($0) }.reduce(0, +))
        #expect(statistics.unreadableHeaders == sizes.count)
        #expect(statistics.owners == [], "no garbage header is attributed to anyone")
        #expect(statistics.requestedBytes == 0)
        #expect(statistics.leakedBytes == 0)
        for block in blocks {
            let detail = try inspector.blockDetail(block)
            #expect(detail.isValid)
            #expect(!detail.allocations.isEmpty && detail.allocations.allSatisfy { $0.header == nil })
        }

        let json = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", file.path])
        #expect(json.termination == .exited(0), "\(json.error)")
        let report = try JSONDecoder().decode(SnapshotReport.self, from: Data(json.output.utf8))
        #expect(
            report.unreadableHeaders == sizes.count && report.invalidWords == 0 && report.liveAllocations == sizes.count
        )
        let text = try runToEnd(
            BuiltProducts.shmtop, ["snapshot", "--ascii", file.path] + blocks.flatMap { ["--block", "\($0)"] })
        #expect(text.termination == .exited(0), "\(text.error)")
        #expect(text.output.contains("unreadable headers \(sizes.count)"))
    }

    @Test(
        "a node claimed again by a writer killed before it wrote its header is not attributed to the node's previous owner"
    )
    func claimWithoutHeader() throws {
        let file = TemporaryFile("staleheader")
        defer { file.remove() }
        let cache = try file.createCache(smallGeometry)
        _ = try cache.allocate(100)  // a live allocation of ours, for contrast
        let offset = try cache.allocate(200)
        let block = Int(offset.rawValue) / smallGeometry.blockSize
        let claimed = cache.word(ofBlock: block)
        try cache.free(offset)
        // What a writer killed between its claim (the CAS on the word) and its header write leaves:
        // the node set in the word, over the header the free left behind. (Found by the crash soak:
        // the previous owner's header there made the inspector count the node as that owner's.)
        (cache.fileBase + cache.layout.wordsOffset + block * 8).storeBytes(of: claimed.littleEndian, as: UInt64.self)
        let statistics = CacheStatistics(try CacheInspector(path: file.path).snapshot())
        #expect(statistics.liveAllocations == 2)
        #expect(statistics.unreadableHeaders == 1, "the claimer is unknown")
        #expect(statistics.owners?.map(\.allocations) == [1], "only the 100-byte allocation is ours")
        #expect(statistics.owners?.first?.bytes == nodeSize(100))
        let detail = try CacheInspector(path: file.path).blockDetail(block)
        #expect(detail.allocations.first { $0.offset == Int(offset.rawValue) }?.header == nil)
    }

    @Test(
        "a file that grows while attached: snapshots go on; it shrinks back to its size: still fine; a new attach refuses the grown file"
    )
    func fileGrowsWhileAttached() throws {
        let (file, inspector) = try Self.attachedSmallCache("growing")
        defer { file.remove() }
        let layout = inspector.layout
        let before = try inspector.snapshot()
        for grown in [layout.fileSize + 1, layout.fileSize + 4096, layout.fileSize * 3] {
            #expect(truncate(file.path, off_t(grown)) == 0)
            let snapshot = try inspector.snapshot()
            #expect(snapshot.words == before.words)
            #expect(CacheStatistics(snapshot).liveAllocations == 3)
            #expect(
                throws: InspectError.format(
                    path: file.path, .fileSizeMismatch(actual: grown, expected: layout.fileSize))
            ) {
                try CacheInspector(path: file.path)
            }
            let result = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", file.path])
            #expect(result.termination == .exited(1))
            #expect(result.error.contains("file is \(grown) bytes, but its header describes \(layout.fileSize) bytes"))
        }
        #expect(truncate(file.path, off_t(layout.fileSize)) == 0)
        #expect(try inspector.snapshot().words == before.words)
        #expect((try? CacheInspector(path: file.path)) != nil)
    }
}
