// Snapshots of caches with known contents: the JSON report, the text, block details and rates.

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

/// 32 B .. 1 KiB × 1024 blocks: small enough to check by hand.
let smallGeometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20)

/// The node size the allocator uses for a request.
func nodeSize(_ request: Int, _ geometry: Geometry = smallGeometry) -> Int {
    geometry.nodeSize(ofOrder: geometry.order(forRequest: request)!)
}

@Suite("Snapshots of known contents")
struct SnapshotTests {
    @Test("snapshot --json matches a known sequence, including a dead owner's leak")
    func jsonMatchesKnownSequence() throws {
        let file = TemporaryFile("known")
        defer { file.remove() }
        let cache = try file.createCache(smallGeometry)
        let mine = [1, 24, 25, 56, 100, 200, 500, 1000, 1016]
        for size in mine { _ = try cache.allocate(size) }
        let freed = try cache.allocate(77)
        try cache.free(freed)

        // A child allocates and exits without freeing: its allocations are leaked.
        let theirs = [10, 300, 700]
        let fixture = try runToEnd(BuiltProducts.fixture, [file.path] + theirs.map(String.init))
        #expect(fixture.termination == .exited(0), "\(fixture.error)")
        let fixtureOffsets = fixture.output.split(separator: "\n").compactMap { Int($0) }
        #expect(fixtureOffsets.count == theirs.count)

        let result = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", file.path])
        #expect(result.termination == .exited(0), "\(result.error)")
        let report = try JSONDecoder().decode(SnapshotReport.self, from: Data(result.output.utf8))

        let all = mine + theirs
        let layout = cache.layout
        #expect(report.formatVersion == FileHeader.formatVersion)
        let geometry = SnapshotReport.GeometryReport(
            minSize: 32, maxSize: 1024, blockCount: 1024, capacity: 1 << 20, pageSize: layout.pageSize)
        #expect(report.geometry == geometry)
        #expect(report.liveAllocations == all.count)
        #expect(report.allocatedBytes == all.map { nodeSize($0) }.reduce(0, +))
        #expect(report.requestedBytes == all.reduce(0, +))
        #expect(report.internalFragmentationBytes == report.allocatedBytes - all.reduce(0, +))
        #expect(report.reservedBytes == layout.reservedBytes)
        #expect(report.managedBytes == layout.fileSize)
        #expect(report.allocatedBytes + report.freeBytes + report.reservedBytes == report.managedBytes)
        #expect(report.invalidWords == 0)
        #expect(report.unreadableHeaders == 0)

        for order in 0..<smallGeometry.orderCount {
            let size = smallGeometry.nodeSize(ofOrder: order)
            let inClass = all.filter { nodeSize($0) == size }
            let expected = SnapshotReport.SizeClassReport(
                count: inClass.count, bytes: inClass.count * size, requestedBytes: inClass.reduce(0, +))
            #expect(report.allocationsBySize[String(size)] == expected)
        }
        let me = OwnerSummary(pid: getpid(), alive: true, sizes: mine)
        let child = OwnerSummary(
            pid: try #require(report.owners?.first { $0.pid != getpid() }).pid, alive: false, sizes: theirs)
        #expect(report.owners?.map(OwnerSummary.init) == [me, child].sorted { $0.bytes > $1.bytes })
        #expect(report.leakedBytes == theirs.map { nodeSize($0) }.reduce(0, +))

        let usableBlocks = smallGeometry.blockCount - layout.nullBlockCount
        #expect(report.blocks.null == layout.nullBlockCount)
        #expect(report.blocks.empty + report.blocks.partial + report.blocks.full == usableBlocks)
        #expect(report.blocksByLargestFreeChunk.values.reduce(0, +) == usableBlocks - report.blocks.full)
        // Free chunks add up to the free bytes.
        #expect(report.freeChunksBySize.map { Int($0.key)! * $0.value }.reduce(0, +) == report.freeBytes)
        #expect(report.largestFreeChunk == 1024)
        #expect(report.fragmentationIndex["1024"] == .some(nil), "a 1 KiB request would succeed: no index")
    }

    @Test("statistics of an empty cache: everything free, every block empty, indices at their floor")
    func emptyCache() throws {
        let file = TemporaryFile("empty")
        defer { file.remove() }
        _ = try file.createCache(smallGeometry)
        let snapshot = try CacheInspector(path: file.path).snapshot()
        let statistics = CacheStatistics(snapshot)
        let usable = smallGeometry.blockCount - snapshot.layout.nullBlockCount
        #expect(statistics.allocatedBytes == 0)
        #expect(statistics.freeBytes == usable * 1024)
        #expect(
            statistics.blocks
                == CacheStatistics.BlockCounts(empty: usable, partial: 0, full: 0, null: snapshot.layout.nullBlockCount)
        )
        #expect(statistics.sizeClasses.map(\.freeChunks) == [0, 0, 0, 0, 0, usable])
        #expect(statistics.sizeClasses.map(\.unusableFreeIndex) == [0, 0, 0, 0, 0, 0])
        #expect(statistics.sizeClasses.map(\.failingFragmentationIndex) == [nil, nil, nil, nil, nil, nil])
        #expect(statistics.externalFragmentation == 0)
        #expect(statistics.sizeClasses.map(\.fits) == [32, 16, 8, 4, 2, 1].map { $0 * usable })
        #expect(statistics.owners == [])
        #expect(statistics.requestedBytes == 0)
    }

