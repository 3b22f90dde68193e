// What became of the owners, as a live view asks at every refresh.
//
// The owner table is 33 KB and each owner's state and command are two files under /proc: read
// for every refresh, they were most of a refresh's fixed cost on a cache where little changes.
// A process's state changes rarely and its command almost never, so each is read again only
// after a period, and at once for an owner not seen before; the owner table is read again when
// the owners' pids change, or after the period.

import ShmFormat

/// Owners' process states and command names, kept between refreshes of a live view and read
/// again once per ``period`` (see ``CacheInspector/census(of:rates:states:)``).
public struct OwnerStates: Sendable {
    /// How old a state, a command or the owner table may grow before it is read again.
    public let period: Duration
    private var registry = OwnerRegistry()
    /// The owners' pids when the owner table was last read, and when that was.
    private var registryPIDs: Set<Int32> = []
    private var registryReadAt: ContinuousClock.Instant?
    /// Each owner's state and command, and when they were read.
    private var known: [Int32: (state: ProcessState, command: String?, checkedAt: ContinuousClock.Instant)] = [:]

    /// States read afresh once per `period`; `.zero` reads them at every census (a one-shot snapshot).
    public init(period: Duration = .zero) {
        self.period = period
    }

    /// Whether the owner table should be read again for owners `pids` at `now`.
    func needsOwnerTable(for pids: [Int32], at now: ContinuousClock.Instant) -> Bool {
        guard let registryReadAt, now - registryReadAt < period else { return true }
        return pids.contains { !registryPIDs.contains($0) }
    }

    /// Takes `registry` as the owner table read at `now` for owners `pids`: their states are
    /// read again at the next ``check(_:at:)``.
    mutating func replaceRegistry(_ registry: OwnerRegistry, pids: [Int32], at now: ContinuousClock.Instant) {
        self.registry = registry
        registryPIDs = Set(pids)
        registryReadAt = now
        known.removeAll(keepingCapacity: true)
    }

    /// Reads the state and command of each of `pids` not read within the period, and forgets
    /// owners that are gone.
    mutating func check(_ pids: [Int32], at now: ContinuousClock.Instant) {
        if known.count > pids.count { known = known.filter { pids.contains($0.key) } }
        for pid in pids {
            if let entry = known[pid], now - entry.checkedAt < period { continue }
            let state = registry.state(of: pid)
            known[pid] = (state, state == .alive ? ProcessState.commandName(ofProcess: pid) : nil, now)
        }
    }

    /// The state of `pid` as last read (`.dead` for a pid not checked).
    func state(of pid: Int32) -> ProcessState { known[pid]?.state ?? .dead }

    /// The command of `pid` as last read, while it was alive.
    func command(of pid: Int32) -> String? { known[pid]?.command }
}
