// Worker processes for ShmAllocTests: each subcommand is one role in a multi-process test.
// Results go to stdout as `key=value` words on one line; problems go to stderr and make the
// exit status non-zero, so the test can assert on both.
//
//   stress  PATH SECONDS THREADS WINDOW   allocate/fill/verify/free in THREADS threads
//   open    PATH MIN MAX CAPACITY START_NS  open a (new) path at wall-clock START_NS, print what it saw
//   signals PATH SECONDS                   allocate/free in a loop while SIGALRM handlers do the same
//                                          (for SECONDS, and at least 1001 runs of each)
//   heap    PATH PAIRS                     count heap allocations over PAIRS allocate/free pairs
//   crash   PATH POINT HIT SEED            churn until the HIT-th reach of crash point POINT kills it
//   register-crash PATH                    attach, killed between claiming an owner entry and zeroing its counters
//   fork    PATH                           allocate, fork, allocate in the child; print both pids
//   soak    PATH [options]                 the crash soak (Soak.swift; --help lists the options)
//   paths-writer PATH JOURNAL FIRST THREADS WRITERS OPS   path cache writers (PathWorkloads.swift)
//   paths-crash  PATH POINT HIT SEED JOURNAL               path inserts until a crash point kills it
//   paths-signals PATH                                     path inserts in a loop and in SIGALRM handlers
//   paths-heap   PATH PAIRS                                count heap allocations over PAIRS path inserts
//   paths-count  PATH INSERTS SEARCHES HITS                inserts and searches, counted in the owner entry

@_spi(CrashTesting) import ShmAlloc
import ShmFormat
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - main

/// Swift Testing's threads block most signals and spawned children inherit the mask; a helper
/// must see SIGALRM and SIGTERM whoever started it.
func unblockAllSignals() {
    var none = sigset_t()
    sigemptyset(&none)
    pthread_sigmask(SIG_SETMASK, &none, nil)
}

let arguments = CommandLine.arguments
// The test commands want every signal unblocked at once; the soak's processes start with their
// stop signals blocked and unblock them only once StopSignals has installed its handlers (a
// SIGTERM arriving in between would kill a writer that is still starting).
if !["soak", "soak-writer"].contains(arguments.dropFirst().first) { unblockAllSignals() }
func argument(_ index: Int) -> String {
    guard index < arguments.count else {
        fail("missing argument \(index); usage in Sources/shm-test-helper/main.swift")
    }
    return arguments[index]
}
func integer(_ index: Int) -> Int {
    guard let value = Int(argument(index)) else { fail("argument \(index) is not an integer: \(argument(index))") }
    return value
}
func seconds(_ index: Int) -> Double {
    guard let value = Double(argument(index)) else { fail("argument \(index) is not a number: \(argument(index))") }
    return value
}

switch argument(1) {
case "stress":
    stress(
        path: argument(2), seconds: seconds(3), threadCount: integer(4), window: integer(5),
        fillingFirst: arguments.count > 6 && argument(6) == "fill-first")
case "open":
    do {
        let geometry = try Geometry(minSize: integer(3), maxSize: integer(4), capacity: integer(5))
        openAtBarrier(path: argument(2), geometry: geometry, startNanoseconds: UInt64(integer(6)))
    } catch {
        fail("\(error)")
    }
case "signals":
    signals(path: argument(2), seconds: seconds(3))
case "heap":
    countHeapAllocations(path: argument(2), pairs: integer(3))
case "fork":
    forkAndAllocate(path: argument(2))
case "soak":
    Soak.main(Array(arguments.dropFirst(2)))
case "soak-writer":
    SoakWriter.main(Array(arguments.dropFirst(2)))
case "register-crash":
    #if SHM_CRASH_POINTS
        registrationCrash(path: argument(2))
    #else
        fail("crash points exist only in a debug build of the helper")
    #endif
case "crash":
    #if SHM_CRASH_POINTS
        guard let point = CrashPoint(name: argument(3)) else { fail("unknown crash point \(argument(3))") }
        crashWorkload(path: argument(2), point: point, hit: integer(4), seed: UInt64(integer(5)))
    #else
        fail("crash points exist only in a debug build of the helper")
    #endif
case "paths-writer":
    pathWriters(
        path: argument(2), journal: argument(3), first: integer(4), threads: integer(5), writers: integer(6),
        operations: integer(7))
case "paths-signals":
    pathSignals(path: argument(2))
case "paths-heap":
    countPathHeapAllocations(path: argument(2), pairs: integer(3))
case "paths-count":
    countedPaths(path: argument(2), inserts: integer(3), searches: integer(4), hits: integer(5))
case "paths-crash":
    #if SHM_CRASH_POINTS
        guard let point = CrashPoint(name: argument(3)) else { fail("unknown crash point \(argument(3))") }
        pathCrashWorkload(
            path: argument(2), point: point, hit: integer(4), seed: UInt64(integer(5)), journal: argument(6))
    #else
        fail("crash points exist only in a debug build of the helper")
    #endif
case let command:
    fail("unknown command \(command)")
}