    @Test(
        "shattered free space: every other 32 B node free, a few whole blocks; fragmentation and fits against the words"
    )
    func shatteredFreeSpace() throws {
        let file = TemporaryFile("shattered")
        defer { file.remove() }
        let cache = try file.createCache(smallGeometry)
        var held: [ShmOffset] = []
        while let offset = try? cache.allocate(24) { held.append(offset) }
        #expect(nodeSize(24) == 32)
        let usable = smallGeometry.blockCount - cache.layout.nullBlockCount
        #expect(held.count == usable * 32, "every leaf of every usable block taken")
        // Every other leaf by address, then the rest of the first few blocks: whole free blocks.
        held.sort { $0.rawValue < $1.rawValue }
        let wholeBlocks = 10
        for (index, offset) in held.enumerated() where index % 2 == 0 || index < wholeBlocks * 32 {
            try cache.free(offset)
        }

        let snapshot = try CacheInspector(path: file.path).snapshot()
        let statistics = CacheStatistics(snapshot)
        let words = Array(snapshot.words[snapshot.usableBlocks])
        let depth = smallGeometry.tree.depth
        let bruteFits = (0...depth).map { order in
            words.reduce(0) { $0 + requestsThatFit($1, depth: depth, order: order) }
        }
        let freeLeaves = words.reduce(0) { total, word in
            total + (0..<(1 << depth)).filter { word >> UInt64((1 << depth) + $0) & 1 == 0 }.count
        }
        let wholeFree = words.filter { requestsThatFit($0, depth: depth, order: depth) == 1 }.count
        #expect(statistics.sizeClasses.map(\.fits) == bruteFits)
        #expect(statistics.freeBytes == freeLeaves * 32)
        #expect(statistics.externalFragmentation == 1 - Double(wholeFree * 1024) / Double(freeLeaves * 32))
        // The same figures by hand: the shattered blocks offer 16 single leaves each and nothing larger.
        let shattered = usable - wholeBlocks
        #expect(
            bruteFits == [
                shattered * 16 + wholeBlocks * 32, wholeBlocks * 16, wholeBlocks * 8, wholeBlocks * 4, wholeBlocks * 2,
                wholeBlocks,
            ])
        #expect(
            statistics.externalFragmentation == Double(shattered * 512) / Double(shattered * 512 + wholeBlocks * 1024))
        #expect(
            statistics.sizeClasses.map { $0.failingFragmentationIndex == nil } == [true, true, true, true, true, true])

        let result = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", file.path])
        #expect(result.termination == .exited(0), "\(result.error)")
        let report = try JSONDecoder().decode(SnapshotReport.self, from: Data(result.output.utf8))
        #expect(report.externalFragmentation == statistics.externalFragmentation)
        #expect(report.fitsPerSizeClass.map(\.count) == bruteFits)
        #expect(report.fitsPerSizeClass.map(\.size) == [32, 64, 128, 256, 512, 1024])
        let text = SnapshotText(ascii: true).sizeClasses(statistics)
        #expect(text.contains("requests that fit"))
    }

    @Test("snapshot --json --block: the block's word and the fixture's allocations; the heatmap has the text's cells")
    func jsonBlockDetailsAndHeatmap() throws {
        let file = TemporaryFile("json-block")
        defer { file.remove() }
        let nullBlocks = try file.createCache(smallGeometry).layout.nullBlockCount
        let sizes = [10, 100, 300]
        let fixture = try runToEnd(BuiltProducts.fixture, [file.path] + sizes.map(String.init))
        #expect(fixture.termination == .exited(0), "\(fixture.error)")
        let offsets = fixture.output.split(separator: "\n").compactMap { Int($0) }
        let block = try #require(offsets.first) / smallGeometry.blockSize
        let inBlock = zip(offsets, sizes).filter { $0.0 / smallGeometry.blockSize == block }.sorted { $0.0 < $1.0 }

        let result = try runToEnd(
            BuiltProducts.shmtop,
            ["snapshot", "--json", "--width", "32", "--block", "\(block)", "--block", "0", file.path])
        #expect(result.termination == .exited(0), "\(result.error)")
        let report = try JSONDecoder().decode(SnapshotReport.self, from: Data(result.output.utf8))
        #expect(report.blockDetails.map(\.block) == [block, 0])
        let detail = try #require(report.blockDetails.first)
        #expect(detail.allocations.map(\.offset) == inBlock.map(\.0))
        #expect(detail.allocations.map(\.requestedBytes) == inBlock.map(\.1))
        #expect(detail.allocations.map(\.nodeSize) == inBlock.map { nodeSize($0.1) })
        #expect(
            detail.allocations.allSatisfy { $0.ownerState == .dead && $0.ownerPid != nil && $0.ownerPid != getpid() })
        #expect(detail.word != "0x0")
        let blockWord = try CacheInspector(path: file.path).blockDetail(block).word
        #expect(detail.word == "0x" + String(blockWord, radix: 16))
        #expect(report.blockDetails[1].allocations.map(\.nodeSize) == [1024], "the null region: one taken block")
        #expect(report.blockDetails[1].allocations.map(\.requestedBytes) == [nil], "… without a header")

        // 1024 blocks in at most 32 × 16 cells, as the text draws them.
        let text = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--ascii", "--width", "32", file.path])
        #expect(text.output.contains("Heatmap: \(report.heatmap.count) cells"))
        #expect(report.heatmap.count == 512)
        // Two blocks per cell: the cells with a fill are those of the null region and the fixture's blocks.
        let fixtureCells = Set(offsets.map { $0 / smallGeometry.blockSize / 2 } + (0..<nullBlocks).map { $0 / 2 })
        #expect(report.heatmap.indices.filter { report.heatmap[$0] > 0 } == fixtureCells.sorted())
    }

    @Test("a full cache: no free bytes, every usable block full, allocations fail")
    func fullCache() throws {
        let file = TemporaryFile("full")
        defer { file.remove() }
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 64 << 10)
        let cache = try file.createCache(geometry)
        var count = 0
        while (try? cache.allocate(20)) != nil { count += 1 }
        let statistics = CacheStatistics(try CacheInspector(path: file.path).snapshot())
        #expect(statistics.freeBytes == 0)
        #expect(statistics.liveAllocations == count)
        #expect(statistics.sizeClasses[0].allocations == count)
        #expect(statistics.blocks.full == geometry.blockCount - cache.layout.nullBlockCount)
        #expect(statistics.largestFreeChunk == 0)
        #expect(statistics.externalFragmentation == 0)
        #expect(statistics.failedAllocations == 1)
    }

    @Test("block detail: node states per level, allocations with header fields and first bytes")
    func blockDetail() throws {
        let file = TemporaryFile("detail")
        defer { file.remove() }
        let cache = try file.createCache(smallGeometry)
        let text = Array("/usr/lib/x86_64-linux-gnu/libc.so.6".utf8)
        let offset = try cache.allocate(text.count)
        text.withUnsafeBytes { cache.pointer(to: offset)!.copyMemory(from: $0.baseAddress!, byteCount: text.count) }
        let block = Int(offset.rawValue) / smallGeometry.blockSize

        let detail = try CacheInspector(path: file.path).blockDetail(block)
        #expect(detail.isValid)
        #expect(detail.levels.count == smallGeometry.orderCount)
        #expect(detail.levels.enumerated().allSatisfy { $0.element.count == 1 << $0.offset })
        let allocation = try #require(detail.allocations.first)
        #expect(detail.allocations.count == 1)
        #expect(allocation.offset == Int(offset.rawValue))
        #expect(allocation.nodeSize == nodeSize(text.count))
        #expect(
            allocation.header
                == AllocationHeader(ownerPID: getpid(), requestedSize: text.count, order: allocation.order))
        #expect(allocation.ownerAlive == true)
        #expect(allocation.firstBytes == Array(text.prefix(BlockDetail.defaultPreviewLength)))
        let states = detail.levels.flatMap { $0 }
        #expect(states.filter { $0 == .allocation }.count == 1)
        #expect(!states.contains(.invalid))

        let rendered = SnapshotText(ascii: true).tree(detail)
        #expect(rendered.contains("/usr/lib/x86_64-linux-gn"))
        #expect(
            rendered.split(separator: "\n").filter { $0.contains("|") && $0.contains(" B ") || $0.contains("KiB |") }
                .count == smallGeometry.orderCount)
    }

    @Test(
        "free-space index: a new cache lists every block as empty; at rest every block is findable",
        .timeLimit(.minutes(1)))
    func freeIndex() throws {
        let file = TemporaryFile("index")
        defer { file.remove() }
        let cache = try file.createCache(smallGeometry)
        let inspector = try CacheInspector(path: file.path)
        let usable = smallGeometry.blockCount - cache.layout.nullBlockCount
        let fresh = try #require(FreeIndexStatistics(try inspector.snapshot()))
        #expect(fresh.listedByOrder == [0, 0, 0, 0, 0, usable])
        #expect(fresh.actualByOrder == [0, 0, 0, 0, 0, usable])
        #expect(fresh.staleListings == 0 && fresh.missingListings == 0)

        var random = SplitMix64(seed: 0x5EED_0003)
        // Fill until the first failure, then free half at random: every class gets blocks. Repeated,
        // since the orders of allocations and frees are random.
        for _ in 0..<20 { try fillAndHalve(cache, inspector: inspector, usable: usable, using: &random) }
    }

    func fillAndHalve(
        _ cache: SharedCache, inspector: CacheInspector, usable: Int, using random: inout some RandomNumberGenerator
    ) throws {
        var held: [ShmOffset] = []
        while let offset = try? cache.allocate(Int.random(in: 1...1016, using: &random)) { held.append(offset) }
        held.shuffle(using: &random)
        for offset in held.prefix(held.count / 2) { try cache.free(offset) }
        let snapshot = try inspector.snapshot()
        let index = try #require(FreeIndexStatistics(snapshot))
        #expect(index.missingListings == 0)
        #expect(index.actualByOrder.reduce(0, +) == usable - CacheStatistics(snapshot).blocks.full)
        let report = SnapshotReport(snapshot: snapshot, statistics: CacheStatistics(snapshot))
        #expect(report.freeIndex?.missingListings == 0)
        #expect(report.freeIndex?.listedBySize.count == smallGeometry.orderCount)

        // A block's detail names the classes it is listed under; one of them is at least its own.
        let block = Int(held.last!.rawValue) / smallGeometry.blockSize
        let detail = try inspector.blockDetail(block)
        if let largest = detail.census.largestFreeOrder { #expect(detail.advertisedOrders.contains { $0 >= largest }) }
        #expect(SnapshotText(ascii: true).tree(detail).contains("free-space index lists it under"))
        for offset in held.suffix(held.count - held.count / 2) { try cache.free(offset) }
    }

    @Test("rates between two snapshots count the nodes that appeared and disappeared")
    func rates() throws {
        let file = TemporaryFile("rates")
        defer { file.remove() }
        let cache = try file.createCache(smallGeometry)
        let old = try (0..<5).map { _ in try cache.allocate(100) }
        let inspector = try CacheInspector(path: file.path)
        let before = try inspector.snapshot(readingAllocations: false)
        // New ones first, so no freed node can be handed out again between the snapshots.
        for _ in 0..<10 { _ = try cache.allocate(500) }
        for offset in old.prefix(3) { try cache.free(offset) }
        let after = try inspector.snapshot(readingAllocations: false)
        let rates = SnapshotRates(from: before, to: after)
        #expect(rates.allocations == 10)
        #expect(rates.frees == 3)
        #expect(rates.allocatedBytes == 10 * 512)
        #expect(rates.freedBytes == 3 * 128)
        #expect(rates.blocksChanged == SnapshotRates.changedBlocks(from: before, to: after).count)
        #expect(rates.seconds > 0)
        #expect(CacheStatistics(after).requestedBytes == nil)
    }

    @Test("text: aligned tables, buddyinfo row, heatmap with legend, ASCII only with --ascii")
    func text() throws {
        let file = TemporaryFile("text")
        defer { file.remove() }
        let cache = try file.createCache(smallGeometry)
        for size in [10, 100, 1000] { _ = try cache.allocate(size) }
        let ascii = try runToEnd(
            BuiltProducts.shmtop, ["snapshot", "--ascii", "--width", "32", "--block", "4", file.path])
        #expect(ascii.termination == .exited(0), "\(ascii.error)")
        #expect(ascii.output.unicodeScalars.allSatisfy { $0.isASCII })
        #expect(ascii.output.contains("buddyinfo 1020 blocks "))
        #expect(ascii.output.contains("' ' empty  . 0"))
        #expect(ascii.output.contains("Block 4 "))
        let heatmapRows = ascii.output.split(separator: "\n").filter {
            $0.hasSuffix("|") && $0.contains(" |") && !$0.contains("B |")
        }
        // 1024 blocks in at most 32 × 16 cells: 2 blocks per cell, 16 rows.
        #expect(ascii.output.contains("Heatmap: 512 cells, 2 blocks per cell"))
        #expect(heatmapRows.count == 16)
        #expect(heatmapRows.allSatisfy { $0.split(separator: "|", omittingEmptySubsequences: false)[1].count == 32 })

        let snapshot = try CacheInspector(path: file.path).snapshot()
        let unicode = SnapshotText(ascii: false).render(snapshot, CacheStatistics(snapshot))
        #expect(unicode.contains("░"))
        #expect(SnapshotText.localeIsUTF8(["LANG": "C.UTF-8"]))
        #expect(!SnapshotText.localeIsUTF8(["LANG": "C"]))
        #expect(!SnapshotText.localeIsUTF8(["LC_ALL": "POSIX", "LANG": "en_US.UTF-8"]))
    }
}

