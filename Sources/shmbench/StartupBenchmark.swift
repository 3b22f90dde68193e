// What preloading the C library costs a process: starts of /bin/true with `LD_PRELOAD` of
// libshm_alloc.so and `SHM_FILE` set (its load-time initialiser notes the path; the first call
// that needs the cache maps it, and /bin/true makes none), against bare starts, measured side by
// side: the two kinds alternate start by start, so drift on a busy machine falls on both alike.

import Foundation
import ShmAlloc
import ShmSystem

/// The `startup` group. Needs `libshm_alloc.so` beside this executable (`swift build -c release
/// --product shm_alloc` puts it there) or at `--library`.
struct StartupBenchmark {
    let runs: Int
    let scratch: Scratch
    let library: String
    /// Starts of each kind per run.
    static let starts = 200
    static let program = "/bin/true"

    struct LibraryMissing: Error, CustomStringConvertible {
        let path: String
        var description: String {
            "startup: no \(path); build it first: swift build -c release --product shm_alloc"
        }
    }

    func run(into table: inout ResultTable) throws {
        guard FileManager.default.fileExists(atPath: library) else { throw LibraryMissing(path: library) }
        let cache = try scratch.cache(capacity: 512 << 20)
        defer { scratch.remove(cache) }
        let bare = Self.environment(removing: ["LD_PRELOAD", "SHM_FILE"])
        let preloaded = bare + ["LD_PRELOAD=" + library, "SHM_FILE=" + cache.path]

        var bareTimes: [Double] = []
        var preloadedTimes: [Double] = []
        for _ in 0..<runs {
            var bareNanoseconds: UInt64 = 0
            var preloadedNanoseconds: UInt64 = 0
            for _ in 0..<Self.starts {
                bareNanoseconds += try Self.timeOneStart(environment: bare)
                preloadedNanoseconds += try Self.timeOneStart(environment: preloaded)
            }
            bareTimes.append(Double(bareNanoseconds) / Double(Self.starts) / 1e6)
            preloadedTimes.append(Double(preloadedNanoseconds) / Double(Self.starts) / 1e6)
        }
        let bareStart = median(bareTimes)
        let preloadedStart = median(preloadedTimes)
        let section = "start-up: \(Self.starts) starts of \(Self.program), side by side"
        table.add(ResultRow(section: section, workload: "bare start", value: bareStart, unit: "ms"))
        table.add(
            ResultRow(
                section: section, workload: "start with LD_PRELOAD=libshm_alloc.so, SHM_FILE set",
                value: preloadedStart,
                unit: "ms", baseline: bareStart, baselineName: "bare", ratio: preloadedStart / bareStart,
                ratioName: "bare",
                target: "≤ 1.1× bare", met: preloadedStart <= bareStart * 1.1, original: "0.99×"))
    }

    /// This process's environment without the variables named.
    static func environment(removing names: [String]) -> [String] {
        ProcessInfo.processInfo.environment
            .filter { !names.contains($0.key) }
            .map { "\($0.key)=\($0.value)" }
    }

    /// Starts `program` with `environment`, waits for it, and returns the nanoseconds from the
    /// spawn to the reaped exit.
    static func timeOneStart(environment: [String]) throws -> UInt64 {
        let arguments = [strdup(program), nil]
        let variables = environment.map { strdup($0) } + [nil]
        defer {
            for pointer in arguments + variables { free(pointer) }
        }
        let started = SystemClock.monotonicNanoseconds()
        var pid: pid_t = 0
        let status = posix_spawn(&pid, program, nil, nil, arguments, variables)
        guard status == 0 else { throw POSIXError(POSIXErrorCode(rawValue: status) ?? .EIO) }
        var exitStatus: Int32 = 0
        while waitpid(pid, &exitStatus, 0) < 0 && errno == EINTR {}
        let elapsed = SystemClock.monotonicNanoseconds() - started
        guard exitStatus == 0 else { throw POSIXError(.ECHILD) }
        return elapsed
    }
}
