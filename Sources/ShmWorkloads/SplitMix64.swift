// The seedable generator every workload of the project draws from (load writers, soaks, benchmarks).

/// A small, fast, seedable generator (SplitMix64): the same seed always gives the same sequence, so
/// a writer can regenerate an allocation's bytes to verify them without keeping a copy, and a
/// benchmark draws its request sizes at next to no cost.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    private var state: UInt64

    /// A generator whose sequence is fixed by `seed`.
    public init(seed: UInt64) { state = seed }

    @inline(__always)
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var mixed = state
        mixed = (mixed ^ (mixed &>> 30)) &* 0xBF58_476D_1CE4_E5B9
        mixed = (mixed ^ (mixed &>> 27)) &* 0x94D0_49BB_1331_11EB
        return mixed ^ (mixed &>> 31)
    }

    /// A uniform integer in `0..<bound` (`bound` > 0). Concrete, with no generic code behind it,
    /// so a signal handler may call it even in a debug build.
    @inline(__always)
    public mutating func below(_ bound: Int) -> Int { Int(truncatingIfNeeded: next() % UInt64(bound)) }

    /// A uniform integer in `range` (the modulo bias, below 2^-40 for the ranges used here, is
    /// irrelevant to workloads).
    @inline(__always)
    public mutating func uniform(_ range: ClosedRange<Int>) -> Int {
        range.lowerBound &+ Int(truncatingIfNeeded: next() % UInt64(range.count))
    }
}
