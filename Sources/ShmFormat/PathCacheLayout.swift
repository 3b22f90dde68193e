// The shared path cache's on-file layout: where every path and its flags live, so that the
// read-write side (ShmPathCache) and a read-only reader (the inspector) agree without sharing code.
//
// The cache is a hash-indexed digital search tree whose nodes are ordinary allocations:
//
//   header.pathCacheRoot ─► root table ──slot[i1]──► bucket table ──slot[i2]──► entry ──child[d]──► entry …
//
//   table (one largest allocation)              entry (the smallest allocation that fits)
//   ┌──────────────────┬──────────────┬─ … ─┐    ┌──────────┬─────────────────────┬──────────────┐
//   │ descriptor (8)   │ prefix count │slots│    │ meta (8) │ F child slots (4·F) │ path bytes   │
//   └──────────────────┴──────────────┴─ … ─┘    └──────────┴─────────────────────┴──────────────┘
//
// Offsets are from an allocation's first usable byte (8 bytes into its node). Every field is a
// little-endian machine word read and written with atomics.
//
// - `header.pathCacheRoot` (atomic UInt64): the root table's offset from the user base; 0 = none.
// - A table: the descriptor (``tableDescriptor(level:slotCount:)``), then (atomic UInt64) the
//   count of entries carrying the prefix flag, an upper bound kept in the root table only (0 in
//   bucket tables), then ``tableSlotCount(geometry:)`` 4-byte slots. Root slots name bucket
//   tables; bucket slots name entries. Index `i1` comes from the hash's high half, `i2` from its
//   low half (``rootIndex(hash:slotCount:)``, ``bucketIndex(hash:slotCount:)``).
// - A slot (atomic UInt32): 0 = empty, else the allocation's node offset divided by `minSize`
//   (``slot(nodeOffset:minShift:)``), so a cache needs `capacity / minSize < 2^32`.
// - An entry: the meta word (atomic UInt64, see ``Meta``), F = 2^fanOutShift child slots, then
//   the path's bytes (no terminating NUL). An entry holds one path; a path that is not the entry's
//   continues in child `d`, where `d` is the next `fanOutShift` bits of ``HashDigits``. F is as
//   large as the slack of the entry's node allows (at least 2), so the slack is not wasted.
//
// Invariants (why readers need no locks and nothing is ever reclaimed): a slot goes from 0 to a
// value once and never changes again; an entry's or a table's bytes are all written before the
// slot (or the root word) that names it is set with release ordering; only the flags bits of a
// meta word change afterwards. So a reader that loads a slot with acquire ordering sees a
// complete node, every node is reachable from the root by exactly one slot, and the graph is a
// tree (a node's slots are filled only with nodes allocated after it): a walk cannot loop.

/// The path cache's layout: constants, encodings, the hash and the walk. Pure arithmetic and reads.
public enum PathCacheLayout {
    // Constants are computed properties, not stored `static let`s: a global's first use runs its
    // one-time initialiser under a lock, which a signal handler inserting a path must not meet.

    /// Flag bits with a meaning to the cache; the other five bits are the caller's.
    @inlinable public static var allowFlag: UInt8 { 0x1 }
    @inlinable public static var denyFlag: UInt8 { 0x2 }
    /// The entry answers for every path below it at a `/` boundary (when no exact entry exists).
    @inlinable public static var prefixFlag: UInt8 { 0x4 }

    /// Bytes of a table's header (descriptor and prefix count) before its slots.
    @inlinable public static var tableHeaderSize: Int { 16 }
    /// Where a table's prefix count is, from the table.
    @inlinable public static var prefixCountOffset: Int { 8 }
    /// Where an entry's child slots start, from the entry.
    @inlinable public static var childrenOffset: Int { 8 }
    /// The most child slots an entry has (log2); the least is 2 (shift 1).
    @inlinable public static var largestFanOutShift: Int { 6 }
    /// Deeper than this no walk goes: a random tree of any size the format allows is far shallower,
    /// so only a corrupt file (or 2^64-colliding paths by the thousand) gets here.
    @inlinable public static var maxDepth: Int { 4096 }
    /// The `tag` in ``tableDescriptor(level:slotCount:)``: "PT" (path table).
    @inlinable public static var tableTag: UInt64 { 0x5450 }

