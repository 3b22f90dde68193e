// The live view's path cache panel, end to end in tmux: figures equal to `snapshot --json`'s,
// rates and the hit rate from the processes' counters, and a cache without a path cache.

import Foundation
import ShmFormat
import ShmInspect
import ShmTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

@Suite("the path cache panel in tmux", .serialized)
struct PathCachePanelTests {
    @Test("a cache without a path cache says so")
    func noPathCache() throws {
        let cache = try KnownCache()
        let session = try cache.watch()
        let screen = try session.waitForScreen("the path cache's line") {
            $0.contains("Path cache") && $0.contains("LIVE")
        }
        #expect(screen.contains("Path cache · no path cache yet"))
        #expect(!screen.contains("searches/s"))
        #expect(try session.quit() == 0)
    }

    @Test("entries, bytes and depths as `snapshot --json` has them; search and hit rates from the counters")
    func figuresAndRates() throws {
        let directory = try ScratchDirectory()
        let path = directory.file("paths.shm")
        #expect(try runToEnd(BuiltProducts.shmtop, ["create", path, "--capacity", "16MiB"]).termination == .exited(0))
        let entries = ["0x6:/usr/local", "0x1:/usr/local/bin/cc", "0x1:/usr/loc", "0x2:/etc/passwd", "0x4:/opt"]
        #expect(try runToEnd(BuiltProducts.fixture, [path, "--paths"] + entries).termination == .exited(0))
        let json = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", path]).output
        let pathCache = try #require(try JSONDecoder().decode(SnapshotReport.self, from: Data(json.utf8)).pathCache)
        let report = try #require(pathCache.walk)

        let session = try TmuxSession(
            [BuiltProducts.shmtop, "watch", path, "--snapshot-directory", directory.path], width: 120, height: 40)
        let screen = try session.waitForScreen("the path cache's figures") { panel($0, shows: "entries", "5") }
        #expect(panel(screen, shows: "prefixes", "2"))
        #expect(panel(screen, shows: "bytes", Format.bytes(report.bytes)))
        #expect(panel(screen, shows: "paths", Format.bytes(report.pathBytes)))
        #expect(panel(screen, shows: "tables", Format.bytes(report.tableBytes)))
        #expect(panel(screen, shows: "reclaim", "0"))
        #expect(panel(screen, shows: "invalid", "0"))
        #expect(
            screen.contains(
                "depth "
                    + report.depthHistogram.enumerated().map { "\($0.offset):\($0.element)" }.joined(separator: " ")))
        #expect(panel(screen, shows: "hit rate", "–"), "no searches yet")

        // A process's counters, as the path cache keeps them, going up with 3 hits in 4 searches:
        // written until the panel shows the rates (the window averages over a second).
        let counters = try CounterWriter(cachePath: path)
        var searches: UInt64 = 0
        let climbing = try session.waitForScreen("search and hit rates") { screen in
            searches += 400
            counters.write(searches: searches, hits: searches / 4 * 3, inserts: searches / 100)
            return panel(screen, shows: "hit rate", "75.0%") && !panel(screen, shows: "searches/s", "0")
        }
        #expect(!panel(climbing, shows: "hits/s", "0"))
        // Overall: the writer's 3 in 4 and the fixture's own searches (each of its paths, found),
        // once the panel has caught up with the last counters written.
        let overall =
            (Double(pathCache.hits) + Double(searches / 4 * 3)) / (Double(pathCache.searches) + Double(searches))
        let overallText = Format.percent(overall)
        _ = try session.waitForScreen("the overall hit rate, \(overallText)") {
            panel($0, shows: "overall", overallText)
        }
        #expect(!panel(climbing, shows: "inserts/s", "0"))
        // The hit rate's history (the second "history" line) draws 75 % as the seventh of eight levels.
        let histories = climbing.lines.filter { $0.contains("history") }
        #expect(histories.count == 2)
        #expect(histories.last?.contains("▇") == true, "\(histories)")
        #expect(try session.quit() == 0)
    }
}

/// Writes a made-up process's path counters into the last owner-table entry of a cache file, as
/// the path cache does for its own process.
struct CounterWriter {
    let descriptor: Int32
    let entryOffset: Int

    init(cachePath: String) throws {
        let layout = try CacheInspector(path: cachePath).layout
        descriptor = open(cachePath, O_RDWR)
        try #require(descriptor >= 0)
        entryOffset = layout.ownersOffset + (OwnerTable.entryCount - 1) * OwnerTable.entrySize
        // pid 1 with another start time than init's: an entry the inspector never takes for a live owner.
        put(OwnerTable.identity(pid: 1, startTime: 1), at: 0)
    }

    func write(searches: UInt64, hits: UInt64, inserts: UInt64) {
        let start = OwnerTable.pathCountersOffset
        put(searches, at: start + PathCounters.searchesIndex * 8)
        put(hits, at: start + PathCounters.hitsIndex * 8)
        put(inserts, at: start + PathCounters.insertsIndex * 8)
    }

    private func put(_ value: UInt64, at offset: Int) {
        var word = value.littleEndian
        let written = pwrite(descriptor, &word, 8, off_t(entryOffset + offset))
        #expect(written == 8)
    }
}
