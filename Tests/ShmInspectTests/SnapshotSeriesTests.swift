// Snapshots brought up to date by difference (`advance(_:series:comparing:)`, what the live view
// does at every refresh) against fresh snapshots of the same moments.

import ShmAlloc
import ShmFormat
import ShmTestSupport
import ShmWorkloads
import Testing

@testable import ShmInspect

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Snapshots by difference")
struct SnapshotSeriesTests {
    @Test("a pass grows to at most twice the last, however fast it ran; it shrinks to the budget at once")
    func passSizesGrowGradually() {
        let usable = 1 << 24  // 16 GiB of 1 KiB blocks
        let first = SnapshotSeries.minimumWordsPerPass
        var series = SnapshotSeries()
        // A pass of `first` words in a microsecond could afford the whole cache at a 10 ms budget.
        series.adapt(words: first, seconds: 1e-6, budget: 0.01, usable: usable)
        #expect(series.wordsPerPass == 2 * first)
        series.adapt(words: 2 * first, seconds: 1e-6, budget: 0.01, usable: usable)
        #expect(series.wordsPerPass == 4 * first)
        // A pass that took four times the budget: a quarter of its size next.
        series.adapt(words: 4 * first, seconds: 0.04, budget: 0.01, usable: usable)
        #expect(series.wordsPerPass == first)
        #expect(series.passesPerSweep == usable / first)
    }

