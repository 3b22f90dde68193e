// The SIGBUS side of the guarded mappings (GuardedMapping.swift explains the scheme): the table
// of guarded ranges every process keeps, and the handler that maps a page of zeros over a faulting
// page of one of them.

import CShmSystem
import ShmSystem
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The process-wide table of guarded ranges and the SIGBUS handler that reads it.
///
/// Each row is five atomic words: start, end, the fault count (one per fault, once its page of
/// zeros is mapped), the address of the lowest page that faulted (0 while none did) and the
/// handlers in flight (entered, page of zeros not mapped yet). A row is free while its start is 0.
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

    private static let rowWords = 5
    /// The table; allocated once, before the handler can run, and never freed.
    private nonisolated(unsafe) static let rows: UnsafeMutablePointer<Atomic<UInt>> = {
        let rows = UnsafeMutablePointer<Atomic<UInt>>.allocate(capacity: capacity * rowWords)
        for index in 0..<(capacity * rowWords) { (rows + index).initialize(to: Atomic(0)) }
        return rows
    }()
    /// The system's page size, read once (the handler maps whole pages).
    static let pageSize = Mapping.pageSize
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
    private static func inFlight(_ slot: Int) -> UnsafeMutablePointer<Atomic<UInt>> { rows + slot * rowWords + 4 }

    /// Installs the handler once per process (a Swift global's initialiser runs exactly once).
    static func installHandler() { _ = installation }

    /// The handler as a C function pointer: what `installation` installs and `isHandlerInstalled`
    /// looks for.
    private static let handler:
        @convention(c) (Int32, UnsafeMutablePointer<siginfo_t>?, UnsafeMutableRawPointer?) -> Void = {
            signal, info, context in GuardTable.handleBusError(signal, info, context)
        }

    private static let installation: Void = {
        _ = rows
        _ = pageSize
        _ = previousAction
        var action = sigaction()
        action.__sigaction_handler.sa_sigaction = handler
        // SA_NODEFER is not set: a second SIGBUS inside the handler would be a bug of the handler
        // itself, and it should then take the default action rather than recurse.
        action.sa_flags = SA_SIGINFO
        sigemptyset(&action.sa_mask)
        sigaction(SIGBUS, &action, previousAction)
    }()

    /// Whether the guard's handler is still the process's SIGBUS action (nothing installed another
    /// since `installHandler`).
    ///
    /// The C function `sigaction`, to query.
    static var isHandlerInstalled: Bool {
        var current = sigaction()
        sigaction(SIGBUS, nil, &current)
        return current.sa_flags & SA_SIGINFO != 0
            && unsafeBitCast(current.__sigaction_handler.sa_sigaction, to: Int.self)
                == unsafeBitCast(handler, to: Int.self)
    }

    /// Claims a row for `range`; `nil` when every row is taken.
    static func register(_ range: Range<UInt>) -> Int? {
        for slot in 0..<capacity
        where start(slot).pointee.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged {
            faultCount(slot).pointee.store(0, ordering: .relaxed)
            faultedPage(slot).pointee.store(0, ordering: .relaxed)
            inFlight(slot).pointee.store(0, ordering: .relaxed)
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

    /// How many faults `slot`'s range has had (each counted once its page of zeros is mapped).
    static func faults(_ slot: Int) -> UInt { faultCount(slot).pointee.load(ordering: .acquiring) }

    /// How many handlers are mapping a page of zeros in `slot`'s range right now: while any is,
    /// a page of the range may read zeros that the fault count does not show yet.
    static func handlersInFlight(_ slot: Int) -> UInt { inFlight(slot).pointee.load(ordering: .acquiring) }

    /// The lowest page of `slot`'s range that faulted, or 0.
    static func lowestFaultedPage(_ slot: Int) -> UInt { faultedPage(slot).pointee.load(ordering: .relaxed) }

    /// The SIGBUS handler: async-signal-safe (atomics, `mmap`, `sigaction`, `raise`, the previous
    /// handler; no allocation, no lock).
    private static func handleBusError(
        _ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?
    ) {
        // A positive code means the kernel raised the signal for a fault; 0 and below mean a
        // process sent it (kill, sigqueue, tgkill), and then the address field means nothing.
        guard let info, info.pointee.si_code > 0 else { return passOn(signal, info, context, isFault: false) }
        let address = UInt(bitPattern: info.pointee._sifields._sigfault.si_addr)
        for slot in 0..<capacity {
            let lower = start(slot).pointee.load(ordering: .acquiring)
            guard lower > 1, lower <= address, address < end(slot).pointee.load(ordering: .acquiring),
                start(slot).pointee.load(ordering: .acquiring) == lower
            else { continue }
            // In flight from before the page of zeros is mapped (another thread may read it at once
            // and must then find the row busy) until it is counted. Sequentially consistent: the
            // `mmap` below must not be ordered before it.
            inFlight(slot).pointee.add(1, ordering: .sequentiallyConsistent)
            let page = address & ~UInt(pageSize - 1)
            var lowest = faultedPage(slot).pointee.load(ordering: .relaxed)
            while lowest == 0 || page < lowest {
                let (exchanged, current) = faultedPage(slot).pointee.compareExchange(
                    expected: lowest, desired: page, ordering: .relaxed)
                if exchanged { break }
                lowest = current
            }
            let zeros = mmap(
                UnsafeMutableRawPointer(bitPattern: page), pageSize, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
                -1, 0)
            // Counted before leaving the flight (both releasing): a reader that sees the flight
            // over (acquiring) then sees the count moved. Each fault counts once, so two at once
            // cannot make the count look settled while either page is pending.
            faultCount(slot).pointee.add(1, ordering: .releasing)
            inFlight(slot).pointee.subtract(1, ordering: .releasing)
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
    private static func passOn(
        _ signal: Int32, _ info: UnsafeMutablePointer<siginfo_t>?, _ context: UnsafeMutableRawPointer?, isFault: Bool
    ) {
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
