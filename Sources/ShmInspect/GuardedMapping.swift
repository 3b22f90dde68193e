// Reading a shared mapping of a file that another process may truncate.
//
// Touching a page of a MAP_SHARED mapping that lies past the file's end raises SIGBUS, whose
// default action kills the process: the watcher of a cache that someone truncates would die.
// `pread` reports the same situation as a short read, but copies every byte through the kernel,
// and at 10 refreshes a second of a 4 MiB words region that copy was the largest single cost of
// `shmtop watch`. So the inspector maps the words region and reads it under a guard:
//
// - One process-wide SIGBUS handler, installed on first use, knows the guarded ranges: a fixed
//   table of atomics, so the handler neither allocates nor locks.
// - A fault inside a guarded range maps a private page of zeros over the faulting page (the load
//   that faulted then completes and reads zeros) and counts the fault in the range's row.
// - A reader compares the count before and after reading and discards what it read when it moved.
//   Pages of zeros stay until the owner maps the file afresh over the range (`restore`, once the
//   file is whole again); until then every read reports the fault.
// - A fault outside every guarded range, or a SIGBUS another process sent, restores the handler
//   installed before ours and lets the signal happen again: the process meets that handler (by
//   default, death) as it would have without the guard.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Synchronization
import SystemPackage

/// A read-only shared mapping of a range of a file, whose reads survive the file being truncated
/// under them.
///
/// Reads go through ``read(_:)``, which returns `nil` when a page of the range faulted (the file
/// became shorter than the range) during the read or since the last ``restore(_:)``. The mapping
/// is read only: its pages are `PROT_READ`, and a write would fault.
final class GuardedMapping: @unchecked Sendable {
    // @unchecked: the fields are immutable after `init` but for the atomic `restoredFaults`; the
    // mapped words are read with atomic loads.

    /// The words of the range.
    private let words: UnsafePointer<Atomic<UInt64>>
    /// How many words the range holds.
    let count: Int
    /// The whole mapping (from a page boundary at or before the range).
    private let mapping: UnsafeMutableRawPointer
    private let mappedLength: Int
    /// The file offset `mapping` starts at.
    private let mappedOffset: Int
    /// This mapping's row in the guard table.
    private let slot: Int
    /// The row's fault count when the range was last mapped from the file: reads succeed only
    /// while the count still equals it (no page of zeros in the range).
    private let restoredFaults = Atomic<UInt>(0)

    /// Maps `count` 64-bit words of `descriptor`'s file from byte `offset` (a multiple of 8) and
    /// guards them.
    ///
    /// - Throws: the `Errno` of `mmap`, or `tooManyOpenFiles` when ``GuardTable/capacity``
    ///   mappings are guarded already.
    ///
    /// The C function `mmap`.
    init(_ descriptor: FileDescriptor, offset: Int, count: Int) throws(Errno) {
        precondition(offset >= 0 && offset % 8 == 0 && count > 0, "a range of whole words")
        GuardTable.installHandler()
        let pageSize = GuardTable.pageSize
        mappedOffset = offset & ~(pageSize - 1)
        mappedLength = offset - mappedOffset + count * 8
        guard let mapping = mmap(nil, mappedLength, PROT_READ, MAP_SHARED, descriptor.rawValue, off_t(mappedOffset)),
              mapping != MAP_FAILED
        else { throw Errno(rawValue: errno) }
        self.mapping = mapping
        self.count = count
        words = UnsafePointer((mapping + (offset - mappedOffset)).assumingMemoryBound(to: Atomic<UInt64>.self))
        let start = UInt(bitPattern: mapping)
        guard let slot = GuardTable.register(start..<(start + UInt(mappedLength))) else {
            munmap(mapping, mappedLength)
            throw .tooManyOpenFiles
        }
        self.slot = slot
    }

    deinit {
        GuardTable.unregister(slot)
        munmap(mapping, mappedLength)
    }

