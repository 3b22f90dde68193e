// Crash points: the places between two writes to shared memory where a process may die.
//
// The allocator promises that a process may be killed at any instruction and the cache stays
// whole. Each window between two writes to the file is named here, and a test kills a process in
// each (Tests/ShmAllocTests/CrashPointTests.swift). The hooks exist only in builds compiled with
// `SHM_CRASH_POINTS` (Package.swift defines it for debug builds, which is what `swift test` runs);
// in a release build `crashPoint(_:)` is empty and inlined away.

#if SHM_CRASH_POINTS
    import CShmSystem
    import Synchronization
#endif

/// A window between two writes to shared memory, named after the write that has just happened.
@_spi(CrashTesting)
public enum CrashPoint: Int, CaseIterable, Sendable {
    /// A claim: the node is named in the thread's intent, the word's CAS has not happened.
    case claimIntentWritten = 1
    /// `allocate`: the node is claimed in the buddy word, its header is not written yet.
    case claimedBeforeHeader
    /// `allocate`: the header is written, the intent still names the node.
    case headerWritten
    /// `free`: the node is validated (header and word), nothing is written yet. Used by the race
    /// tests to interleave another caller here.
    case freeValidated
    /// `free`: the intent names the node, the header is unchanged.
    case freeIntentWritten
    /// `free`: the owner-less header is stored, the buddy word is unchanged.
    case freeHeaderReleased
    /// `free`: the block is listed under the class it is about to reach, the word is unchanged.
    case freePreListed
    /// `free`: the word is cleared, the intent still names the node.
    case freeWordCleared
    /// `free`: the word and the intent are cleared, the listing is not confirmed yet.
    case freeCleared
    /// Index insert: a word became non-empty, the summary bit above it is not set yet.
    case insertBeforeSummary
    /// Index search: a stale summary bit is cleared, the word below it is not re-read yet.
    case staleSummaryCleared
    /// Refile: the block is removed from the class it was found under; its new class may not be
    /// listed yet (a free raced in).
    case refileRemoved
    /// Repair pass: some groups relisted, the rest not yet.
    case repairMidway
    /// Registration: an owner-table entry's identity is claimed, its path counters (the previous
    /// owner's, when the entry was reused) are not zeroed yet.
    case ownerEntryClaimed
    /// Opening: the file's size is read (fstat), its header not yet; another process may create
    /// the whole cache in between. Not a window between writes: used by a race test to interleave
    /// that creation here.
    case openSizeRead
    /// Path insert with the prefix flag: the root table's prefix count is raised, nothing else
    /// is written yet.
    case pathPrefixCounted
    /// Path insert: a new table is allocated and written, the slot (or root word) that would
    /// publish it is not set yet.
    case pathTableWritten
    /// Path insert: the entry is allocated and written, the slot that would publish it is not set.
    case pathEntryWritten
    /// Path insert: another insert of the same path won the slot; this one's entry is freed, the
    /// winner's flags are not updated yet.
    case pathDuplicateFreed
    /// Path insert of a cached path: its flags are exchanged, the prefix count not settled yet.
    case pathFlagsExchanged
    /// Path insert: complete and published, not yet counted in the process's owner entry.
    case pathInsertPublished
    /// Path search: counted as a search in the process's owner entry, its hit not yet counted.
    case pathSearchCounted

    /// The points that precede any write (`freeValidated`, `openSizeRead`): race tests run another
    /// caller's work there instead of killing.
    public var isRaceHook: Bool { self == .freeValidated || self == .openSizeRead }

    /// The points of the shared path cache (ShmPathCache), which only its workloads reach.
    public var isPathCachePoint: Bool { rawValue >= CrashPoint.pathPrefixCounted.rawValue }
}

#if !hasFeature(Embedded)  // names need reflection, which the runtime-free C library has not
    extension CrashPoint {
        /// The case's name as written in Swift, for command lines.
        public var name: String { String(describing: self) }

        /// The point called `name`, or `nil`.
        public init?(name: String) {
            guard let point = Self.allCases.first(where: { $0.name == name }) else { return nil }
            self = point
        }
    }
#endif

#if SHM_CRASH_POINTS
    /// Arming crash points in a test build: one point at a time, per process.
    @_spi(CrashTesting)
    public enum CrashPoints {
        /// The armed point's raw value, 0 when none is armed.
        private static let armedPoint = Atomic<Int>(0)
        /// Hits of the armed point still to pass before it fires.
        private static let remainingHits = Atomic<Int>(0)
        /// The mapping the armed point watches: reaches in other caches (other tests of the same
        /// process) pass by.
        private static let watchedStart = Atomic<UInt>(0)
        private static let watchedEnd = Atomic<UInt>(UInt.max)
        /// The action of an armed point that calls back instead of killing; see ``arm(_:hit:in:action:)``.
        nonisolated(unsafe) private static var callback: (() -> Void)?

        /// Arms `point`: its `hit`-th reach (1 = the next one) in `cache` (any cache when `nil`) raises
        /// `SIGKILL` in this process, or runs `action` once instead when one is given (the point is
        /// disarmed before `action` runs, so it may call the allocator again).
        ///
        /// Not thread-safe against a concurrent `arm`; tests arm before they start the work.
        public static func arm(
            _ point: CrashPoint, hit: Int = 1, in cache: SharedCache? = nil, action: (() -> Void)? = nil
        ) {
            precondition(hit >= 1, "hits count from 1")
            callback = action
            let start = cache.map { UInt(bitPattern: $0.fileBase) } ?? 0
            watchedStart.store(start, ordering: .relaxed)
            watchedEnd.store(cache.map { start + UInt($0.layout.fileSize) } ?? UInt.max, ordering: .relaxed)
            remainingHits.store(hit, ordering: .relaxed)
            // Releasing: a thread that sees the point armed also sees its count and callback.
            armedPoint.store(point.rawValue, ordering: .releasing)
        }

        /// Disarms whatever is armed.
        public static func disarm() { armedPoint.store(0, ordering: .releasing) }

        /// Called at every crash point of a test build (by the modules built on the allocator too).
        @inline(never)
        public static func reach(_ point: CrashPoint, at address: UnsafeRawPointer) {
            let address = UInt(bitPattern: address)
            guard armedPoint.load(ordering: .acquiring) == point.rawValue,
                address >= watchedStart.load(ordering: .relaxed), address < watchedEnd.load(ordering: .relaxed),
                remainingHits.subtract(1, ordering: .relaxed).newValue == 0,
                armedPoint.compareExchange(expected: point.rawValue, desired: 0, ordering: .acquiringAndReleasing)
                    .exchanged
            else { return }
            if let callback {
                Self.callback = nil
                callback()
            } else {
                kill(getpid(), SIGKILL)
            }
        }
    }
#endif

/// Marks a crash point in the mapping that holds `address`: nothing in a release build; in a test
/// build, where an armed point kills the process (or runs a test's callback). Public for the
/// modules built on the allocator (the path cache), inlined so a release build pays nothing.
@_spi(CrashTesting) @inlinable @inline(__always)
public func crashPoint(_ point: CrashPoint, at address: UnsafeRawPointer) {
    #if SHM_CRASH_POINTS
        CrashPoints.reach(point, at: address)
    #endif
}
