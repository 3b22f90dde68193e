// `crash PATH POINT HIT SEED`: a deterministic single-threaded workload that runs until the armed
// crash point kills it (Tests/ShmAllocTests/CrashPointTests.swift). Exits 1 when the point was
// not reached HIT times, so a test can tell "killed there" from "never got there".

@_spi(CrashTesting) import ShmAlloc
import ShmFormat
import ShmSystem
import ShmWorkloads

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

#if SHM_CRASH_POINTS
    /// Churns mixed sizes with many whole-block requests (a full block is what a search takes out of
    /// the index, and what a free must list again) and a few hundred live allocations. Only for the
    /// repair pass's own point does it fill the cache (a failing search runs the pass and sets the
    /// header's one-second repair deadline, which would keep the test's fill from repairing).
    func crashWorkload(path: String, point: CrashPoint, hit: Int, seed: UInt64) -> Never {
        let cache = attach(path)
        let geometry = cache.geometry
        var random = SplitMix64(seed: seed)
        var live: [ShmOffset] = []
        live.reserveCapacity(geometry.blockCount * geometry.tree.leafCount)
        CrashPoints.arm(point, hit: hit)

        func freeOne() {
            let index = random.below(live.count)
            live.swapAt(index, live.count - 1)
            do { try cache.free(live.removeLast()) } catch { fail("free: \(error)") }
        }
        for _ in 0..<200 {
            for _ in 0..<2000 {
                if live.count < 400, live.isEmpty || random.below(3) != 0 {
                    let size = random.below(4) == 0 ? geometry.largestRequest : mixedRequestSize(geometry, &random)
                    if let offset = try? cache.allocate(size) { live.append(offset) }
                } else {
                    freeOne()
                }
            }
            if point == .repairMidway {
                // Past the first failure: a failing search repairs (at most once a second).
                while let offset = try? cache.allocate(mixedRequestSize(geometry, &random)) { live.append(offset) }
                for _ in 0..<(live.count / 2) { freeOne() }
            }
        }
        fail("crash point \(point) was not reached \(hit) times")
    }
#endif

#if SHM_CRASH_POINTS
    /// `register-crash PATH`: attaches, which registers this process in the owner table, with
    /// `ownerEntryClaimed` armed: killed between claiming its entry and zeroing its path counters.
    func registrationCrash(path: String) -> Never {
        CrashPoints.arm(.ownerEntryClaimed)
        _ = attach(path)
        fail("crash point ownerEntryClaimed was not reached")
    }
#endif

// MARK: - fork

/// `fork PATH`: attaches, allocates, then forks; the child allocates through the inherited cache
/// (registering itself in the owner table on that first allocation) and both exit without freeing.
/// Prints `parent=PID child=PID`.
func forkAndAllocate(path: String) -> Never {
    let cache = attach(path)
    guard (try? cache.allocate(100)) != nil else { fail("parent allocation failed") }
    let child = fork()
    guard child >= 0 else { fail("fork: \(errno)") }
    if child == 0 {
        // Only async-signal-safe work in the child of a possibly multi-threaded parent: the
        // allocator's hot path and its first-use registration (open, read, close) are.
        _exit((try? cache.allocate(200)) != nil ? 0 : 3)
    }
    var status: Int32 = 0
    guard waitpid(child, &status, 0) == child, status == 0 else { fail("child ended with status \(status)") }
    FileDescriptor.standardOutput.writeLine("parent=\(getpid()) child=\(child)")
    exit(0)
}
