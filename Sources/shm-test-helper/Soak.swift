// `shm-test-helper soak` (scripts/soak.sh crash runs it long): writers killed with SIGKILL over and over, checked by the inspector after each kill.
//
// What a killed writer held cannot be asked of it afterwards, so every writer keeps a *journal*: a
// small file of its own, mapped MAP_SHARED, that the kernel keeps when the process dies. Before an
// allocation or a free it records the operation as pending, with the bytes it will hold after it;
// after the operation it stores the new total and clears the pending mark. A kill can land between
// the two, so the bytes a dead writer held are the journal's total, or its pending total when the
// operation went through: the inspector's figure for that owner must be one of the two.

import ArgumentParser
import Foundation
import ShmAlloc
import ShmFormat
import ShmInspect
import ShmSystem
import ShmWorkloads
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// `shm-test-helper soak` (scripts/soak.sh crash runs it long): the crash soak.
struct Soak: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Crash soak: kill writers with SIGKILL again and again; check every word and every leaked byte.",
        discussion: """
            Runs --writers writer processes that allocate, fill, verify and free; every --interval-ms \
            (randomly 0.5 to 1.5 times that) one of them, chosen at random, is killed with SIGKILL and \
            another started, until --kills. After each kill the inspector must find every buddy word \
            valid and attribute to the dead writer exactly the bytes its journal says it held. At the \
            end the survivors stop, verify and free everything, and the bytes the inspector reports \
            as leaked must equal the bytes the dead writers held. Prints one summary line; exit \
            status 1 on any violation. The cache file is created (32 B..1 KiB) and removed at the end \
            unless --keep.
            """
    )

    @Argument(help: ArgumentHelp("The cache file to create (must not exist).", valueName: "path"))
    var path: String
    @Option(help: "Writers running at once.")
    var writers = 4
    @Option(help: "SIGKILLs before the soak ends.")
    var kills = 200
    @Option(name: .customLong("interval-ms"), help: "Mean milliseconds between kills.")
    var intervalMilliseconds = 300
    @Option(help: "Most allocations one writer holds at once.")
    var window = 256
    @Option(help: "Cache capacity in bytes.")
    var capacity = 64 << 20
    @Option(help: "Seed of the choice of victims and intervals.")
    var seed: UInt64 = 1
    @Flag(help: "Keep the cache file (and the journals) at the end.")
    var keep = false

    func validate() throws {
        guard window <= SoakJournal.slotCount else {
            throw ValidationError("--window must be at most \(SoakJournal.slotCount)")
        }
        guard (1...64).contains(writers) else { throw ValidationError("--writers must be in 1...64") }
        guard kills >= 0 else { throw ValidationError("--kills must not be negative") }
        guard intervalMilliseconds > 0 else { throw ValidationError("--interval-ms must be positive") }
        guard window > 0 else { throw ValidationError("--window must be positive") }
    }

    struct Writer {
        let process: ChildProcess
        let journal: SoakJournal
    }

    func run() throws {
        StopSignals.install()
        guard access(path, F_OK) != 0 else { throw ValidationError("\(path) exists; the soak creates its own cache") }
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: capacity)
        _ = try SharedCache(path: path, policy: .require(geometry))
        let journals = path + ".journals"
        mkdir(journals, 0o755)
        defer {
            if !keep {
                unlink(path)
                try? FileManager.default.removeItem(atPath: journals)
            }
        }
        let inspector = try CacheInspector(path: path)
        let started = ContinuousClock.now
        var random = SplitMix64(seed: seed)
        var spawned = 0
        var problems: [String] = []
        func problem(_ text: String) {
            if problems.count < 20 { FileHandle.standardError.write(Data("soak: \(text)\n".utf8)) }
            problems.append(text)
        }

        // The inspector tells owners apart by pid: a new writer must not reuse a dead one's pid
        // (pids wrap, at 32768 by default). A writer waits for `go` before it touches the cache,
        // so one with a reused pid is killed before it did anything, and another is started.
        var usedPIDs: Set<pid_t> = []
        var pidReuses = 0
        func startWriter() throws -> Writer {
            while true {
                let journal = try SoakJournal(path: "\(journals)/writer-\(spawned).journal", creating: true)
                let arguments = [
                    "soak-writer", path, "--journal", journal.path, "--window", "\(window)", "--seed",
                    "\(seed &* 1000 &+ UInt64(spawned))",
                ]
                spawned += 1
                let process: ChildProcess
                do {
                    process = try ChildProcess.spawn(
                        ChildProcess.currentExecutable, arguments, blocking: StopSignals.signals)
                } catch {
                    throw ValidationError("cannot start a writer: \(error)")
                }
                if usedPIDs.insert(process.pid).inserted {
                    journal[.go] = 1
                    return Writer(process: process, journal: journal)
                }
                pidReuses += 1
                process.send(SIGKILL)
                _ = process.wait()
                journal.unmap()
            }
        }

        var live = try (0..<writers).map { _ in try startWriter() }
        var deadHeld = 0  // what the dead held, by their journals resolved by the inspector
        var midOperation = 0  // kills that landed between a journal's pending mark and its commit
        var resolvedAsPending = 0  // … of which the operation had gone through
        var killed = 0
        var snapshots = 0
        var deadSummary = (operations: 0, verifications: 0, mismatches: 0)

        while killed < kills, !StopSignals.requested {
            let pause = Double(intervalMilliseconds) * (0.5 + Double(random.next() % 1000) / 1000) / 1000
            StopSignals.sleep(seconds: pause)
            if StopSignals.requested { break }
            let victim = live.remove(at: Int(random.next() % UInt64(live.count)))
            if let early = victim.process.poll() { problem("writer \(victim.process.pid) ended by itself: \(early)") }
            victim.process.send(SIGKILL)
            let ending = victim.process.wait()
            killed += 1
            live.append(try startWriter())

            // The inspector, right after the kill: every word valid, and the dead writer's bytes
            // one of the totals its journal allows.
            // A live writer preempted between claiming a node and writing its header leaves the
            // node's previous header in place for a moment; if that was the dead writer's, one
            // snapshot over-counts it. Such a reading does not repeat: a real discrepancy does.
            let pid = victim.process.pid
            let possible = victim.journal.possibleHeldBytes
            var statistics: CacheStatistics
            var attributed = 0
            var attempts = 0
            repeat {
                let snapshot = try inspector.snapshot()
                snapshots += 1
                attempts += 1
                statistics = CacheStatistics(snapshot)
                attributed = statistics.owners?.first { $0.pid == pid }?.bytes ?? 0
            } while !possible.contains(attributed) && attempts < 3
            if statistics.invalidWords != 0 { problem("kill \(killed): \(statistics.invalidWords) invalid words") }
            if victim.journal[.pendingKind] != SoakJournal.Pending.none.rawValue {
                midOperation += 1
                if attributed == Int(victim.journal[.pendingHeldBytes]) && attributed != Int(victim.journal[.heldBytes])
                {
                    resolvedAsPending += 1
                }
            }
            if !possible.contains(attributed) {
                problem(
                    "kill \(killed) (pid \(pid), \(ending)): the inspector attributes \(attributed) bytes, the journal allows \(possible.sorted())"
                )
                for line in Self.unexplainedAllocations(path: path, pid: pid, journal: victim.journal) { problem(line) }
            }
            deadHeld += attributed
            deadSummary.operations += Int(victim.journal[.operations])
            deadSummary.verifications += Int(victim.journal[.verifications])
            deadSummary.mismatches += Int(victim.journal[.mismatches])
            if victim.journal[.mismatches] != 0 {
                problem("writer \(pid) saw \(victim.journal[.mismatches]) damaged allocations")
            }
            victim.journal.unmap()
        }

        // The survivors stop, verify and free what they hold, and exit 0.
        var liveSummary = (operations: 0, verifications: 0, mismatches: 0)
        for writer in live { writer.process.send(SIGTERM) }
        for writer in live {
            let ending = writer.process.wait()
            let journal = writer.journal
            if ending != .exited(0) { problem("surviving writer \(writer.process.pid): \(ending)") }
            if journal[.finished] != 1 || journal[.heldBytes] != 0 {
                problem(
                    "surviving writer \(writer.process.pid) did not free everything (holds \(journal[.heldBytes]) bytes)"
                )
            }
            if journal[.errors] != 0 {
                problem("surviving writer \(writer.process.pid): \(journal[.errors]) refused frees")
            }
            liveSummary.operations += Int(journal[.operations])
            liveSummary.verifications += Int(journal[.verifications])
            liveSummary.mismatches += Int(journal[.mismatches])
            if journal[.mismatches] != 0 {
                problem("writer \(writer.process.pid) saw \(journal[.mismatches]) damaged allocations")
            }
            journal.unmap()
        }

        let final = try inspector.snapshot()
        let statistics = CacheStatistics(final)
        let leaked = statistics.leakedBytes ?? -1
        let attributedToAll = statistics.owners?.reduce(0) { $0 + $1.bytes } ?? 0
        // A kill between an allocation's claim and its header write leaves a node no owner can
        // be read from: allocated, not attributed to anyone.
        let unattributed = statistics.allocatedBytes - attributedToAll
        if statistics.invalidWords != 0 { problem("at the end: \(statistics.invalidWords) invalid words") }
        if leaked != deadHeld { problem("leaked \(leaked) bytes, but the dead writers held \(deadHeld)") }
        if (statistics.aliveOwnerCount ?? 0) != 0 {
            problem("owners still alive at the end: \(statistics.aliveOwnerCount ?? -1)")
        }
        if unattributed != 0 && unattributed > midOperation * geometry.blockSize {
            problem("\(unattributed) allocated bytes belong to no readable header")
        }
        let seconds = Double((ContinuousClock.now - started) / .milliseconds(1)) / 1000
        print(
            "soak: kills=\(killed) writers=\(writers) spawned=\(spawned) seconds=\(String(format: "%.1f", seconds)) "
                + "operations=\(deadSummary.operations + liveSummary.operations) "
                + "verifications=\(deadSummary.verifications + liveSummary.verifications) "
                + "mismatches=\(deadSummary.mismatches + liveSummary.mismatches) snapshots=\(snapshots + 1) "
                + "invalidWords=\(statistics.invalidWords) leakedBytes=\(leaked) deadHeldBytes=\(deadHeld) "
                + "deadOwners=\(statistics.owners?.filter { !$0.alive }.count ?? -1) midOperation=\(midOperation) "
                + "resolvedAsPending=\(resolvedAsPending) unattributedBytes=\(unattributed) pidReuses=\(pidReuses) problems=\(problems.count)"
        )
        if !problems.isEmpty { throw ExitCode.failure }
    }
}

