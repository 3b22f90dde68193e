// What the helper's roles share: output, failing, attaching, request sizes and the pattern every
// allocation carries. Everything a signal handler calls here is concrete (no generics): a debug
// build would run generic code through runtime metadata, whose lock a handler must not wait for.

@_spi(CrashTesting) import ShmAlloc
import ShmFormat
import ShmSystem
import ShmWorkloads
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// How many problem lines a worker has printed; after 20 it only counts them.
let problemLines = Atomic<Int>(0)

/// Prints one problem line to stderr, unless 20 were printed already (the counts in the result
/// line tell the whole story).
func reportProblem(_ message: String) {
    if problemLines.add(1, ordering: .relaxed).newValue <= 20 { FileDescriptor.standardError.writeLine(message) }
}

/// Reports a problem and exits with status 1.
func fail(_ message: String) -> Never {
    FileDescriptor.standardError.writeLine("shm-test-helper: \(message)")
    exit(1)
}

func attach(_ path: String) -> SharedCache {
    do { return try SharedCache(path: path, policy: .attach) } catch { fail("\(error)") }
}

/// A request size spread over every size class: pick an order, then a size that needs exactly it.
func mixedRequestSize(_ geometry: Geometry, _ random: inout SplitMix64) -> Int {
    let order = random.below(geometry.orderCount)
    let largest = geometry.nodeSize(ofOrder: order) &- AllocationHeader.size
    let smallest = order == 0 ? 1 : geometry.nodeSize(ofOrder: order &- 1) &- AllocationHeader.size &+ 1
    return smallest &+ random.below(largest &- smallest &+ 1)
}

// MARK: - The pattern every allocation carries (the soak writers' too)

/// Fills `count` bytes with words derived from `tag` (which names process, thread and sequence),
/// so any overlap with another allocation shows up as a mismatch when either side verifies.
func fillPattern(_ start: UnsafeMutableRawPointer, count: Int, tag: UInt64) {
    var index = 0
    while index &+ 8 <= count {
        start.storeBytes(of: tag &+ UInt64(index), toByteOffset: index, as: UInt64.self)
        index &+= 8
    }
    while index < count {
        start.storeBytes(
            of: UInt8(truncatingIfNeeded: tag &>> UInt64((index & 7) &* 8)), toByteOffset: index, as: UInt8.self)
        index &+= 1
    }
}

/// True when the bytes still hold what ``fillPattern(_:count:tag:)`` wrote.
func patternMatches(_ start: UnsafeRawPointer, count: Int, tag: UInt64) -> Bool {
    var index = 0
    while index &+ 8 <= count {
        if start.load(fromByteOffset: index, as: UInt64.self) != tag &+ UInt64(index) { return false }
        index &+= 8
    }
    while index < count {
        if start.load(fromByteOffset: index, as: UInt8.self)
            != UInt8(truncatingIfNeeded: tag &>> UInt64((index & 7) &* 8))
        {
            return false
        }
        index &+= 1
    }
    return true
}

/// One live allocation of a worker.
struct LiveAllocation {
    let offset: ShmOffset
    let size: Int
    let tag: UInt64
}
