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
//   that faulted then completes and reads zeros) and counts the fault in the range's row, twice:
//   the count is odd while the page of zeros is being mapped.
// - A reader compares the count before and after reading (a seqlock reader) and discards what it
//   read when it moved. Pages of zeros stay until the owner maps the file afresh over the range
//   (`restore`, once the file is whole again); until then every read reports the fault.
// - A fault outside every guarded range, or a SIGBUS another process sent, goes to the action
//   installed before ours: its handler is called, or the default (death) happens as it would have
//   without the guard.
// - A cut inside a page does not fault at all: the page's tail reads as zeros. Only the file's
//   size after a read tells; `CacheInspector` checks it.

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
/// Reads go through ``read(_:)``, which returns `nil` when a whole page of the range faulted (the
/// file became shorter than it) during the read or since the last ``restore(_:)``. The mapping is
/// read only: its pages are `PROT_READ`, and a write would fault.
final class GuardedMapping: @unchecked Sendable {
    // @unchecked: the fields are immutable after `init` but for the atomic `restoredFaults`; the
    // mapped memory is only read (see `MappedWords`).

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
    /// while the count still equals it (no page of zeros in the range). Always even, but for
    /// ``broken``.
    private let restoredFaults = Atomic<UInt>(0)
    /// `restoredFaults` after a failed `restore`, which may have left the range unmapped: no
    /// count equals it, so every read fails until a `restore` succeeds.
    private static let broken = UInt.max

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

    /// The file offset of the lowest page of the range that ever faulted (the file was at most
    /// this long then), or `nil` when none did.
    var faultedFileOffset: Int? {
        let page = GuardTable.lowestFaultedPage(slot)
        return page == 0 ? nil : mappedOffset + Int(page - UInt(bitPattern: mapping))
    }

    /// Calls `body` with the range's words, or returns `nil` when a page of the range faulted
    /// during the call or since the last ``restore(_:)``: then what `body` read is partly zeros.
    /// `body` may run and be thrown away, so it should only compute its result.
    ///
    /// Writers change the words with compare-and-swap at any time: `body` loads a word once where
    /// it needs one consistent value.
    func read<Result>(_ body: (MappedWords) -> Result) -> Result? {
        let faults = GuardTable.faults(slot)
        // An odd count (a page of zeros being mapped) never equals the even `restoredFaults`.
        guard faults == restoredFaults.load(ordering: .acquiring) else { return nil }
        let result = body(MappedWords(base: words))
        // The loads of `body` complete before the count is read again.
        atomicMemoryFence(ordering: .acquiring)
        return GuardTable.faults(slot) == faults ? result : nil
    }

    /// Maps `descriptor`'s file afresh over the whole range, replacing any pages of zeros, so reads
    /// succeed again; for when the file is back at its full length. A fault during or after this
    /// call makes reads fail again until the next one. Returns false when it could not (a page of
    /// zeros was being mapped, or `mmap` failed; after that failure every read fails until a
    /// `restore` succeeds).
    ///
    /// The C function `mmap` with `MAP_FIXED`.
    @discardableResult
    func restore(_ descriptor: FileDescriptor) -> Bool {
        let faults = GuardTable.faults(slot)
        guard faults & 1 == 0 else { return false }
        let remapped = mmap(mapping, mappedLength, PROT_READ, MAP_SHARED | MAP_FIXED, descriptor.rawValue, off_t(mappedOffset))
        guard remapped == mapping else {
            restoredFaults.store(Self.broken, ordering: .releasing)
            return false
        }
        restoredFaults.store(faults, ordering: .releasing)
        return true
    }
}

/// The live words of a guarded mapping, each load a relaxed atomic load of a whole word.
struct MappedWords: WordLoading {
    let base: UnsafePointer<Atomic<UInt64>>

    /// The word at `index` (stored little-endian, as in the file).
    @inline(__always) func word(at index: Int) -> UInt64 { UInt64(littleEndian: base[index].load(ordering: .relaxed)) }

    /// Plain loads of mapped words compile to vector loads (atomic loads cannot). Other processes
    /// write these words meanwhile, which Swift's memory model does not describe; the bulk test
    /// these loads serve only chooses between a fast path and `word(at:)`, so a value seen
    /// between two writes costs it nothing. They fault like atomic loads do.
    @inline(__always) func bulkView(from start: Int, count: Int) -> UnsafeBufferPointer<UInt64> {
        UnsafeBufferPointer(start: UnsafeRawPointer(base + start).assumingMemoryBound(to: UInt64.self), count: count)
    }

    /// The words from `index` on.
    func advanced(by index: Int) -> MappedWords { MappedWords(base: base + index) }
}

