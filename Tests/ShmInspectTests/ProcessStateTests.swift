// What became of an owner process: alive, a zombie (exited, not reaped) or dead, with pid reuse
// told apart by start time; and a zombie's allocations counted as leaked.

import ShmAlloc
import ShmFormat
import ShmSystem
import ShmTestSupport
import Testing

@testable import ShmInspect

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Process states")
struct ProcessStateTests {
    /// Spawns `executable` with `arguments`, its output discarded, and waits (up to 10 s) until it
    /// has exited without being reaped: a zombie until the caller waits for it.
    static func zombie(_ executable: String, _ arguments: [String] = []) throws -> ChildProcess {
        let null = open("/dev/null", O_WRONLY | O_CLOEXEC)
        defer { close(null) }
        let child = try ChildProcess.spawn(executable, arguments, standardOutput: null)
        let deadline = ContinuousClock.now + .seconds(10)
        while ProcessState(pid: child.pid) != .zombie, ContinuousClock.now < deadline { usleep(1_000) }
        return child
    }

    @Test("this process is alive, with a start time that names it; another start time means the pid was reused")
    func currentProcess() throws {
        let start = try #require(ProcessState.startTime(ofProcess: getpid()))
        #expect(ProcessState(pid: getpid()) == .alive)
        #expect(ProcessState(pid: getpid(), expectedStartTime: start) == .alive)
        #expect(ProcessState(pid: getpid(), expectedStartTime: start + 1) == .dead)
        #expect(ProcessState.commandName(ofProcess: getpid())?.isEmpty == false)
    }

    @Test("a pid that no process has is dead, and has no start time nor name")
    func missingProcess() {
        // Above any pid_max Linux allows (2^22).
        for pid: Int32 in [Int32.max, 0, -1] {
            #expect(ProcessState(pid: pid) == .dead)
            #expect(ProcessState.startTime(ofProcess: pid) == nil)
            #expect(ProcessState.commandName(ofProcess: pid) == nil)
        }
    }

    @Test("a child that exited and is not reaped yet is a zombie, with its name and start time; reaped, it is dead")
    func zombieChild() throws {
        let child = try Self.zombie("/bin/true")
        #expect(ProcessState(pid: child.pid) == .zombie)
        let start = try #require(ProcessState.startTime(ofProcess: child.pid))
        #expect(ProcessState(pid: child.pid, expectedStartTime: start) == .zombie)
        #expect(ProcessState.commandName(ofProcess: child.pid) == "true")
        #expect(child.wait() == .exited(0))
        #expect(ProcessState(pid: child.pid, expectedStartTime: start) == .dead)
    }

    @Test("a stat line's state letter: Z is a zombie, X and x are dead, the rest alive")
    func stateLetters() throws {
        /// A stat line of `comm` in state `state` that started at tick 987654 (field 22).
        func state(_ letter: String) throws -> ProcessState {
            let middle = (4...21).map(String.init).joined(separator: " ")
            let line = Array("4242 (sh) R 1) \(letter) \(middle) 987654 23 24 25\n".utf8)
            return ProcessState(try #require(line.withUnsafeBytes { ProcessStatLine(parsing: $0) }))
        }
        #expect(try state("Z") == .zombie)
        #expect(try state("X") == .dead && state("x") == .dead)
        #expect(try state("S") == .alive && state("D") == .alive && state("T") == .alive && state("R") == .alive)
    }

    @Test("a zombie owner's allocations count as leaked, and its state is reported in text and JSON")
    func zombieOwnerLeaks() throws {
        let file = TemporaryFile("zombie")
        defer { file.remove() }
        let cache = try file.createCache(smallGeometry)
        _ = try cache.allocate(100)
        let theirs = [10, 300]
        let child = try Self.zombie(BuiltProducts.fixture, [file.path] + theirs.map(String.init))
        defer { _ = child.wait() }
        let snapshot = try CacheInspector(path: file.path).snapshot()
        let statistics = CacheStatistics(snapshot)
        let owner = try #require(statistics.owners?.first { $0.pid == child.pid })
        #expect(owner.state == .zombie && !owner.alive)
        #expect(statistics.owners?.first { $0.pid == getpid() }?.state == .alive)
        // A live owner is named by its command; a zombie's is no longer shown.
        #expect(
            statistics.owners?.first { $0.pid == getpid() }?.command == ProcessState.commandName(ofProcess: getpid()))
        #expect(owner.command == nil)
        #expect(statistics.aliveOwnerCount == 1)
        #expect(statistics.leakedBytes == theirs.map { nodeSize($0) }.reduce(0, +))
        let row = SnapshotText(ascii: true).owners(statistics).split(separator: "\n").first {
            $0.hasPrefix("\(child.pid) ")
        }
        #expect(row?.split(separator: " ").dropFirst().first == "zombie", "\(String(describing: row))")
        // Both keys: `alive` as before, `state` beside it.
        let json = SnapshotReport(snapshot: snapshot, statistics: statistics).jsonText()
        #expect(json.contains("\"alive\" : false") && json.contains("\"state\" : \"zombie\""))
        #expect(json.contains("\"command\" : \""), "the live owner's command is in the JSON")
    }
}

@Suite("Header census")
struct HeaderCensusTests {
    @Test("a header that does not decode is in flight when its block changed since the copy, damaged when it did not")
    func inFlightAgainstDamaged() throws {
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20)
        var builder = AllocationCensus.Builder(geometry: geometry)
        let good = AllocationHeader(ownerPID: 77, requestedSize: 20, order: 0).rawValue
        builder.add(rawHeader: good, order: 0, blockChanged: true)
        builder.add(rawHeader: 0, order: 0, blockChanged: true)
        builder.add(rawHeader: 0, order: 1, blockChanged: false)
        // An owner-less header named by an intent belongs to the claimer, changed block or not.
        builder.add(
            rawHeader: AllocationHeader(ownerPID: 0, requestedSize: 20, order: 0).rawValue, order: 0, claimer: 99,
            blockChanged: true)
        let census = builder.census { _ in .dead }
        #expect(census.inFlightHeaders == 1 && census.unreadableHeaders == 1)
        #expect(Set(census.owners.map(\.pid)) == [77, 99])
    }

    @Test(
        "a live view's owner states: the owner table read again after the period or for a new owner; states read once per period"
    )
    func ownerStatesPeriod() {
        var states = OwnerStates(period: .seconds(1))
        let start = ContinuousClock.now
        let me = getpid()
        #expect(states.needsOwnerTable(for: [me], at: start), "nothing read yet")
        states.replaceRegistry(OwnerRegistry(), pids: [me], at: start)
        states.check([me], at: start)
        #expect(states.state(of: me) == .alive && states.command(of: me) != nil)
        #expect(!states.needsOwnerTable(for: [me], at: start + .milliseconds(500)))
        #expect(states.needsOwnerTable(for: [me, 1], at: start + .milliseconds(500)), "a new owner")
        #expect(states.needsOwnerTable(for: [me], at: start + .seconds(1)), "the period is over")
        #expect(OwnerStates().needsOwnerTable(for: [], at: start), "a one-shot census reads everything")
    }
}
