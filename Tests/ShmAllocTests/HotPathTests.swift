// The hot paths under a signal storm and under a heap-allocation counter, in the debug build the
// tests run with and in a release build of the helper.
//
// Why a nested release build: optimisation changes what the hot path calls (inlining, generic
// specialisation), so a debug-only result says little about the shipped library. SwiftPM cannot
// build one product of the test's own graph in another configuration, so the test runs
// `swift build -c release --product shm-test-helper` into its own scratch directory next to the
// test bundle's (a different directory, so it never waits on the lock the running `swift test`
// holds). Measured on a fresh clone (2 cores): the whole release test, cold build included, took
// 19 s; later runs reuse the build and take about 12 s, mostly the two helper runs.

import Foundation
import ShmAlloc
import ShmFormat
import ShmSystem
import ShmTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension MultiProcessTests {
    /// Runs the `signals` helper in `processes` processes at once on one cache: a loop allocating
    /// and freeing while a 50 µs SIGALRM timer's handler allocates and frees too. A deadlock would
    /// hang it: the deadline turns that into a failure. (`scripts/soak.sh signals` is the long run.)
    static func expectSignalSafety(
        helper: String, processes: Int = 1, seconds: Double = 1.5, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("signals.shm")
        let cache = try makeCache(at: path, geometry: geometry)
        let runs = try (0..<processes).map { index in
            try TestProcess(helper, ["signals", path, "\(seconds)"], in: scratch)
        }
        for run in runs {
            #expect(
                run.wait(timeout: .seconds(30 + 3 * seconds)) == .exited(0), "\(run.outputTail)",
                sourceLocation: sourceLocation)
            #expect(run.result("handlerFailures") == 0, sourceLocation: sourceLocation)
            #expect(run.result("mismatches") == 0, sourceLocation: sourceLocation)
            #expect(
                run.result("handlerRuns") > 1000, "the timer must have interrupted the loop often: \(run.outputTail)",
                sourceLocation: sourceLocation)
            #expect(run.result("loops") > 1000, sourceLocation: sourceLocation)
        }
        #expect(cache.invalidBlocks == [], sourceLocation: sourceLocation)
        #expect(cache.usedBlocks == [], sourceLocation: sourceLocation)
    }

    /// Runs the `heap` helper: one million allocate/free pairs of mixed sizes under the malloc
    /// interposer must make no heap allocation; a bracketed control `malloc` must count as one.
    static func expectNoHeapAllocations(helper: String, sourceLocation: SourceLocation = #_sourceLocation) throws {
        let scratch = try ScratchDirectory()
        let path = scratch.file("heap.shm")
        let cache = try makeCache(at: path, geometry: geometry)
        let run = try runToEnd(helper, ["heap", path, "1000000"], in: scratch, timeout: .seconds(60))
        #expect(run.termination == .exited(0), "\(run.outputTail)", sourceLocation: sourceLocation)
        #expect(
            run.result("control") == 1, "the counter must see a malloc: \(run.outputTail)",
            sourceLocation: sourceLocation)
        #expect(run.result("pairs") == 1_000_000, sourceLocation: sourceLocation)
        #expect(run.result("failures") == 0, sourceLocation: sourceLocation)
        #expect(run.result("mallocs") == 0, "\(run.outputTail)", sourceLocation: sourceLocation)
        #expect(cache.usedBlocks == [], sourceLocation: sourceLocation)
    }

    @Test("signal handlers allocate and free while the interrupted thread does (debug build)")
    func signalSafetyDebug() throws {
        try Self.expectSignalSafety(helper: BuiltProducts.helper)
    }

    @Test(
        "4 processes at once, each interrupted by SIGALRM every 50 µs whose handler allocates and frees (debug build)")
    func signalSafetyFourProcesses() throws {
        try Self.expectSignalSafety(helper: BuiltProducts.helper, processes: 4, seconds: 2)
    }

    @Test("zero heap allocations over 1 M allocate/free pairs (debug build)")
    func noHeapAllocationsDebug() throws {
        try Self.expectNoHeapAllocations(helper: BuiltProducts.helper)
    }

    @Test("release build: signal safety and zero heap allocations (allocator and path cache)", .timeLimit(.minutes(10)))
    func releaseBuild() throws {
        let helper = try ReleaseHelper.build()
        try Self.expectSignalSafety(helper: helper)
        try Self.expectNoHeapAllocations(helper: helper)
        try MultiProcessTests.expectPathSignalSafety(helper: helper)
        try MultiProcessTests.expectNoPathHeapAllocations(helper: helper)
    }
}

/// Builds `shm-test-helper` in release configuration, once per test scratch directory.
enum ReleaseHelper {
    struct BuildFailed: Error, CustomStringConvertible {
        let output: String
        var description: String { "swift build -c release failed:\n\(output)" }
    }

    /// The running test's SwiftPM scratch directory: the ancestor of the bundle that holds
    /// SwiftPM's `workspace-state.json`.
    static var testScratchDirectory: String? {
        var directory = URL(fileURLWithPath: BuiltProducts.directory)
        while directory.path != "/" {
            if FileManager.default.fileExists(atPath: directory.appendingPathComponent("workspace-state.json").path) {
                return directory.path
            }
            directory.deleteLastPathComponent()
        }
        return nil
    }

    static func build() throws -> String {
        let scratch = try ScratchDirectory()
        let releaseScratch = (testScratchDirectory ?? BuiltProducts.directory) + "/release-helper"
        let run = try runToEnd(
            "/usr/bin/env",
            [
                "swift", "build", "-c", "release", "--product", "shm-test-helper",
                "--package-path", BuiltProducts.packageRoot, "--scratch-path", releaseScratch,
            ],
            in: scratch, timeout: .seconds(540))
        guard run.termination == .exited(0) else { throw BuildFailed(output: run.outputTail) }
        return releaseScratch + "/release/shm-test-helper"
    }
}
