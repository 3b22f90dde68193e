// The crash soak in small: `shm-test-helper soak` with 20 SIGKILLs (the full soak is 200 or more; see
// docs/reliability.md), and the inspector's JSON report of what the dead left behind.

import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmSystem
import ShmTestSupport
import ShmWorkloads
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension MultiProcessTests {
    @Test(
        "crash soak: 20 SIGKILLs of 4 writers; every word valid after each; leaked bytes = what the dead held",
        .timeLimit(.minutes(3)))
    func crashSoak() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("soak.shm")
        let soak = try runToEnd(
            BuiltProducts.helper, ["soak", path, "--kills", "20", "--interval-ms", "100", "--keep"],
            in: scratch, timeout: .seconds(120))
        #expect(soak.termination == .exited(0), "\(soak.outputTail)")
        #expect(soak.result("kills") == 20)
        #expect(soak.result("problems") == 0, "\(soak.outputTail)")
        #expect(soak.result("mismatches") == 0)
        #expect(soak.result("invalidWords") == 0)
        // A writer killed before it allocated anything leaves no owner (likelier on a loaded machine).
        #expect((1...20).contains(soak.result("deadOwners")), "killed writers held something: \(soak.outputTail)")
        #expect(soak.result("leakedBytes") > 0)
        #expect(soak.result("leakedBytes") == soak.result("deadHeldBytes"))
        #expect(soak.result("operations") > 1000, "the writers must actually have worked: \(soak.outputTail)")

        // The same figures from `shmtop snapshot --json`, and the writers' allocations are all gone.
        let report = try runToEnd(BuiltProducts.shmtop, ["snapshot", "--json", path], in: scratch)
        #expect(report.termination == .exited(0), "\(report.outputTail)")
        let json = try #require(try JSONSerialization.jsonObject(with: Data(report.output.utf8)) as? [String: Any])
        #expect(json["invalidWords"] as? Int == 0)
        #expect(json["leakedBytes"] as? Int == soak.result("leakedBytes"))
        #expect(json["allocatedBytes"] as? Int == soak.result("leakedBytes") + soak.result("unattributedBytes"))

        // What the dead left is leaked, not broken: a fresh writer works correctly around it.
        let survivor = try Self.startStress(1, path: path, seconds: 0.5, window: 256, in: scratch)[0]
        #expect(survivor.wait(timeout: .seconds(60)) == .exited(0), "\(survivor.outputTail)")
        #expect(survivor.result("mismatches") == 0)
        #expect(try SharedCache(path: path, policy: .attach).invalidBlocks == [])
    }
}

extension MultiProcessTests {
    @Test(
        "31 rounds of SIGKILLed 2-thread writers: words valid, every allocated byte a dead owner's, fills to 0 B free",
        .timeLimit(.minutes(5)))
    func killedThreadedWriters() throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("threads-soak.shm")
        // Large enough that the writers never fill it: no failing search, so no repair pass runs
        // before the fill below (which must find every byte, through the repair it triggers).
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 16 << 20)
        let cache = try makeCache(at: path, geometry: geometry)
        var random = SplitMix64(seed: 60)
        var zombies: [TestProcess] = []
        // 62 writers and this process: no more than the owner table's 64 entries. A writer killed
        // inside an operation keeps its entry (its intent is the only record of a node it was
        // claiming), so a 65th could find none, and a node it died claiming would be nobody's:
        // the documented limit of a full table, not what this test is about.
        let rounds = 31
        for round in 0..<rounds {
            let writers = try (0..<2).map { index in
                try TestProcess(BuiltProducts.helper, ["stress", path, "30", "2", "128"], in: scratch)
            }
            // The last rounds' writers stay zombies while the inspector looks: they must hold
            // something to be seen as owners, whatever the machine's speed (a sanitized helper
            // starts slowly), so those rounds wait for their first allocations.
            let leftZombies = round >= rounds - 3
            if leftZombies {
                for writer in writers {
                    #expect(poll(timeout: .seconds(60)) { !cache.allocationCensus(owner: writer.pid).owned.isEmpty })
                }
            }
            usleep(UInt32(10_000 + random.next() % 40_000))
            for writer in writers { writer.killLeavingZombie() }
            if leftZombies {
                // SIGKILL is delivered asynchronously: until the kernel has made it a zombie, the
                // writer still reads as running.
                for writer in writers {
                    #expect(poll(timeout: .seconds(10)) { ProcessState(pid: writer.pid) == .zombie })
                }
                zombies += writers
            } else {
                for writer in writers { #expect(writer.wait(timeout: .seconds(10)) == .signalled(SIGKILL)) }
            }
        }

        let statistics = CacheStatistics(try CacheInspector(path: path).snapshot())
        #expect(statistics.invalidWords == 0)
        let owners = try #require(statistics.owners)
        #expect(!owners.isEmpty, "the writers must have allocated something")
        #expect(owners.allSatisfy { !$0.alive }, "\(owners.filter(\.alive).map(\.pid))")
        #expect(owners.contains { $0.state == .zombie }, "the last writers are zombies")
        #expect(owners.reduce(0) { $0 + $1.bytes } == statistics.allocatedBytes, "every allocated byte has an owner")
        #expect(statistics.leakedBytes == statistics.allocatedBytes)
        for zombie in zombies { #expect(zombie.wait(timeout: .seconds(10)) == .signalled(SIGKILL)) }

        var filled = 0
        while (try? cache.allocate(1)) != nil { filled += 1 }
        #expect(cache.freeBytes == 0, "free space hidden from the index (repairs: \(cache.repairPasses))")
        #expect(filled > 0 && cache.invalidBlocks == [])
    }
}