    @Test("a series of snapshots by difference has the words, changes, rates and census of fresh ones")
    func seriesMatchesFreshSnapshots() throws {
        let file = TemporaryFile("series")
        defer { file.remove() }
        // 16 MiB: 16384 blocks, so a series spans several 8192-word reads and many empty groups.
        let cache = try file.createCache(try Geometry(minSize: 32, maxSize: 1024, capacity: 16 << 20))
        let inspector = try CacheInspector(path: file.path)
        var random = SplitMix64(seed: 0x5EED_0005)
        var held: [ShmOffset] = []
        var series = SnapshotSeries()
        var previous = try inspector.snapshot(readingAllocations: false)
        var census = BuddyCensus(tree: previous.tree, words: previous.words[previous.usableBlocks])
        var ledger = try inspector.ownerLedger(of: previous)
        for step in 0..<12 {
            // Grow, churn, and empty whole regions again, so groups turn empty and non-empty.
            if step % 4 == 3 {
                for offset in held { try cache.free(offset) }
                held.removeAll()
            } else {
                for _ in 0..<Int.random(in: 1...3000, using: &random) {
                    if let offset = try? cache.allocate(Int.random(in: 8...1016, using: &random)) {
                        held.append(offset)
                    }
                }
                held.shuffle(using: &random)
                for offset in held.suffix(held.count / 3) { try cache.free(offset) }
                held.removeLast(held.count / 3)
            }
            var snapshot = previous
            let changes = try inspector.advance(&snapshot, series: &series)
            let fresh = try inspector.snapshot(readingAllocations: false)
            #expect(snapshot.words == fresh.words, "step \(step)")
            let expected = SnapshotChanges(from: previous, to: snapshot)
            #expect(changes.blocks == expected.blocks, "step \(step)")
            #expect(changes.earlierWords == expected.earlierWords, "step \(step)")
            #expect(changes.laterWords == expected.laterWords, "step \(step)")
            #expect(
                changes.rates.allocations == expected.rates.allocations && changes.rates.frees == expected.rates.frees)
            census = changes.census(updating: census)
            // The owner ledger, updated from the changed blocks alone, says what a full header
            // scan says; this process's allocations and frees are the words' (one owner).
            let activity = try inspector.update(&ledger, to: snapshot, changes: changes).activity
            let scanned = try #require(try inspector.snapshot(readingAllocations: true).allocations)
            #expect(try inspector.census(of: ledger) == scanned, "step \(step)")
            #expect(activity.counts[getpid()].map { $0.allocations } ?? 0 == changes.rates.allocations, "step \(step)")
            #expect(activity.counts[getpid()].map { $0.frees } ?? 0 == changes.rates.frees, "step \(step)")
            #expect(
                census == BuddyCensus(tree: snapshot.tree, words: snapshot.words[snapshot.usableBlocks]), "step \(step)"
            )
            previous = snapshot
        }
    }

    @Test(
        "a header in flight is read again at the next refresh, its block changed meanwhile or not; then the ledger says what a scan says"
    )
    func headersInFlightSettle() throws {
        let file = TemporaryFile("in-flight")
        defer { file.remove() }
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20)
        _ = try file.createCache(geometry)
        let inspector = try CacheInspector(path: file.path)
        let (layout, tree) = (inspector.layout, geometry.tree)
        let descriptor = open(file.path, O_RDWR)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        // The file written behind the inspector's back, as writers do: words and headers.
        func write(_ value: UInt64, at offset: Int) {
            var bytes = value.littleEndian
            #expect(pwrite(descriptor, &bytes, 8, off_t(offset)) == 8)
        }
        func setWord(_ block: Int, _ nodes: [Int]) {
            write(nodes.reduce(0) { $0 | tree.setMask(ofNode: $1) }, at: layout.wordsOffset + block * 8)
        }
        func setHeader(_ block: Int, _ node: Int, owner: Int32?) {
            let header = owner.map { AllocationHeader(ownerPID: $0, requestedSize: 20, order: 0).rawValue } ?? 0
            write(
                header, at: layout.dataOffset + block * geometry.blockSize + tree.byteOffset(ofNode: node, minSize: 32))
        }
        var snapshot = try inspector.snapshot(readingAllocations: false)
        var ledger = try inspector.ownerLedger(of: snapshot)
        var series = SnapshotSeries()
        /// A refresh's words read, then `meanwhile` done, then its headers read.
        func refresh(meanwhile: () -> Void = {}) throws -> AllocationCensus {
            let changes = try inspector.advance(&snapshot, series: &series)
            meanwhile()
            _ = try inspector.update(&ledger, to: snapshot, changes: changes)
            return try inspector.census(of: ledger)
        }
        func scan() throws -> AllocationCensus? { try inspector.snapshot(readingAllocations: true).allocations }
        func owners(_ census: AllocationCensus) -> [[Int]] {
            census.owners.map { [Int($0.pid), $0.allocations] }.sorted { $0[0] < $1[0] }
        }
        let (first, second) = (layout.nullBlockCount, layout.nullBlockCount + 1)
        let (a, b) = (tree.node(order: 0, firstLeaf: 0), tree.node(order: 0, firstLeaf: 1))
        // Both blocks gain node a, whose header is not written yet when it is read: each block
        // changes again (node b) between its word's reading and its header's.
        for block in [first, second] {
            setWord(block, [a])
            setHeader(block, a, owner: nil)
        }
        let inFlight = try refresh {
            for block in [first, second] {
                setWord(block, [a, b])
                setHeader(block, b, owner: 7)
            }
        }
        #expect(inFlight.inFlightHeaders == 2 && inFlight.unreadableHeaders == 0 && inFlight.owners.isEmpty)
        #expect(ledger.unsettledBlocks == [first, second])
        // The headers written. The first block's word is back to what the last refresh read (b
        // freed): unchanged, its node a is read again all the same; the second block changed.
        setWord(first, [a])
        setHeader(first, a, owner: 41)
        setHeader(second, a, owner: 42)
        let settled = try refresh()
        #expect(settled.inFlightHeaders == 0 && ledger.unsettledBlocks.isEmpty)
        // The second block's node b is 7's, read when it appeared; the first's was freed.
        #expect(owners(settled) == [[7, 1], [41, 1], [42, 1]])
        #expect(settled == (try scan()))
        // A settled block that changes is planned from its earlier word: node a freed, b kept.
        setWord(second, [b])
        let freed = try refresh()
        #expect(owners(freed) == [[7, 1], [41, 1]])
        #expect(freed == (try scan()))
    }
}
