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
//   that faulted then completes and reads zeros). The range's row counts the handlers in flight
//   (from entry until the page of zeros is mapped) and, once each page is mapped, the fault.
// - A reader reads the fault count before and after reading (a seqlock reader) and discards what
//   it read when the count moved or a handler was in flight. Pages of zeros stay until the owner
//   maps the file afresh over the range (`restore`, once the file is whole again); until then every
//   read reports the fault.
// - A fault outside every guarded range, or a SIGBUS another process sent, goes to the action
//   installed before ours: its handler is called, or the default (death) happens as it would have
//   without the guard.
// - A SIGBUS action installed after ours replaces the guard, and the guard does not take the
//   signal back: re-installing ours over theirs, with theirs as the action to pass on to, would
//   override what the program chose last, and would loop forever if theirs passes on to the
//   action it replaced (ours). Instead every read first asks `sigaction` whether ours is still the
//   action (about 0.2 µs, next to milliseconds of reading the words) and, when it is not, reads the
//   words with `pread` into a private copy: slower, never a fault. A handler installed by another
//   thread during a read is not seen by that read.
// - A cut inside a page does not fault at all: the page's tail reads as zeros. Only the file's
//   size after a read tells; `CacheInspector` checks it.

import CShmSystem
import ShmSystem
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// A read-only shared mapping of a range of a file, whose reads survive the file being truncated
/// under them.
///
/// Reads go through ``read(_:_:)``, which returns `nil` when a whole page of the range faulted (the
/// file became shorter than it) during the read or since the last ``restore(_:)``. The mapping is
/// read only: its pages are `PROT_READ`, and a write would fault.
final class GuardedMapping: @unchecked Sendable {
    // @unchecked: the fields are immutable after `init` but for the atomics `restoredFaults` and
    // `phase`; the mapped memory is only read (see `MappedWords`).