/// An owner entry without the requested bytes, built from the sizes it allocated.
struct OwnerSummary: Hashable, CustomStringConvertible {
    let pid: Int32
    let alive: Bool
    let allocations: Int
    let bytes: Int
    let requestedBytes: Int

    init(pid: Int32, alive: Bool, sizes: [Int]) {
        self.pid = pid
        self.alive = alive
        allocations = sizes.count
        bytes = sizes.map { nodeSize($0) }.reduce(0, +)
        requestedBytes = sizes.reduce(0, +)
    }

    init(_ owner: OwnerAllocations) {
        pid = owner.pid
        alive = owner.alive
        allocations = owner.allocations
        bytes = owner.bytes
        requestedBytes = owner.requestedBytes
    }

    var description: String {
        "pid \(pid) \(alive ? "alive" : "dead") \(allocations) allocations \(bytes) B (\(requestedBytes) requested)"
    }
}

/// How many order-`order` requests one word could still take, found by taking them one at a time:
/// each takes the first node of that order whose leaves are all clear, checked leaf by leaf.
func requestsThatFit(_ word: UInt64, depth: Int, order: Int) -> Int {
    var leaves = (0..<(1 << depth)).map { word >> UInt64((1 << depth) + $0) & 1 == 1 }
    var count = 0
    let span = 1 << order
    while let start = stride(from: 0, to: leaves.count, by: span).first(where: { start in
        !leaves[start..<(start + span)].contains(true)
    }) {
        for leaf in start..<(start + span) { leaves[leaf] = true }
        count += 1
    }
    return count
}