    // MARK: - Geometry

    /// Slots in each table: as many as fit the largest allocation after the table header.
    @inlinable
    public static func tableSlotCount(geometry: Geometry) -> Int { (geometry.largestRequest &- tableHeaderSize) / 4 }

    /// The request size of a table.
    @inlinable
    public static func tableRequest(geometry: Geometry) -> Int {
        tableHeaderSize &+ tableSlotCount(geometry: geometry) &* 4
    }

    /// The longest path an entry holds: one with two child slots in the largest allocation, and
    /// no longer than the meta word's 16-bit length.
    @inlinable
    public static func longestPath(geometry: Geometry) -> Int {
        min(geometry.largestRequest &- childrenOffset &- 2 &* 4, Int(UInt16.max))
    }

    /// Why a geometry cannot hold a path cache, or `nil` when it can: slots must name every node
    /// in 32 bits, and a table needs a few slots.
    public static func unsupportedReason(geometry: Geometry) -> String? {
        if geometry.capacity >> geometry.minShift > Int(UInt32.max) {
            return "capacity / min size exceeds 2^32: a path cache's 4-byte slots cannot name every node"
        }
        if tableSlotCount(geometry: geometry) < 8 {
            return "blocks of \(geometry.maxSize) bytes are too small for path tables"
        }
        return nil
    }

    /// The fan-out (log2) and the request size of an entry holding a `length`-byte path: the
    /// node that two child slots need, with as many slots as its slack holds (a power of two).
    @inlinable
    public static func entryShape(length: Int, geometry: Geometry) -> (fanOutShift: Int, request: Int) {
        let least = childrenOffset &+ 2 &* 4 &+ length
        let node = geometry.nodeSize(ofOrder: geometry.order(forRequest: least)!)
        let slotsThatFit = (node &- AllocationHeader.size &- childrenOffset &- length) / 4
        // Concrete arithmetic only (no `min`): inserts run this in signal handlers, unoptimised too.
        let fitting = Int.bitWidth &- 1 &- slotsThatFit.leadingZeroBitCount
        let shift = fitting < largestFanOutShift ? fitting : largestFanOutShift
        return (shift, childrenOffset &+ 4 &<< shift &+ length)
    }

    // MARK: - Words

    /// A table's descriptor word: tag (16 bits), level (8 bits: 1 root, 2 bucket), slot count (32 bits).
    @inlinable
    public static func tableDescriptor(level: Int, slotCount: Int) -> UInt64 {
        tableTag | UInt64(truncatingIfNeeded: level) &<< 16 | UInt64(truncatingIfNeeded: slotCount) &<< 32
    }

    /// The slot naming the node at `nodeOffset` (from the user base); never 0, as node 0 is the null page.
    @inlinable
    public static func slot(nodeOffset: Int, minShift: Int) -> UInt32 {
        UInt32(truncatingIfNeeded: nodeOffset &>> minShift)
    }

    /// The offset (from the user base) of the usable bytes of the node a slot names.
    @inlinable
    public static func offset(ofSlot slot: UInt32, minShift: Int) -> Int {
        Int(slot) &<< minShift &+ AllocationHeader.size
    }

    /// An entry's meta word: the flags (bits 0..<8, the only bits that ever change), log2 of the
    /// fan-out (8..<12), the path's length (16..<32), and the hash's high half (32..<64), which
    /// rejects most non-matching entries without comparing bytes.
    public struct Meta: Hashable, Sendable {
        public let rawValue: UInt64
        @inlinable public init(rawValue: UInt64) { self.rawValue = rawValue }

        @inlinable
        public init(flags: UInt8, fanOutShift: Int, length: Int, hash: UInt64) {
            rawValue =
                UInt64(flags) | UInt64(truncatingIfNeeded: fanOutShift) &<< 8
                | Meta.matchKey(length: length, hash: hash)
        }

