// How a live view reads a cache whose words are too many to compare at every refresh.
//
// Comparing the words costs memory bandwidth: 8 bytes per block, 128 MiB for an idle 16 GiB cache,
// which at 10 refreshes a second took 15 % of a core. A series compares a slice of the words per
// refresh instead, as large as a time budget allows, and moves on round the cache: a small cache
// is compared whole at every refresh, a large one every few refreshes. The figures are then as
// old as the part read longest ago, which the series reports (``figuresAge``), as it reports how
// often the whole cache is read (``sweepSeconds``).

import ShmSystem

/// The state a series of ``CacheInspector/advance(_:series:comparing:)`` calls keeps: which
/// groups of words were all zero, where the next pass starts, and how long the passes took.
public struct SnapshotSeries: Sendable {
    /// One bit per group of ``ChangedWords/chunkWords`` usable words: set when the group of the
    /// snapshot's words is all zero (see ``ChangedWords/markEmptyGroups(of:in:)``).
    var emptyGroups: [UInt64] = []
    /// When the snapshot `emptyGroups` describes was taken.
    var basis: ContinuousClock.Instant?
    /// Blocks that changed at the last pass (room is made for about as many at the next).
    private(set) var changedLastTime = 0
    /// Where the next pass starts.
    private var cursor = 0
    /// When the passes of the last whole sweep were taken, oldest first.
    private var passTimes: [ContinuousClock.Instant] = []
    /// Passes that make one sweep of the whole cache at the current pass size.
    public private(set) var passesPerSweep = 1
    /// Usable words each pass compares at most; `nil`: all of them.
    public var wordsPerPass: Int?

    /// A series that knows nothing yet: its first pass compares every group in full.
    public init() {}

    /// The blocks the next pass compares: `wordsPerPass` words from where the last pass ended
    /// (round to the start again at the end of the cache), or all of `usable`.
    public func nextPass(of usable: Range<Int>) -> Range<Int> {
        guard let wordsPerPass, wordsPerPass < usable.count else { return usable }
        let start = usable.lowerBound + min(cursor, usable.count)
        return start..<min(usable.upperBound, start + wordsPerPass)
    }

    /// How long ago, before the newest pass, the part of the cache read longest ago was read: the
    /// most any figure of the series lags behind its newest snapshot (0 when every pass reads
    /// the whole cache).
    public var figuresAge: Duration {
        guard let first = passTimes.first, let last = passTimes.last else { return .zero }
        return last - first
    }

    /// Seconds one sweep of the whole cache takes at one pass per `interval`.
    public func sweepSeconds(interval: Duration) -> Double {
        Double(passesPerSweep) * interval.inSeconds
    }

    /// The fewest words a pass compares: 4 MiB of words, a 512 MiB cache of 1 KiB blocks. A
    /// busy cache of that size is read whole at every refresh, so its figures are never more
    /// than one refresh old, even when a refresh finds many changes and takes longer than the
    /// budget (comparing them costs less than the headers of the blocks that changed).
    public static let minimumWordsPerPass = 1 << 19

    /// Chooses the pass size from the last pass's cost: `seconds` to compare `words` words, for
    /// passes that should each take about `budget` seconds, and at least
    /// ``minimumWordsPerPass``. A pass grows to at most twice the last: one pass that happened to
    /// run fast (its pages warm, the machine idle) would otherwise size the next ones far past
    /// the budget (an idle 16 GiB cache was once read whole every 1.4 s instead of every 2–3 s).
    /// It shrinks at once. Sizes are rounded to whole spans of groups so that passes start on a
    /// word of `emptyGroups`.
    public mutating func adapt(words: Int, seconds: Double, budget: Double, usable: Int) {
        guard words > 0, seconds > 0 else { return }
        let affordable = min(Int(Double(words) * budget / seconds), 2 * words)
        let span = ChangedWords.spanWords
        let size = max(Self.minimumWordsPerPass, affordable / span * span)
        wordsPerPass = size >= usable ? nil : size
        passesPerSweep = wordsPerPass.map { (usable + $0 - 1) / $0 } ?? 1
    }

    /// `range` widened to whole spans of groups from `usable`'s start, within `usable`.
    func alignedRange(_ range: Range<Int>, usable: Range<Int>) -> Range<Int> {
        let span = ChangedWords.spanWords
        let clamped = range.clamped(to: usable)
        let lower = usable.lowerBound + (clamped.lowerBound - usable.lowerBound) / span * span
        let upper = min(
            usable.upperBound, usable.lowerBound + (clamped.upperBound - usable.lowerBound + span - 1) / span * span)
        return lower..<upper
    }

    /// The groups of `chunkWords` words over `usable`.
    static func groupCount(_ usable: Range<Int>) -> Int {
        (usable.count + ChangedWords.chunkWords - 1) / ChangedWords.chunkWords
    }

    /// Records a pass over `range` taken at `time` that found `changed` blocks changed.
    mutating func recordPass(_ range: Range<Int>, usable: Range<Int>, at time: ContinuousClock.Instant, changed: Int) {
        basis = time
        changedLastTime = changed
        cursor = range.upperBound >= usable.upperBound ? 0 : range.upperBound - usable.lowerBound
        passTimes.append(time)
        if passTimes.count > passesPerSweep { passTimes.removeFirst(passTimes.count - passesPerSweep) }
    }
}