    /// Whether a page of the range faulted since it was last mapped from the file.
    var hasFaulted: Bool { GuardTable.faults(slot) != restoredFaults.load(ordering: .acquiring) }

    /// The file offset of the lowest page that faulted since the range was last mapped from the
    /// file (the file was at most this long then), or `nil` when none did.
    var faultedFileOffset: Int? {
        let page = GuardTable.lowestFaultedPage(slot)
        return page == 0 ? nil : mappedOffset + Int(page - UInt(bitPattern: mapping))
    }

    /// Calls `body` with the range's words, or returns `nil` when a page of the range faulted
    /// during the call or since the last ``restore(_:)``: then what `body` read is partly zeros.
    ///
    /// Writers change the words with compare-and-swap at any time: `body` loads a word once where
    /// it needs one consistent value.
    func read<Result>(_ body: (MappedWords) -> Result) -> Result? {
        let faults = GuardTable.faults(slot)
        guard faults == restoredFaults.load(ordering: .acquiring) else { return nil }
        let result = body(MappedWords(base: words))
        // A fault in `body` was counted before the faulting load completed, in this thread.
        return GuardTable.faults(slot) == faults ? result : nil
    }

    /// Maps `descriptor`'s file afresh over the whole range, replacing any pages of zeros, so reads
    /// succeed again; for when the file is back at its full length. A fault during or after this
    /// call makes reads fail again until the next one.
    ///
    /// The C function `mmap` with `MAP_FIXED`.
    func restore(_ descriptor: FileDescriptor) {
        let faults = GuardTable.faults(slot)
        GuardTable.forgetFaultedPage(slot)
        let remapped = mmap(mapping, mappedLength, PROT_READ, MAP_SHARED | MAP_FIXED, descriptor.rawValue, off_t(mappedOffset))
        if remapped == mapping { restoredFaults.store(faults, ordering: .releasing) }
    }
}

/// The live words of a guarded mapping, each load a relaxed atomic load of a whole word.
struct MappedWords: WordLoading {
    let base: UnsafePointer<Atomic<UInt64>>

    /// The word at `index` (stored little-endian, as in the file).
    @inline(__always) func word(at index: Int) -> UInt64 { UInt64(littleEndian: base[index].load(ordering: .relaxed)) }

    /// Plain loads of mapped words compile to vector loads (atomic loads cannot); the bulk test
    /// they serve tolerates words changing under it, and reading them cannot fault other than
    /// the way atomic loads do.
    @inline(__always) func bulkView(from start: Int, count: Int) -> UnsafeBufferPointer<UInt64> {
        UnsafeBufferPointer(start: UnsafeRawPointer(base + start).assumingMemoryBound(to: UInt64.self), count: count)
    }

    /// The words from `index` on.
    func advanced(by index: Int) -> MappedWords { MappedWords(base: base + index) }
}

/// The process-wide table of guarded ranges and the SIGBUS handler that reads it.
///
/// Each row is four atomic words: start, end, the number of faults and the address of the lowest
/// page that faulted since the range was last mapped (0 while none did). A row is free while its start
/// is 0. `register` claims a free row with a compare-and-swap of the start from 0 to 1 (a start
/// of 1 matches no address), writes the end, then the real start; `unregister` clears the start
/// first. So the handler, which reads the start before the end, never matches a range that is
/// half written.
enum GuardTable {
    /// Mappings guarded at once, at most (a process rarely watches more than a few caches).
    static let capacity = 1024

    private static let rowWords = 4
    /// The table; allocated once, before the handler can run, and never freed.
    private nonisolated(unsafe) static let rows: UnsafeMutablePointer<Atomic<UInt>> = {
        let rows = UnsafeMutablePointer<Atomic<UInt>>.allocate(capacity: capacity * rowWords)
        for index in 0..<(capacity * rowWords) { (rows + index).initialize(to: Atomic(0)) }
        return rows
    }()
    /// The system's page size, read once (the handler maps whole pages).
    static let pageSize = Int(sysconf(Int32(_SC_PAGESIZE)))
    /// The SIGBUS action before ours, restored for faults that are not ours.
    private nonisolated(unsafe) static var previousAction = sigaction()

