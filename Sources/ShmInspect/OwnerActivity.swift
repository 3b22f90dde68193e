// What the owners allocated and freed between two readings of an owner ledger, and as rates.

/// Allocations and frees per owner pid between two readings of a ledger, seen in the words: a
/// node that appeared counts for the owner its header names, one that disappeared for the owner
/// it counted for before. Nodes in flight count for nobody.
public struct OwnerActivity: Hashable, Sendable {
    /// Allocations and frees of each pid.
    public private(set) var counts: [Int32: (allocations: Int, frees: Int)] = [:]

    public init() {}

    /// The activity `counts` holds.
    init(counts: [Int32: (allocations: Int, frees: Int)]) {
        self.counts = counts
    }

    /// This activity and `other`'s, summed.
    public func adding(_ other: OwnerActivity) -> OwnerActivity {
        var sum = self
        for (pid, count) in other.counts {
            sum.counts[pid, default: (0, 0)].allocations += count.allocations
            sum.counts[pid, default: (0, 0)].frees += count.frees
        }
        return sum
    }

    public static func == (left: OwnerActivity, right: OwnerActivity) -> Bool {
        left.counts.count == right.counts.count
            && left.counts.allSatisfy { pid, count in
                right.counts[pid].map { $0 == count } ?? false
            }
    }

    public func hash(into hasher: inout Hasher) {
        for pid in counts.keys.sorted() {
            hasher.combine(pid)
            hasher.combine(counts[pid]!.allocations)
            hasher.combine(counts[pid]!.frees)
        }
    }
}

/// Allocations and frees per second of each owner, over a stated number of seconds.
public struct OwnerRates: Hashable, Sendable {
    /// What the owners did over `seconds`.
    public let activity: OwnerActivity
    /// The seconds `activity` covers.
    public let seconds: Double

    /// Rates of `activity` over `seconds`.
    public init(activity: OwnerActivity, seconds: Double) {
        self.activity = activity
        self.seconds = seconds
    }

    /// Allocations and frees per second of `pid` (0 and 0 for a pid that did neither; `nil`
    /// before any time has passed).
    public func perSecond(of pid: Int32) -> (allocations: Double, frees: Double)? {
        guard seconds > 0 else { return nil }
        let count = activity.counts[pid] ?? (0, 0)
        return (Double(count.allocations) / seconds, Double(count.frees) / seconds)
    }
}
