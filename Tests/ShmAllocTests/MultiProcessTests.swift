// Real processes sharing one cache file: stress, creation races, and writers killed mid-run.
// The suite is serialised: these tests each want both cores, and timing them against one another
// would only make them slower and their deadlines looser.

import Foundation
import ShmAlloc
import ShmFormat
import ShmSystem
import ShmTestSupport
import Testing

@Suite("Multi-process", .serialized)
struct MultiProcessTests {
    /// 32 B .. 1 KiB in 8 MiB: the original's sizes in a cache small enough to fill.
    static let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 8 << 20)

    /// Starts `count` stress helpers on `path` (each with 2 threads); with `fillingFirst`, each
    /// thread allocates until the cache refuses it once before it starts freeing.
    static func startStress(
        _ count: Int, path: String, seconds: Double, window: Int, fillingFirst: Bool = false,
        in scratch: ScratchDirectory
    ) throws -> [TestProcess] {
        try (0..<count).map { index in
            try TestProcess(
                BuiltProducts.helper,
                ["stress", path, "\(seconds)", "2", "\(window)"] + (fillingFirst ? ["fill-first"] : []), in: scratch)
        }
    }

    @Test("4 processes × 2 threads, sizes 1 B..max: no overlap, no mismatch, every word valid, cache empty after")
    func stress() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("stress.shm")
        let cache = try makeCache(at: path, geometry: Self.geometry)
        // A window of 1024 live allocations per thread keeps the cache around 60 % full.
        let workers = try Self.startStress(4, path: path, seconds: 3, window: 1024, in: scratch)
        for worker in workers {
            let termination = worker.wait(timeout: .seconds(60))
            #expect(termination == .exited(0), "\(worker.outputTail)")
            #expect(worker.result("mismatches") == 0)
            #expect(worker.result("errors") == 0)
            #expect(worker.result("allocations") > 1000, "the worker must actually have worked: \(worker.outputTail)")
        }
        #expect(cache.invalidBlocks == [])
        #expect(cache.usedBlocks == [], "every allocation was freed, so every word must be zero again")
        #expect(cache.invalidFrees == 0)
    }

    @Test(
        "the stress workers also survive a cache too small for them (allocations fail cleanly, each thread at least once)"
    )
    func stressWhenFull() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("full.shm")
        let cache = try makeCache(at: path, geometry: try Geometry(minSize: 32, maxSize: 1024, capacity: 256 << 10))
        // Each thread fills the cache before it frees anything, so each meets an out-of-space
        // however slow the machine (ThreadSanitizer) and however late the others start.
        let workers = try Self.startStress(4, path: path, seconds: 1, window: 256, fillingFirst: true, in: scratch)
        var outOfSpace = 0
        for worker in workers {
            #expect(worker.wait(timeout: .seconds(60)) == .exited(0), "\(worker.outputTail)")
            #expect(
                worker.result("outOfSpace") >= 2, "each of its 2 threads filled the cache once: \(worker.outputTail)")
            outOfSpace += max(0, worker.result("outOfSpace"))
        }
        #expect(cache.failedAllocations == UInt64(outOfSpace))
        #expect(cache.invalidBlocks == [])
        #expect(cache.usedBlocks == [])
    }

    @Test("8 processes create one new file at the same instant: one creator, one header, one geometry")
    func concurrentCreation() throws {
        let scratch = try ScratchDirectory()
        for round in 0..<3 {
            let path = scratch.file("race-\(round).shm")
            // The start barrier: a wall-clock instant far enough ahead for all 8 to be spawned.
            let start = UInt64(Date().timeIntervalSince1970 * 1e9) + 400_000_000
            let geometry = Self.geometry
            let racers = try (0..<8).map { index in
                try TestProcess(
                    BuiltProducts.helper,
                    ["open", path, "\(geometry.minSize)", "\(geometry.maxSize)", "\(geometry.capacity)", "\(start)"],
                    in: scratch)
            }
            for racer in racers { #expect(racer.wait(timeout: .seconds(30)) == .exited(0), "\(racer.outputTail)") }
            let reports = racers.map(\.results)
            let creators = Set(reports.map { $0["creator"] ?? "?" })
            #expect(creators.count == 1, "every process must see the same creator: \(reports)")
            #expect(Set(reports.map { $0["createdAt"] ?? "?" }).count == 1)
            #expect(Set(reports.map { $0["geometry"] ?? "?" }) == ["32,1024,8192"])
            let spawned = Set(racers.map { "\($0.pid)" })
            #expect(spawned.isSuperset(of: creators), "the creator is one of the racers")
            #expect(
                reports.filter { $0["pid"] == $0["creator"] }.count == 1, "exactly one process initialised the file")

            let cache = try SharedCache(path: path, policy: .attach)
            #expect(cache.layout.fileSize == (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int))
            #expect("\(cache.header.creatorPID)" == creators.first)
            #expect(cache.invalidBlocks == [])
            #expect(cache.usedBlocks == [])
        }
    }

    @Test("kill -9 of writers mid-run, five times over: every word stays valid and the cache stays usable")
    func killedWriters() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("killed.shm")
        let cache = try makeCache(at: path, geometry: Self.geometry)
        for round in 0..<5 {
            let wordsBefore = cache.allWords
            let writers = try Self.startStress(4, path: path, seconds: 60, window: 256, in: scratch)
            // Mid-run means: the writers are allocating. Wait until the cache shows it, then a little more.
            let running = poll(timeout: .seconds(20)) { zip(cache.allWords, wordsBefore).filter { $0 != $1 }.count > 8 }
            #expect(running, "round \(round): the writers never got going")
            usleep(UInt32(20_000 + round * 30_000))
            for writer in writers {
                writer.killNow()
                #expect(writer.termination == .signalled(SIGKILL), "\(writer.outputTail)")
            }
            #expect(cache.invalidBlocks == [], "round \(round)")
        }
        // What the dead left behind is leaked, not broken: a fresh writer still works correctly.
        let survivor = try Self.startStress(1, path: path, seconds: 0.5, window: 256, in: scratch)[0]
        #expect(survivor.wait(timeout: .seconds(60)) == .exited(0), "\(survivor.outputTail)")
        #expect(survivor.result("mismatches") == 0)
        #expect(cache.invalidBlocks == [])
    }
}
