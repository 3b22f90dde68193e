// The path cache as the inspector shows it: `shmtop paths`, the snapshot's section and JSON key,
// its nodes held by the path cache rather than leaked, the walk a slice at a time, and the
// counters' rates that never go negative.

import Foundation
import ShmFormat
import ShmTestSupport
import Testing

@testable import ShmInspect

/// A 16 MiB cache with known paths inserted by a process that has exited, and one allocation of
/// that kind of process too (a real leak beside them).
struct PathCacheFixture {
    /// The fixture's paths and flags (0x40: a bit of the caller's).
    static let entries: [(flags: UInt8, path: String)] = [
        (0x6, "/usr/local"), (0x1, "/usr/local/bin/cc"), (0x41, "/usr/loc"), (0x2, "/etc/passwd"), (0x1, "/usr"),
    ]
    let directory: ScratchDirectory
    let path: String

    init() throws {
        directory = try ScratchDirectory()
        path = directory.file("paths.shm")
        let created = try runToEnd(BuiltProducts.shmtop, ["create", path, "--capacity", "16MiB"])
        #expect(created.termination == .exited(0))
        let inserted = try runToEnd(
            BuiltProducts.fixture,
            [path, "--paths"] + Self.entries.map { "0x\(String($0.flags, radix: 16)):\($0.path)" })
        #expect(inserted.termination == .exited(0), "\(inserted.error)")
        let leaked = try runToEnd(BuiltProducts.fixture, [path, "100", "200"])
        #expect(leaked.termination == .exited(0), "\(leaked.error)")
    }

    /// `shmtop ARGUMENTS` without `SHM_FILE`.
    static func shmtop(_ arguments: [String]) throws -> TestProcess {
        try runToEnd("/usr/bin/env", ["-u", "SHM_FILE", "LC_ALL=C.UTF-8", BuiltProducts.shmtop] + arguments)
    }
}

