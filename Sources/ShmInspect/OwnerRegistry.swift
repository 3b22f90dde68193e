// The owner table of a cache file as the inspector reads it: who each pid in the headers was, and
// who was claiming or freeing a node when it died.

import ShmFormat

/// A copy of a cache's owner table (see ``OwnerTable``), indexed for the allocation scan.
public struct OwnerRegistry: Sendable {
    /// The identity word of each registered pid.
    private var identities: [Int32: UInt64] = [:]
    /// The pid whose intent names a node, by intent word.
    private var claimers: [UInt64: Int32] = [:]

    /// A registry with no entries: every owner is judged by pid alone.
    public init() {}

    /// Indexes a copy of the table (``OwnerTable/byteCount`` bytes).
    public init(table: UnsafeRawBufferPointer) {
        precondition(table.count >= OwnerTable.byteCount, "a whole owner table")
        for entry in 0..<OwnerTable.entryCount {
            let identity = OwnerTable.identity(in: table, entry: entry)
            let pid = OwnerTable.pid(ofIdentity: identity)
            guard pid > 0 else { continue }
            identities[pid] = identity
            for slot in 0..<OwnerTable.intentSlots {
                let intent = OwnerTable.intent(in: table, entry: entry, slot: slot)
                if intent != 0 { claimers[intent] = pid }
            }
        }
    }

    /// What became of the owner `pid`, checked against the start time it registered with, so a
    /// reused pid counts as dead.
    public func state(of pid: Int32) -> ProcessState {
        ProcessState(
            pid: pid, expectedStartTime: identities[pid].map { UInt64(OwnerTable.startTimeBits(ofIdentity: $0)) })
    }

    /// The process whose intent names node `node` of block `block`: the one claiming or freeing
    /// it, or that died doing so.
    public func claimer(block: Int, node: Int) -> Int32? { claimers[OwnerTable.intent(block: block, node: node)] }
}
