// The owner table: the processes that attach to a cache, each named for good.
//
// An allocation header names its owner by pid alone, and a pid is reused once its process is
// gone: an inspector that asked "is pid P alive?" would take a stranger for the owner. So every
// process that attaches records its identity here, pid *and* start time (clock ticks after boot,
// from /proc/<pid>/stat), and the inspector checks the owner of P against the process that now
// has P.
//
// The table also closes the two windows where a node has no header naming its owner: between a
// claim's CAS and its header store, and between a free's owner-less header and its CAS. A thread
// writes the node it is about to claim or free into its *intent* slot first and clears it after;
// a node found allocated with an owner-less header is attributed to the process whose intent
// names it (a live one is mid-operation; a dead one died there and leaked it).
//
//   entry (576 bytes)
//   ┌──────────────┬──────────────────────────────┬──────────────┬──────────────────────────────┐
//   │ identity (8) │ path counters: 3 × 8 bytes   │ unused to 64 │ intents: 64 × 8 bytes, one   │
//   │              │ searches, hits, inserts      │              │ per thread slot              │
//   └──────────────┴──────────────────────────────┴──────────────┴──────────────────────────────┘
//
// identity (atomic UInt64): pid in the low 32 bits, the low 32 bits of the start time in the high
// 32; 0 = a free entry. One word, so a single CAS claims an entry whole and no reader ever sees
// a pid with another process's start time. The intents are on their own cache lines, written only
// by their process, and interleaved: slot i is word (i mod 8) × 8 + i / 8, so the first eight
// threads of a process each write a cache line of their own (every allocation and free writes
// its intent twice; threads sharing a line would bounce it between cores).
//
// The path counters are the process's own statistics of the shared path cache (ShmPathCache):
// searches made, searches answered (by an entry or a prefix) and inserts. Written only by the
// process the entry names, with relaxed atomics, and zeroed when it claims the entry; read by
// the inspector for rates and the hit rate. They are statistics, not state: nothing depends on them.

/// The shape of the owner table and the identity words it holds. Pure arithmetic: no I/O.
public enum OwnerTable {
    /// Entries in the table: processes attached at once that each get their own. More may attach;
    /// they are then attributed by pid alone.
    public static let entryCount = 64
    /// Bytes per entry.
    public static let entrySize = 576
    /// Intent slots per entry; a process's threads share them round-robin past this many.
    public static let intentSlots = 64
    /// Where an entry's intents start, from the entry.
    public static let intentsOffset = 64
    /// Where an entry's path counters start, from the entry: searches, hits, inserts (8 bytes each).
    public static let pathCountersOffset = 8
    /// The table's length in bytes.
    public static var byteCount: Int { entryCount * entrySize }

    /// The identity word of process `pid` started at `startTime` (clock ticks after boot).
    @inlinable
    public static func identity(pid: Int32, startTime: UInt64) -> UInt64 {
        UInt64(UInt32(bitPattern: pid)) | startTime &<< 32
    }

    /// The pid an identity word names; 0 for a free entry.
    @inlinable
    public static func pid(ofIdentity identity: UInt64) -> Int32 {
        Int32(bitPattern: UInt32(truncatingIfNeeded: identity))
    }

    /// The low 32 bits of the start time an identity word holds.
    @inlinable
    public static func startTimeBits(ofIdentity identity: UInt64) -> UInt32 {
        UInt32(truncatingIfNeeded: identity &>> 32)
    }

    /// The word of the intent region that holds thread slot `slot`'s intent (see the layout above).
    @inlinable
    public static func intentWord(slot: Int) -> Int { (slot & 7) &<< 3 | (slot &>> 3) & 7 }

    /// The intent word for node `node` (1 ... 63) of block `block`: never 0, which means "none".
    @inlinable
    public static func intent(block: Int, node: Int) -> UInt64 {
        UInt64(truncatingIfNeeded: block) &<< 8 | UInt64(truncatingIfNeeded: node)
    }

    /// The block and node an intent word names, or `nil` for 0.
    @inlinable
    public static func target(ofIntent intent: UInt64) -> (block: Int, node: Int)? {
        intent == 0 ? nil : (Int(truncatingIfNeeded: intent &>> 8), Int(truncatingIfNeeded: intent & 0xFF))
    }

