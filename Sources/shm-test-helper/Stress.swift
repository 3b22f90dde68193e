// The stress and creation-race roles: many threads allocating, filling, verifying and freeing; many
// processes opening one new file at the same instant.

import ShmAlloc
import ShmFormat
import ShmSystem
import ShmWorkloads
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

// MARK: - stress

/// Allocates mixed sizes, fills each allocation with its own pattern, and verifies it before
/// freeing; keeps up to `window` allocations live per thread. Prints the totals.
///
/// With `fillingFirst` (the optional sixth argument `fill-first`), each thread first allocates
/// without freeing and beyond `window` until the cache refuses it once, and only then runs the
/// mixed loop until the deadline: every thread meets an out-of-space however fast the machine and
/// however late the other workers start. That first phase needs no deadline of its own, since a
/// thread that only allocates fills the cache (or gets what others free) within capacity / `min
/// size` allocations.
func stress(path: String, seconds: Double, threadCount: Int, window: Int, fillingFirst: Bool) {
    let cache = attach(path)
    let deadline = SystemClock.monotonicNanoseconds() &+ UInt64(seconds * 1e9)
    let allocations = Atomic<Int>(0)
    let outOfSpace = Atomic<Int>(0)
    let mismatches = Atomic<Int>(0)
    let errors = Atomic<Int>(0)
    let pid = UInt64(UInt32(bitPattern: getpid()))

    _ = onThreads(threadCount) { thread in
        var random = SplitMix64(
            seed: pid &* 0x9E37_79B9 &+ UInt64(thread) &* 0x7F4A_7C15 &+ SystemClock.monotonicNanoseconds())
        var live: [LiveAllocation] = []
        live.reserveCapacity(window)
        var sequence: UInt64 = 0
        var done = 0
        var full = 0
        var filling = fillingFirst

        func release(_ allocation: LiveAllocation) {
            if !patternMatches(
                cache.base + Int(allocation.offset.rawValue), count: allocation.size, tag: allocation.tag)
            {
                mismatches.add(1, ordering: .relaxed)
                reportProblem("pattern mismatch at \(allocation.offset), size \(allocation.size)")
            }
            do { try cache.free(allocation.offset) } catch {
                errors.add(1, ordering: .relaxed)
                reportProblem("free: \(error)")
            }
        }

        while true {
            if !filling, done & 255 == 0, SystemClock.monotonicNanoseconds() >= deadline { break }
            if filling || live.count < window && (live.isEmpty || random.below(2) == 0) {
                let size = mixedRequestSize(cache.geometry, &random)
                do throws(AllocationError) {
                    let offset = try cache.allocate(size)
                    sequence &+= 1
                    // pid in the top half, thread and sequence below: unique across the whole run.
                    let tag = pid &<< 32 | UInt64(thread) &<< 24 | sequence & 0xFF_FFFF
                    fillPattern(cache.base + Int(offset.rawValue), count: size, tag: tag)
                    live.append(LiveAllocation(offset: offset, size: size, tag: tag))
                    done &+= 1
                } catch .outOfSpace {
                    full &+= 1
                    filling = false
                    if !live.isEmpty { release(live.removeLast()) }
                } catch {
                    errors.add(1, ordering: .relaxed)
                    reportProblem("allocate(\(size)): \(error)")
                }
            } else {
                let index = random.below(live.count)
                live.swapAt(index, live.count - 1)
                release(live.removeLast())
            }
        }
        for allocation in live { release(allocation) }
        allocations.add(done, ordering: .relaxed)
        outOfSpace.add(full, ordering: .relaxed)
    }
    FileDescriptor.standardOutput.writeLine(
        "allocations=\(allocations.load(ordering: .relaxed)) outOfSpace=\(outOfSpace.load(ordering: .relaxed)) "
            + "mismatches=\(mismatches.load(ordering: .relaxed)) errors=\(errors.load(ordering: .relaxed))")
    if mismatches.load(ordering: .relaxed) != 0 || errors.load(ordering: .relaxed) != 0 { exit(1) }
}

// MARK: - open

/// Waits for wall-clock `startNanoseconds` (the start barrier shared by all racers), opens the
/// path, and prints what it found.
func openAtBarrier(path: String, geometry: Geometry, startNanoseconds: UInt64) {
    while SystemClock.wallNanoseconds() < startNanoseconds {}  // spin: a sleep would spread the start
    do {
        let cache = try SharedCache(path: path, policy: .createIfNeeded(geometry))
        let header = cache.header
        FileDescriptor.standardOutput.writeLine(
            "pid=\(getpid()) creator=\(header.creatorPID) createdAt=\(header.createdAtNanoseconds) "
                + "geometry=\(header.geometry.minSize),\(header.geometry.maxSize),\(header.geometry.blockCount)")
    } catch {
        fail("\(error)")
    }
}