@Suite("The path cache in the inspector")
struct PathCacheInspectionTests {
    @Test("paths: sorted, flags by name with the caller's bits, a count line")
    func listsPaths() throws {
        let fixture = try PathCacheFixture()
        let result = try PathCacheFixture.shmtop(["paths", fixture.path])
        #expect(result.termination == .exited(0), "\(result.error)")
        let lines = result.output.split(separator: "\n").map(String.init)
        #expect(
            lines == [
                "flags        path",
                "deny         /etc/passwd",
                "allow        /usr",
                "allow +0x40  /usr/loc",
                "deny|prefix  /usr/local",
                "allow        /usr/local/bin/cc",
                "5 paths",
            ])
    }

    @Test(
        "paths --under keeps the directory and what is below it at a '/' boundary",
        arguments: [
            ("/usr/local", ["/usr/local", "/usr/local/bin/cc"]),
            ("/usr/local/", ["/usr/local", "/usr/local/bin/cc"]),
            ("/usr/loc", ["/usr/loc"]),
            ("/usr", ["/usr", "/usr/loc", "/usr/local", "/usr/local/bin/cc"]),
            ("/", ["/etc/passwd", "/usr", "/usr/loc", "/usr/local", "/usr/local/bin/cc"]),
            ("/nowhere", []),
        ])
    func under(directory: String, expected: [String]) throws {
        let fixture = try PathCacheFixture()
        let result = try PathCacheFixture.shmtop(["paths", fixture.path, "--under", directory])
        #expect(result.termination == .exited(0), "\(result.error)")
        let lines = result.output.split(separator: "\n")
        #expect(lines.dropFirst().dropLast().map { String($0.split(separator: " ").last!) } == expected)
        #expect(lines.last.map(String.init) == "\(expected.count) of 5 paths under \(directory)")
    }

    @Test("paths --json: every path with its flags, the count, and the same filter")
    func json() throws {
        let fixture = try PathCacheFixture()
        let result = try PathCacheFixture.shmtop(["paths", fixture.path, "--under", "/usr/loc", "--json"])
        #expect(result.termination == .exited(0), "\(result.error)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.output.utf8)) as? [String: Any])
        #expect(object["hasPathCache"] as? Bool == true)
        #expect(object["count"] as? Int == 1)
        #expect(object["cached"] as? Int == 5)
        let paths = try #require(object["paths"] as? [[String: Any]])
        #expect(paths.count == 1)
        #expect(paths.first?["path"] as? String == "/usr/loc")
        #expect(paths.first?["flags"] as? Int == 0x41)
        #expect(paths.first?["allow"] as? Bool == true)
        #expect(paths.first?["deny"] as? Bool == false)
        #expect(paths.first?["prefix"] as? Bool == false)
        #expect(paths.first?["callerBits"] as? Int == 0x40)
    }

    @Test("paths: a cache without a path cache says so and exits 0; a file that is no cache exits 1")
    func noPathCache() throws {
        let directory = try ScratchDirectory()
        let path = directory.file("empty.shm")
        #expect(try runToEnd(BuiltProducts.shmtop, ["create", path, "--capacity", "1MiB"]).termination == .exited(0))
        let text = try PathCacheFixture.shmtop(["paths", path])
        #expect(text.termination == .exited(0))
        #expect(text.output == "\(path): no path cache (no path has been inserted yet)\n")
        let json = try PathCacheFixture.shmtop(["paths", path, "--json"])
        #expect(json.termination == .exited(0))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.output.utf8)) as? [String: Any])
        #expect(object["hasPathCache"] as? Bool == false)
        #expect((object["paths"] as? [Any])?.isEmpty == true)

        let notACache = directory.file("text")
        try "not a cache\n".write(toFile: notACache, atomically: true, encoding: .utf8)
        let refused = try PathCacheFixture.shmtop(["paths", notACache])
        #expect(refused.termination == .exited(1))
        #expect(refused.error.hasPrefix("shmtop: \(notACache): "), "\(refused.error)")
        #expect(refused.output.isEmpty)
    }

    @Test(
        "paths: bad arguments exit non-zero with the subcommand's usage",
        arguments: [
            (["paths"], "Error: no cache file given: pass PATH or set SHM_FILE"),
            (["paths", "x.shm", "--under", "usr"], "Error: --under usr is not an absolute path: DIR starts with /"),
            (["paths", "x.shm", "--under"], "Error: Missing value for '--under <DIR>'"),
            (["paths", "x.shm", "--bogus"], "Error: Unknown option '--bogus'"),
        ])
    func badArguments(arguments: [String], message: String) throws {
        let result = try PathCacheFixture.shmtop(arguments)
        #expect(result.termination == .exited(64), "\(result.error)")
        #expect(result.error.hasPrefix(message), "\(result.error)")
        #expect(result.error.contains("Usage: shmtop paths "), "\(result.error)")
        #expect(result.output.isEmpty)
    }

    @Test("snapshot: the path cache's section and JSON agree, and its dead writer's nodes are not leaks")
    func snapshot() throws {
        let fixture = try PathCacheFixture()
        let json = try PathCacheFixture.shmtop(["snapshot", "--json", fixture.path])
        #expect(json.termination == .exited(0), "\(json.error)")
        let report = try JSONDecoder().decode(SnapshotReport.self, from: Data(json.output.utf8))
        let counters = try #require(report.pathCache)
        let pathCache = try #require(counters.walk)
        #expect(pathCache.entries == 5)
        #expect(pathCache.prefixEntries == 1)
        #expect(pathCache.pathBytes == PathCacheFixture.entries.reduce(0) { $0 + $1.path.utf8.count })
        #expect(pathCache.bytes == pathCache.tableBytes + pathCache.entryBytes)
        #expect(pathCache.nodesAwaitingReclamation == 0)
        #expect(pathCache.depthHistogram.reduce(0, +) == 5)
        #expect(pathCache.invalidSlots == 0)
        #expect(counters.rateSeconds == nil && counters.searchesPerSecond == nil)

        // The writer of the paths is dead: its nodes are the path cache's, the other fixture's are leaked.
        let holder = try #require(pathCache.holders.first)
        #expect(pathCache.holders.count == 1)
        #expect(holder.holding.bytes == pathCache.bytes)
        #expect(holder.holding.allocations == pathCache.tables + pathCache.entries)
        #expect(report.heldByPathCache?.bytes == pathCache.bytes)
        let owners = try #require(report.owners)
        #expect(!owners.contains { $0.pid == holder.pid }, "the paths' writer holds nothing else")
        #expect(owners.map(\.allocations) == [2])
        #expect(report.leakedBytes == owners[0].bytes)
        #expect(report.allocatedBytes == pathCache.bytes + owners[0].bytes, "every allocated byte accounted for once")

        let text = try PathCacheFixture.shmtop(["snapshot", fixture.path])
        #expect(text.termination == .exited(0))
        let output = text.output
        #expect(output.contains("Path cache: 5 entries (1 prefixes) · \(pathCache.tables) tables · invalid slots 0"))
        let bytes = [pathCache.tableBytes, pathCache.entryBytes, pathCache.pathBytes, pathCache.bytes]
        let byteRow = "  node bytes" + bytes.map { " +\($0)" }.joined() + "\n"
        #expect(output.range(of: byteRow, options: .regularExpression) != nil)
        #expect(output.contains("nodes awaiting reclamation 0 (by design"))
        #expect(
            output.contains(
                "  depth "
                    + pathCache.depthHistogram.enumerated().map { "\($0.offset): \($0.element)" }
                    .joined(separator: "  ")))
        #expect(output.contains("held by the path cache: \(pathCache.bytes) bytes"))
        #expect(output.contains("leaked by dead owners: \(owners[0].bytes) bytes"))
        #expect(output.contains("held per pid: \(holder.pid) \(holder.holding.bytes) bytes"))
        #expect(output.contains("searches \(counters.searches) · hits \(counters.hits) · inserts \(counters.inserts)"))
    }

    @Test("a live writer that holds only path cache nodes stays in the owners, holding nothing, and counts as alive")
    func liveWriterOfPathsOnly() throws {
        let directory = try ScratchDirectory()
        let path = directory.file("paths.shm")
        let created = try runToEnd(BuiltProducts.shmtop, ["create", path, "--capacity", "16MiB"])
        #expect(created.termination == .exited(0))
        let writer = try TestProcess(BuiltProducts.fixture, [path, "--paths-then-wait", "0x1:/srv/a", "0x2:/srv/b"])
        defer { writer.killNow() }
        #expect(poll(timeout: .seconds(60)) { writer.output.contains("ready") }, "\(writer.outputTail)")

        let json = try PathCacheFixture.shmtop(["snapshot", "--json", path])
        #expect(json.termination == .exited(0), "\(json.error)")
        let report = try JSONDecoder().decode(SnapshotReport.self, from: Data(json.output.utf8))
        let held = try #require(report.heldByPathCache)
        #expect(held.allocations > 0, "the writer's nodes are the path cache's")
        let owners = try #require(report.owners)
        let owner = try #require(owners.first { $0.pid == writer.pid }, "\(owners)")
        #expect(owner.alive && owner.allocations == 0 && owner.bytes == 0)
        #expect(owners.filter(\.alive).map(\.pid) == [writer.pid])
        #expect(report.leakedBytes == 0)
    }

    @Test("snapshot --interval: the path cache's rates are in the text and the JSON")
    func snapshotRates() throws {
        let fixture = try PathCacheFixture()
        let json = try PathCacheFixture.shmtop(["snapshot", "--json", "--interval", "0.05", fixture.path])
        let report = try JSONDecoder().decode(SnapshotReport.self, from: Data(json.output.utf8))
        let pathCache = try #require(report.pathCache)
        #expect(pathCache.rateSeconds == report.rateSeconds)
        #expect(pathCache.searchesPerSecond == 0, "nobody searched meanwhile")
        #expect(pathCache.windowHitRate == nil)
        let text = try PathCacheFixture.shmtop(["snapshot", "--interval", "0.05", fixture.path]).output
        #expect(text.contains("searches/s 0.0 · hits/s 0.0 · inserts/s 0.0 · hit rate –"), "\(text)")
    }

    @Test("a live view's walk, a slice per refresh, publishes the whole walk's figures when it ends")
    func slicedWalk() throws {
        let directory = try ScratchDirectory()
        let path = directory.file("many.shm")
        #expect(try runToEnd(BuiltProducts.shmtop, ["create", path, "--capacity", "64MiB"]).termination == .exited(0))
        let count = PathCacheSeries.nodesPerRefresh * 2
        #expect(try runToEnd(BuiltProducts.fixture, [path, "--generated-paths", "\(count)"]).termination == .exited(0))
        let inspector = try CacheInspector(path: path)
        let root = try inspector.pathCacheRoot()
        let whole = try #require(try inspector.pathCache(root: root))
        #expect(whole.entries > PathCacheSeries.nodesPerRefresh, "more than one slice: \(whole.entries)")

        var series = PathCacheSeries()
        var refreshes = 0
        var sample = try inspector.advance(&series, root: root)
        while sample.figures == nil, refreshes < 10 {
            refreshes += 1
            sample = try inspector.advance(&series, root: root)
        }
        // A walk notices it has ended with budget left: one more refresh when the nodes fill the slices exactly.
        let expectedRefreshes = (whole.entries + whole.tables) / PathCacheSeries.nodesPerRefresh
        #expect(refreshes == expectedRefreshes)
        #expect(sample.figures == whole)
    }

    /// An owner table with each entry's identity and counters (searches, hits, inserts).
    static func counters(_ entries: [(identity: UInt64, searches: UInt64, hits: UInt64, inserts: UInt64)])
        -> PathCounterReading
    {
        var table = [UInt8](repeating: 0, count: OwnerTable.byteCount)
        for (index, entry) in entries.enumerated() {
            let start = index * OwnerTable.entrySize
            for (offset, value) in [entry.identity, entry.searches, entry.hits, entry.inserts].enumerated() {
                withUnsafeBytes(of: value.littleEndian) {
                    table.replaceSubrange((start + offset * 8)..<(start + offset * 8 + 8), with: $0)
                }
            }
        }
        return table.withUnsafeBytes { PathCounterReading(table: $0) }
    }

    @Test("rates between two readings never go negative: a reused entry counts its new process from 0")
    func countersClamp() {
        let earlier = Self.counters([(1, 100, 90, 10), (2, 50, 10, 40), (3, 7, 7, 0)])
        // Entry 0 grew; entry 1 was taken by process 4, which counted less than 2 had; entry 3's
        // counters went down (a torn or bad write): clamped at 0.
        let later = Self.counters([(1, 130, 110, 12), (4, 5, 1, 4), (3, 6, 6, 0)])
        let activity = PathActivity(from: earlier, to: later)
        #expect(activity.searches == 30 + 5)
        #expect(activity.hits == 20 + 1)
        #expect(activity.inserts == 2 + 4)
        #expect(later.totals.searches == 141)
        let rates = PathCacheRates(activity: activity, seconds: 0.5)
        #expect(rates.searchesPerSecond == 70)
        #expect(rates.hitRate == 21.0 / 35.0)
        #expect(PathActivity(from: later, to: earlier).searches >= 0)
        #expect(PathCacheRates(activity: PathActivity(), seconds: 1).hitRate == nil)
    }
}
