// Snapshots taken by difference (`snapshot(readingAllocations:after:recycling:)`, what the live
// view takes at every refresh) against fresh snapshots of the same moments.

import ShmAlloc
import ShmFormat
import ShmInspect
import Testing
import ShmWorkloads

@Suite("Snapshots by difference")
struct SnapshotSeriesTests {
    @Test("a series of snapshots by difference has the words, changes, rates and census of fresh ones")
    func seriesMatchesFreshSnapshots() throws {
        let file = TemporaryFile("series")
        defer { file.remove() }
        // 16 MiB: 16384 blocks, so a series spans several 8192-word reads and many empty groups.
        let cache = try file.createCache(try Geometry(minSize: 32, maxSize: 1024, capacity: 16 << 20))
        let inspector = try CacheInspector(path: file.path)
        var random = SplitMix64(seed: 0x5EED0005)
        var held: [ShmOffset] = []
        var recycled = RecycledWords()
        var previous = try inspector.snapshot(readingAllocations: false)
        var census = BuddyCensus(tree: previous.tree, words: previous.words[previous.usableBlocks])
        for step in 0..<12 {
            // Grow, churn, and empty whole regions again, so groups turn empty and non-empty.
            if step % 4 == 3 {
                for offset in held { try cache.free(offset) }
                held.removeAll()
            } else {
                for _ in 0..<Int.random(in: 1...3000, using: &random) {
                    if let offset = try? cache.allocate(Int.random(in: 8...1016, using: &random)) { held.append(offset) }
                }
                held.shuffle(using: &random)
                for offset in held.suffix(held.count / 3) { try cache.free(offset) }
                held.removeLast(held.count / 3)
            }
            let (snapshot, changes) = try inspector.snapshot(readingAllocations: step % 2 == 0, after: previous, recycling: &recycled)
            let fresh = try inspector.snapshot(readingAllocations: false)
            #expect(snapshot.words == fresh.words, "step \(step)")
            let expected = SnapshotChanges(from: previous, to: snapshot)
            #expect(changes.blocks == expected.blocks, "step \(step)")
            #expect(changes.earlierWords == expected.earlierWords, "step \(step)")
            #expect(changes.laterWords == expected.laterWords, "step \(step)")
            #expect(changes.rates.allocations == expected.rates.allocations && changes.rates.frees == expected.rates.frees)
            census = changes.census(updating: census)
            #expect(census == BuddyCensus(tree: snapshot.tree, words: snapshot.words[snapshot.usableBlocks]), "step \(step)")
            previous = snapshot
        }
    }
}
