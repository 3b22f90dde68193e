// This process's entry in a cache's owner table (ShmFormat/OwnerTable.swift), and the intents the
// hot paths write there.
//
// An entry is claimed when a Swift program opens the cache, and on a process's first allocation
// or free in the C library (a process it is preloaded into that never allocates costs the table
// nothing; see `SharedCache.init(path:policy:address:creationTimeout:registering:)`), and again by
// a child of `fork` on its own first (it inherits its parent's `SharedCache`, not its parent's
// identity). Claiming
// prefers this process's own entry (a second `SharedCache` of one file), then a free entry, then
// the entry of a process that has exited outside any operation; a process that finds no such
// entry writes its intents to process memory instead, and its allocations are attributed by pid
// alone.
// The entry also holds the process's path cache counters (ShmPathCache counts its searches and
// inserts there): zeroed when the process claims the entry, so a reused entry starts from 0, and
// written by this process alone. A process without an entry counts into process memory, where
// nobody reads the counts.
// Entries are not given back on close: the allocations a process leaves in the cache stay
// attributed to it until its entry is needed by another.

import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
#endif

/// This process's registration with one cache, in process memory.
struct OwnerRegistration: ~Copyable {
    /// Process memory: the pid the entry was claimed for, the addresses of its intent slots and
    /// path counters, and the intent slots and counters used when the table has no room.
    private let storage: UnsafeMutablePointer<Atomic<UInt64>>
    /// The owner table in the mapped file.
    private let table: UnsafeMutableRawPointer

    private static let pidWord = 0
    private static let intentsWord = 1
    private static let countersWord = 2
    private static let fallbackIntentsWord = 3
    private static let fallbackCountersWord = fallbackIntentsWord + OwnerTable.intentSlots
    private static let storageWords = fallbackCountersWord + PathCounters.wordCount

    /// Prepares the registration of the calling process in `table`, which happens in
    /// ``register()`` or else on its first allocation or free (see `intent(slot:)`).
    init(table: UnsafeMutableRawPointer) {
        self.table = table
        storage = .allocate(capacity: Self.storageWords)
        for word in 0..<Self.storageWords { (storage + word).initialize(to: Atomic(0)) }
    }

    deinit {
        storage.deinitialize(count: Self.storageWords)
        storage.deallocate()
    }

    /// The intent slot of `slot` (a thread's cursor slot) for the calling process, registering
    /// the process first on its first operation (and a child of `fork` on its own first).
    @inline(__always)
    func intent(slot: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        register()
        let intents = UnsafeMutablePointer<Atomic<UInt64>>(
            bitPattern: UInt(storage[Self.intentsWord].load(ordering: .relaxed)))!
        return intents + OwnerTable.intentWord(slot: slot)
    }

    /// The calling process's path counters (``PathCounters/wordCount`` words, in the order of
    /// `PathCounters`' indices), registering the process first as `intent(slot:)` does: its
    /// owner entry's, or words in process memory when it has none.
    @inline(__always)
    func pathCounters() -> UnsafeMutablePointer<Atomic<UInt64>> {
        register()
        let counters = storage[Self.countersWord].load(ordering: .relaxed)
        return UnsafeMutablePointer<Atomic<UInt64>>(bitPattern: UInt(counters))!
    }

    /// Registers the calling process now, unless it already has.
    @inline(__always)
    func register() {
        let pid = ProcessIdentity.pid
        // Relaxed: the words are process memory, written by `register` of this very process (or
        // inherited through fork); a race between two threads of a new child registers twice,
        // and both land on the same entry.
        if storage[Self.pidWord].load(ordering: .relaxed) != UInt64(UInt32(bitPattern: pid)) { register(pid: pid) }
    }