    private static func start(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords }
    private static func end(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords + 1 }
    private static func faultCount(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords + 2 }
    private static func faultedPage(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords + 3 }

    /// Installs the handler once per process (a Swift global's initialiser runs exactly once).
    static func installHandler() { _ = installation }

    private static let installation: Void = {
        _ = rows
        _ = pageSize
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = { _, info, _ in GuardTable.handleBusError(info) }
        // SA_NODEFER is not set: a second SIGBUS inside the handler would be a bug of the handler
        // itself, and it should then take the default action rather than recurse.
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        sigaction(SIGBUS, &action, &previousAction)
    }()

    /// Claims a row for `range`; `nil` when every row is taken.
    static func register(_ range: Range<UInt>) -> Int? {
        for slot in 0..<capacity where start(slot).pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged {
            faultCount(slot).pointee.store(0, ordering: .relaxed)
            faultedPage(slot).pointee.store(0, ordering: .relaxed)
            end(slot).pointee.store(range.upperBound, ordering: .relaxed)
            start(slot).pointee.store(range.lowerBound, ordering: .releasing)
            return slot
        }
        return nil
    }

    /// Frees `slot`'s row (its mapping is about to be unmapped).
    static func unregister(_ slot: Int) {
        start(slot).pointee.store(0, ordering: .releasing)
    }

    /// How many faults `slot`'s range has had.
    static func faults(_ slot: Int) -> UInt { faultCount(slot).pointee.load(ordering: .acquiring) }

    /// The lowest page of `slot`'s range that faulted since the last `forgetFaultedPage`, or 0.
    static func lowestFaultedPage(_ slot: Int) -> UInt { faultedPage(slot).pointee.load(ordering: .relaxed) }

    /// Clears `slot`'s lowest faulted page, before its range is mapped afresh.
    static func forgetFaultedPage(_ slot: Int) { faultedPage(slot).pointee.store(0, ordering: .relaxed) }

    /// The SIGBUS handler: async-signal-safe (atomics, `mmap`, `sigaction`, `raise`; no allocation).
    private static func handleBusError(_ info: UnsafeMutablePointer<siginfo_t>?) {
        // A positive code means the kernel raised the signal for a fault; 0 and below mean a
        // process sent it (kill, sigqueue, tgkill), and then the address field means nothing.
        if let info, info.pointee.si_code > 0 {
            let address = UInt(bitPattern: info.pointee._sifields._sigfault.si_addr)
            for slot in 0..<capacity {
                let lower = start(slot).pointee.load(ordering: .acquiring)
                guard lower > 1, lower <= address, address < end(slot).pointee.load(ordering: .relaxed) else { continue }
                // Counted first: another thread may read the page of zeros as soon as it is
                // mapped, and must then find the count moved when it checks.
                let page = address & ~UInt(pageSize - 1)
                var lowest = faultedPage(slot).pointee.load(ordering: .relaxed)
                while lowest == 0 || page < lowest {
                    let (exchanged, current) = faultedPage(slot).pointee.compareExchange(
                        expected: lowest, desired: page, ordering: .relaxed)
                    if exchanged { break }
                    lowest = current
                }
                faultCount(slot).pointee.add(1, ordering: .releasing)
                let zeros = mmap(UnsafeMutableRawPointer(bitPattern: page), pageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
                // Without the page of zeros the load would fault forever: give up as if unguarded.
                guard zeros == MAP_FAILED else { return }
                break
            }
            // Not ours: with the previous action back, the faulting load runs again and meets it.
            sigaction(SIGBUS, &previousAction, nil)
            return
        }
        sigaction(SIGBUS, &previousAction, nil)
        raise(SIGBUS)
    }
}