        @inlinable public var flags: UInt8 { UInt8(truncatingIfNeeded: rawValue) }
        @inlinable public var fanOutShift: Int { Int(truncatingIfNeeded: rawValue &>> 8) & 0xF }
        @inlinable public var length: Int { Int(truncatingIfNeeded: rawValue &>> 16) & 0xFFFF }
        /// The length and hash bits: what an entry of a path must have before its bytes are compared.
        @inlinable public var matchKey: UInt64 { rawValue & ~0xFFFF }
        /// The ``matchKey`` of a `length`-byte path with this hash.
        @inlinable
        public static func matchKey(length: Int, hash: UInt64) -> UInt64 {
            UInt64(truncatingIfNeeded: length) &<< 16 | hash & 0xFFFF_FFFF_0000_0000
        }
        /// The same entry with other flags.
        @inlinable public func with(flags: UInt8) -> Meta { Meta(rawValue: rawValue & ~0xFF | UInt64(flags)) }
    }

    // MARK: - Hash

    /// The path's 64-bit hash: 8 bytes at a time, each word multiplied in and folded, the length
    /// mixed in first, the result finished with SplitMix64's finaliser. The same in every process
    /// (no seed), so it is part of the format.
    @inlinable
    public static func hash(_ path: UnsafeRawBufferPointer) -> UInt64 {
        let count = path.count
        var state = 0x243F_6A88_85A3_08D3 ^ UInt64(truncatingIfNeeded: count) &* 0x9E37_79B9_7F4A_7C15
        var index = 0
        while index &+ 8 <= count {
            let word = UInt64(littleEndian: (path.baseAddress! + index).loadUnaligned(as: UInt64.self))
            state = fold((state ^ word) &* 0xBF58_476D_1CE4_E5B9)
            index &+= 8
        }
        if index < count {
            var tail: UInt64 = 0
            while index < count {
                tail = tail &<< 8 | UInt64(path[index])
                index &+= 1
            }
            state = fold((state ^ tail) &* 0x94D0_49BB_1331_11EB)
        }
        return finalised(state)
    }

    @inlinable static func fold(_ value: UInt64) -> UInt64 { value ^ value &>> 29 }

    /// SplitMix64's finaliser: every input bit flips about half the output bits.
    @inlinable
    public static func finalised(_ value: UInt64) -> UInt64 {
        var mixed = value
        mixed = (mixed ^ mixed &>> 30) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ mixed &>> 27) &* 0x94D0_49BB_1331_11EB
        return mixed ^ mixed &>> 31
    }

    /// The root slot of a hash: its high half scaled to the slot count (multiply and shift, no division).
    @inlinable
    public static func rootIndex(hash: UInt64, slotCount: Int) -> Int {
        Int(truncatingIfNeeded: ((hash &>> 32) &* UInt64(truncatingIfNeeded: slotCount)) &>> 32)
    }

    /// The bucket slot of a hash: its low half scaled to the slot count.
    @inlinable
    public static func bucketIndex(hash: UInt64, slotCount: Int) -> Int {
        Int(truncatingIfNeeded: ((hash & 0xFFFF_FFFF) &* UInt64(truncatingIfNeeded: slotCount)) &>> 32)
    }

    /// The child indices of a path below its bucket: `fanOutShift` bits at a time of a re-mixed
    /// hash, re-mixed again with a round number when 64 bits are used up (only paths whose whole
    /// hashes collide share a chain past that).
    public struct HashDigits {
        @usableFromInline let hash: UInt64
        @usableFromInline var bits: UInt64
        @usableFromInline var remaining = 64
        @usableFromInline var round: UInt64 = 0

        @inlinable
        public init(hash: UInt64) {
            self.hash = hash
            bits = PathCacheLayout.finalised(hash ^ 0x5851_F42D_4C95_7F2D)
        }

        /// The next child index of an entry with `2^fanOutShift` children.
        @inlinable
        public mutating func next(fanOutShift: Int) -> Int {
            if remaining < fanOutShift {
                round &+= 1
                bits = PathCacheLayout.finalised(hash ^ 0x5851_F42D_4C95_7F2D &+ round &* 0x9E37_79B9_7F4A_7C15)
                remaining = 64
            }
            let digit = Int(truncatingIfNeeded: bits & (1 &<< UInt64(fanOutShift) &- 1))
            bits &>>= UInt64(fanOutShift)
            remaining &-= fanOutShift
            return digit
        }
    }
}