extension Soak {
    /// The allocations whose header names `pid` but which the journal's slots do not list, and the
    /// slots no such allocation backs: what to look at when the totals disagree.
    static func unexplainedAllocations(path: String, pid: pid_t, journal: SoakJournal) -> [String] {
        guard let cache = try? SharedCache(path: path, policy: .attach) else { return ["(cannot attach to diagnose)"] }
        var slots = journal.heldOffsets
        var lines: [String] = []
        for block in cache.layout.nullBlockCount..<cache.geometry.blockCount {
            let word = cache.word(ofBlock: block)
            cache.geometry.forEachAllocation(inWord: word, ofBlock: block) { allocation in
                let raw = (cache.base + allocation.nodeOffset).load(as: UInt64.self)
                guard let header = AllocationHeader(rawValue: raw), header.ownerPID == pid else { return }
                let offset = UInt64(allocation.offset)
                if slots.remove(offset) == nil {
                    lines.append(
                        "  not in the journal: offset 0x\(String(offset, radix: 16)) block \(block) node \(allocation.node) "
                            + "order \(allocation.order) (header order \(header.order), \(header.requestedSize) B) "
                            + "word 0x\(String(word, radix: 16))")
                }
            }
        }
        for offset in slots.sorted() {
            lines.append("  in the journal, not allocated to the pid: offset 0x\(String(offset, radix: 16))")
        }
        return lines
    }
}