    /// The identity word of entry `entry` in a copy of the table (``byteCount`` bytes).
    public static func identity(in table: UnsafeRawBufferPointer, entry: Int) -> UInt64 {
        UInt64(littleEndian: table.loadUnaligned(fromByteOffset: entry * entrySize, as: UInt64.self))
    }

    /// The intent of thread slot `slot` of entry `entry` in a copy of the table.
    public static func intent(in table: UnsafeRawBufferPointer, entry: Int, slot: Int) -> UInt64 {
        let offset = entry * entrySize + intentsOffset + intentWord(slot: slot) * 8
        return UInt64(littleEndian: table.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
    }

    /// The path counters of entry `entry` in a copy of the table.
    public static func pathCounters(in table: UnsafeRawBufferPointer, entry: Int) -> PathCounters {
        let start = entry * entrySize + pathCountersOffset
        func counter(_ index: Int) -> UInt64 {
            UInt64(littleEndian: table.loadUnaligned(fromByteOffset: start + index * 8, as: UInt64.self))
        }
        return PathCounters(
            searches: counter(PathCounters.searchesIndex), hits: counter(PathCounters.hitsIndex),
            inserts: counter(PathCounters.insertsIndex))
    }

    /// True when `identity` names the process with `startTime`.
    @inlinable
    public static func matches(_ identity: UInt64, startTime: UInt64) -> Bool {
        isSameStartTime(UInt64(startTimeBits(ofIdentity: identity)), startTime)
    }

    /// True when two start times are the same as the table can tell: compared on their low 32
    /// bits, as stored (at 100 ticks a second they repeat every 497 days of uptime).
    @inlinable
    public static func isSameStartTime(_ first: UInt64, _ second: UInt64) -> Bool {
        UInt32(truncatingIfNeeded: first) == UInt32(truncatingIfNeeded: second)
    }
}

/// One process's statistics of the shared path cache, as its owner-table entry keeps them.
public struct PathCounters: Hashable, Sendable {
    /// The counters' places, in 8-byte words after ``OwnerTable/pathCountersOffset``.
    public static let searchesIndex = 0, hitsIndex = 1, insertsIndex = 2
    /// The counters' words in an entry.
    public static let wordCount = 3
    /// Searches made.
    public var searches: UInt64
    /// Searches answered, by the path's own entry or by a prefix entry.
    public var hits: UInt64
    /// Inserts made (new paths and updated flags).
    public var inserts: UInt64

    public init(searches: UInt64 = 0, hits: UInt64 = 0, inserts: UInt64 = 0) {
        self.searches = searches
        self.hits = hits
        self.inserts = inserts
    }
}

/// The fields of a `/proc/<pid>/stat` line that tell whether a process lives and which one it is.
public struct ProcessStatLine: Hashable, Sendable {
    /// The state letter (field 3): `R`, `S`, `D`, `T`, `Z` (zombie), `X` (dead) …
    public let state: UInt8
    /// Field 22, `starttime`: clock ticks after boot.
    public let startTime: UInt64

    /// Parses the text of a `/proc/<pid>/stat` file: `pid (comm) state ppid …`; `nil` when it is
    /// not one.
    ///
    /// `comm` may hold spaces and parentheses (a process names itself as it likes), so the fields
    /// are counted from the *last* `)`, which no later field can contain. Allocates nothing.
    public init?(parsing text: UnsafeRawBufferPointer) {
        guard let close = text.lastIndex(of: UInt8(ascii: ")")) else { return nil }
        var field = 2  // the field the parenthesis ended
        var state: UInt8 = 0
        var startTime: UInt64 = 0
        var digits = 0
        var index = close + 1
        while index < text.count {
            let byte = text[index]
            index += 1
            if byte == UInt8(ascii: " ") {
                if field == 22 { break }
                field += 1
                continue
            }
            if field == 3 {
                guard state == 0 else { return nil }
                state = byte
            } else if field == 22 {
                guard (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte), digits < 20 else { return nil }
                startTime = startTime &* 10 &+ UInt64(byte &- UInt8(ascii: "0"))
                digits += 1
            }
        }
        guard state != 0, digits > 0 else { return nil }
        self.state = state
        self.startTime = startTime
    }

    /// True for a zombie (`Z`) or a process being torn down (`X`, and `x` before Linux 3.13):
    /// either will never free anything again.
    public var hasExited: Bool {
        state == UInt8(ascii: "Z") || state == UInt8(ascii: "X") || state == UInt8(ascii: "x")
    }
}