/// The process-wide table of guarded ranges and the SIGBUS handler that reads it.
///
/// Each row is four atomic words: start, end, the fault count (two per fault) and the address of
/// the lowest page that faulted (0 while none did). A row is free while its start is 0.
/// `register` claims a free row with a compare-and-swap of the start from 0 to 1 (a start of 1
/// matches no address), writes the end, then the real start; `unregister` clears the start first.
/// The handler reads the start, the end, then the start again, so it never matches a range that
/// is half written or a row that changed hands meanwhile.
///
/// Everything the handler reaches is allocated by `installation`, before the handler exists, and
/// reached through `let`s: no lazy initialiser runs and no exclusivity check is made in it.
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
    /// The SIGBUS action before ours, for signals that are not ours.
    private nonisolated(unsafe) static let previousAction: UnsafeMutablePointer<sigaction> = {
        let action = UnsafeMutablePointer<sigaction>.allocate(capacity: 1)
        action.initialize(to: sigaction())
        return action
    }()

    private static func start(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords }
    private static func end(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords + 1 }
    private static func faultCount(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords + 2 }
    private static func faultedPage(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords + 3 }

    /// Installs the handler once per process (a Swift global's initialiser runs exactly once).
    static func installHandler() { _ = installation }

    private static let installation: Void = {
        _ = rows
        _ = pageSize
        _ = previousAction
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = { signal, info, context in GuardTable.handleBusError(signal, info, context) }
        // SA_NODEFER is not set: a second SIGBUS inside the handler would be a bug of the handler
        // itself, and it should then take the default action rather than recurse.
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        sigaction(SIGBUS, &action, previousAction)
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

    /// The lowest page of `slot`'s range that faulted, or 0.
    static func lowestFaultedPage(_ slot: Int) -> UInt { faultedPage(slot).pointee.load(ordering: .relaxed) }

    /// The SIGBUS handler: async-signal-safe (atomics, `mmap`, `sigaction`, `raise`, the previous
    /// handler; no allocation, no lock).
    private static func handleBusError(_ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?) {
        // A positive code means the kernel raised the signal for a fault; 0 and below mean a
        // process sent it (kill, sigqueue, tgkill), and then the address field means nothing.
        guard let info, info.pointee.si_code > 0 else { return passOn(signal, info, context, isFault: false) }
        let address = UInt(bitPattern: info.pointee._sifields._sigfault.si_addr)
        for slot in 0..<capacity {
            let lower = start(slot).pointee.load(ordering: .acquiring)
            guard lower > 1, lower <= address, address < end(slot).pointee.load(ordering: .acquiring),
                  start(slot).pointee.load(ordering: .acquiring) == lower
            else { continue }
            let page = address & ~UInt(pageSize - 1)
            var lowest = faultedPage(slot).pointee.load(ordering: .relaxed)
            while lowest == 0 || page < lowest {
                let (exchanged, current) = faultedPage(slot).pointee.compareExchange(expected: lowest, desired: page, ordering: .relaxed)
                if exchanged { break }
                lowest = current
            }
            // Odd from before the page of zeros is mapped (another thread may read it at once and
            // must then find the count moved) until after it is.
            faultCount(slot).pointee.add(1, ordering: .sequentiallyConsistent)
            let zeros = mmap(UnsafeMutableRawPointer(bitPattern: page), pageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0)
            faultCount(slot).pointee.add(1, ordering: .releasing)
            // Without the page of zeros the load would fault forever: go on as if unguarded.
            if zeros != MAP_FAILED { return }
            break
        }
        passOn(signal, info, context, isFault: true)
    }

    /// `SIG_DFL` and `SIG_IGN`, C casts of 0 and 1 to a handler that Swift does not import.
    private static let defaultAction = 0, ignoreAction = 1

    /// Hands a SIGBUS that is not ours to the action installed before ours: its handler, or the
    /// default action (death) for a fault, which happens when the faulting load runs again, or for
    /// a signal sent, which is raised again and delivered once this handler returns.
    private static func passOn(_ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?, isFault: Bool) {
        let previous = previousAction.pointee
        let plain = previous.__sigaction_handler.sa_handler
        let raw = unsafeBitCast(plain, to: Int.self)
        if raw != defaultAction, raw != ignoreAction {
            if previous.sa_flags & SA_SIGINFO != 0 {
                previous.__sigaction_handler.sa_sigaction?(signal, info, context)
            } else {
                plain?(signal)
            }
            return
        }
        // Ignoring a signal sent is what the process chose; a fault cannot be ignored.
        if raw == ignoreAction, !isFault { return }
        var standard = sigaction()
        sigemptyset(&standard.sa_mask)
        sigaction(SIGBUS, &standard, nil)
        if !isFault { raise(SIGBUS) }
    }
}