    /// Claims an entry for `pid` and points the intents and path counters at it.
    @inline(never)
    private func register(pid: Int32) {
        let entry = ProcessIdentity.status(ofProcess: pid).flatMap { claimEntry(pid: pid, startTime: $0.startTime) }
        let intents =
            entry.map { $0 + OwnerTable.intentsOffset }
            ?? UnsafeMutableRawPointer(storage + Self.fallbackIntentsWord)
        let counters =
            entry.map { $0 + OwnerTable.pathCountersOffset }
            ?? UnsafeMutableRawPointer(storage + Self.fallbackCountersWord)
        storage[Self.intentsWord].store(UInt64(UInt(bitPattern: intents)), ordering: .relaxed)
        storage[Self.countersWord].store(UInt64(UInt(bitPattern: counters)), ordering: .relaxed)
        storage[Self.pidWord].store(UInt64(UInt32(bitPattern: pid)), ordering: .relaxed)
    }

    /// Entry `index`, in the mapped table.
    private func entry(_ index: Int) -> UnsafeMutableRawPointer { table + index * OwnerTable.entrySize }

    /// The 8-byte words of entry `index` from `offset` on.
    private func words(ofEntry index: Int, from offset: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (entry(index) + offset).assumingMemoryBound(to: Atomic<UInt64>.self)
    }

    /// The identity word of entry `index`.
    private func identityWord(_ index: Int) -> UnsafeMutablePointer<Atomic<UInt64>> { words(ofEntry: index, from: 0) }

    /// Claims this process's own entry, a free one, or one whose process has exited; `nil` when
    /// every entry names a live process.
    private func claimEntry(pid: Int32, startTime: UInt64) -> UnsafeMutableRawPointer? {
        let identity = OwnerTable.identity(pid: pid, startTime: startTime)
        let entries = 0..<OwnerTable.entryCount
        // Relaxed throughout: an identity word publishes nothing but itself.
        if let own = entries.first(where: { identityWord($0).pointee.load(ordering: .relaxed) == identity }) {
            return entry(own)
        }
        // Free entries first; only a full table costs a look at each owner's /proc entry.
        let claimed =
            entries.first { claim($0, as: identity, takingExited: false) }
            ?? entries.first { claim($0, as: identity, takingExited: true) }
        return claimed.map { entry($0) }
    }

    /// The intent slots of entry `index`.
    private func intents(ofEntry index: Int) -> UnsafeMutablePointer<Atomic<UInt64>> {
        words(ofEntry: index, from: OwnerTable.intentsOffset)
    }

    /// Claims entry `index` for `identity` if it is free, or with `takingExited` if its process
    /// has exited outside any operation (all its intents clear). The entry of a process that died
    /// inside an allocate or a free is kept: its intent is the only record of who holds that node.
    /// A claimed entry's path counters start from 0.
    private func claim(_ index: Int, as identity: UInt64, takingExited: Bool) -> Bool {
        let current = identityWord(index).pointee.load(ordering: .relaxed)
        let intents = intents(ofEntry: index)
        guard
            current == 0
                || (takingExited && !Self.isRunning(current)
                    && (0..<OwnerTable.intentSlots).allSatisfy { intents[$0].load(ordering: .relaxed) == 0 }),
            identityWord(index).pointee.compareExchange(expected: current, desired: identity, ordering: .relaxed)
                .exchanged
        else { return false }
        crashPoint(.ownerEntryClaimed, at: identityWord(index))
        // Zeroed after the CAS, not before: until it, another claimer may win the entry and count.
        // The previous owner is gone (or the entry was never used), so nobody else writes them now.
        let counters = words(ofEntry: index, from: OwnerTable.pathCountersOffset)
        for word in 0..<PathCounters.wordCount { counters[word].store(0, ordering: .relaxed) }
        return true
    }

    /// True when the process an identity word names still runs (not a zombie, pid not reused).
    private static func isRunning(_ identity: UInt64) -> Bool {
        guard let status = ProcessIdentity.status(ofProcess: OwnerTable.pid(ofIdentity: identity)) else { return false }
        return !status.hasExited && OwnerTable.matches(identity, startTime: status.startTime)
    }
}