    /// The words of the range.
    private let words: UnsafePointer<Atomic<UInt64>>
    /// How many words the range holds.
    let count: Int
    /// The whole mapping (from a page boundary at or before the range).
    private let mapping: UnsafeMutableRawPointer
    private let mappedLength: Int
    /// The file offset `mapping` starts at.
    private let mappedOffset: Int
    /// The file offset of the range.
    private let offset: Int
    /// This mapping's row in the guard table.
    private let slot: Int
    /// The row's fault count when the range was last mapped from the file: reads succeed only
    /// while the count still equals it (no page of zeros in the range).
    private let restoredFaults = Atomic<UInt>(0)
    /// ``mapped``, ``restoring`` or ``abandoned``.
    private let phase = Atomic<UInt8>(GuardedMapping.mapped)
    /// The range is mapped from the file (maybe with pages of zeros).
    private static let mapped: UInt8 = 0
    /// A `restore` is remapping the range; no other may start.
    private static let restoring: UInt8 = 1
    /// For good, after a failed `restore`, which may have left the range unmapped (see there): the
    /// row is released, the range is never read, remapped or unmapped again, and reads copy the
    /// words with `pread`.
    private static let abandoned: UInt8 = 2

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
        self.offset = offset
        mappedOffset = offset & ~(pageSize - 1)
        mappedLength = offset - mappedOffset + count * 8
        let mapping = try Mapping.mapReadOnly(descriptor, offset: mappedOffset, length: mappedLength)
        self.mapping = mapping
        self.count = count
        words = UnsafePointer((mapping + (offset - mappedOffset)).assumingMemoryBound(to: Atomic<UInt64>.self))
        let start = UInt(bitPattern: mapping)
        guard let slot = GuardTable.register(start..<(start + UInt(mappedLength))) else {
            try? Mapping.unmap(mapping, length: mappedLength)
            throw .tooManyOpenFiles
        }
        self.slot = slot
    }

    deinit {
        // An abandoned range may belong to another mapping now: it is left alone.
        guard phase.load(ordering: .acquiring) != Self.abandoned else { return }
        GuardTable.unregister(slot)
        try? Mapping.unmap(mapping, length: mappedLength)
    }

    /// The file offset of the lowest page of the range that ever faulted (the file was at most
    /// this long then), or `nil` when none did or the range was abandoned.
    var faultedFileOffset: Int? {
        // The row of an abandoned range may be another mapping's by now.
        guard phase.load(ordering: .acquiring) != Self.abandoned else { return nil }
        let page = GuardTable.lowestFaultedPage(slot)
        return page == 0 ? nil : mappedOffset + Int(page - UInt(bitPattern: mapping))
    }

    /// Whether ``read(_:_:)`` reads the mapping itself rather than a copy of the whole range
    /// (which a caller reading a few words of a large range would rather avoid).
    var readsInPlace: Bool { phase.load(ordering: .acquiring) != Self.abandoned && GuardTable.isHandlerInstalled }

    /// Calls `body` with the range's words, or returns `nil` when a page of the range faulted
    /// during the call or since the last ``restore(_:)``: then what `body` read is partly zeros.
    /// `body` may run and be thrown away, so it should only compute its result.
    ///
    /// While the guard is not the process's SIGBUS action (another was installed after it) or the
    /// range was abandoned, `body` reads a copy of the words read from `descriptor` (the mapped
    /// file) with `pread` instead, and `nil` means the file ended inside the range.
    ///
    /// Writers change the words with compare-and-swap at any time: `body` loads a word once where
    /// it needs one consistent value.
    ///
    /// The C functions `sigaction` (to query) and, without the guard, `pread`.
    func read<Result>(_ descriptor: FileDescriptor, _ body: (MappedWords) -> Result) -> Result? {
        guard phase.load(ordering: .acquiring) != Self.abandoned, GuardTable.isHandlerInstalled else {
            return copied(descriptor, body)
        }
        let faults = GuardTable.faults(slot)
        // A handler in flight may have mapped its page of zeros without counting it yet.
        guard GuardTable.handlersInFlight(slot) == 0, faults == restoredFaults.load(ordering: .acquiring) else {
            return nil
        }
        let result = body(MappedWords(base: words))
        // The loads of `body` complete before the row is read again. A load that read a page of
        // zeros ran after that page's handler entered (the handler maps it later), so this
        // sees the handler in flight or, when it has left (its releasing decrement read by this
        // acquiring load), the fault it counted before leaving.
        atomicMemoryFence(ordering: .acquiring)
        guard GuardTable.handlersInFlight(slot) == 0, GuardTable.faults(slot) == faults else { return nil }
        // A `restore` that failed meanwhile may have unmapped the range under `body`.
        return phase.load(ordering: .acquiring) == Self.abandoned ? nil : result
    }

    /// `body` over a copy of the range's words read from the file with `pread`; `nil` when the
    /// file ends inside the range.
    private func copied<Result>(_ descriptor: FileDescriptor, _ body: (MappedWords) -> Result) -> Result? {
        let copy = UnsafeMutableRawBufferPointer.allocate(
            byteCount: count * 8, alignment: MemoryLayout<UInt64>.alignment)
        defer { copy.deallocate() }
        // `retryOnInterrupt`: a signal during the read is no reason to fail it.
        guard let read = try? descriptor.read(at: offset, into: copy, retryOnInterrupt: true), read == copy.count else {
            return nil
        }
        return body(MappedWords(base: UnsafePointer(copy.bindMemory(to: Atomic<UInt64>.self).baseAddress!)))
    }

    /// Maps `descriptor`'s file afresh over the whole range, replacing any pages of zeros, so reads
    /// succeed again; for when the file is back at its full length. A fault during or after this
    /// call makes reads fail again until the next one. Returns false when it could not: a handler
    /// was mapping a page of zeros, another `restore` was running, or `mmap` failed.
    ///
    /// A failed `mmap` with `MAP_FIXED` may have unmapped the range already (Linux unmaps the old
    /// pages before it can fail for want of memory), and any `mmap` in the process may then be
    /// given those addresses: the guard must not turn that mapping's SIGBUS into zeros, nor
    /// `deinit` unmap it. So the range is abandoned: its row is released, and reads copy the words
    /// with `pread` from then on. Keeping the range reserved with a `PROT_NONE` mapping instead
    /// would take another `mmap` with `MAP_FIXED`, which would destroy whatever another thread had
    /// mapped there meanwhile (`MAP_FIXED_NOREPLACE` fails on pages still mapped, which may be ours
    /// or not); abandoning needs no call that can fail, and costs the address range, leaked if the
    /// pages were still ours, and the copy at every read.
    ///
    /// The C function `mmap` with `MAP_FIXED`.
    @discardableResult
    func restore(_ descriptor: FileDescriptor) -> Bool {
        // One `restore` at a time: one that found the range mapped must not remap it after
        // another has abandoned it.
        guard phase.compareExchange(expected: Self.mapped, desired: Self.restoring, ordering: .acquiring).exchanged
        else {
            return false
        }
        guard GuardTable.handlersInFlight(slot) == 0 else {
            phase.store(Self.mapped, ordering: .releasing)
            return false
        }
        // Read before the remap: a fault whose page of zeros lands after the remap counts itself
        // after this load, so reads fail until the next `restore`.
        let faults = GuardTable.faults(slot)
        do throws(Errno) {
            try Mapping.remapReadOnly(descriptor, offset: mappedOffset, length: mappedLength, over: mapping)
        } catch {
            // Readers that start from now on copy the words instead.
            phase.store(Self.abandoned, ordering: .releasing)
            GuardTable.unregister(slot)
            return false
        }
        restoredFaults.store(faults, ordering: .releasing)
        phase.store(Self.mapped, ordering: .releasing)
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

    /// The first `count` bytes of the range, for readers that walk a structure in it (they load
    /// what other processes write with atomics, as ``word(at:)`` does).
    func bytes(count: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(start: UnsafeRawPointer(base), count: count)
    }

    /// Asks for the cache line of the word at `index` ahead of its load (a hint: never faults).
    @inline(__always) func prefetch(wordAt index: Int) { shm_prefetch(UnsafeRawPointer(base + index)) }
}
