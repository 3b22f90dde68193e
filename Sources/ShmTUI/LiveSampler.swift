// Sampling a live cache: one snapshot per refresh, and every figure the view shows computed once
// from it. This is a thin layer over ShmInspect; it adds what a watcher needs and a one-shot
// snapshot does not: a census kept up to date from the blocks that changed, rates averaged over a
// window, the utilisation history, a header scan on its own slower schedule, and re-attaching
// when the file goes away.

import ShmFormat
import ShmInspect

/// The last header scan (owners, requested bytes): statistics of a snapshot that read them.
public struct HeaderScan: Sendable {
    /// Statistics of the scanned snapshot (``CacheStatistics/owners`` is set).
    public let statistics: CacheStatistics
    /// When the scan's snapshot was taken.
    public let takenAt: ContinuousClock.Instant
}

/// Rates averaged over the last ``RateWindow/span`` of samples.
public struct RateSummary: Hashable, Sendable {
    public var allocationsPerSecond = 0.0
    public var freesPerSecond = 0.0
    public var allocatedBytesPerSecond = 0.0
    public var freedBytesPerSecond = 0.0
    public var blocksChangedPerSecond = 0.0
    /// Seconds the figures cover (0 before the second sample).
    public var seconds = 0.0

    /// Net growth of allocated bytes per second.
    public var netBytesPerSecond: Double { allocatedBytesPerSecond - freedBytesPerSecond }
}

/// The rates between consecutive samples over a sliding time window. Rates between two samples
/// 0.1 s apart jump around; a one-second window reads like `top`.
struct RateWindow {
    /// How far back the summary looks.
    static let span = 1.0
    private var recent: [SnapshotRates] = []

    mutating func add(_ rates: SnapshotRates) {
        recent.append(rates)
        var covered = 0.0
        var keep = recent.count
        // Keep the newest samples that fill the span (at least one).
        for (index, sample) in recent.enumerated().reversed() {
            covered += sample.seconds
            keep = recent.count - index
            if covered >= Self.span { break }
        }
        recent.removeFirst(recent.count - keep)
    }

    var summary: RateSummary {
        let seconds = recent.reduce(0) { $0 + $1.seconds }
        guard seconds > 0 else { return RateSummary() }
        func perSecond(_ value: (SnapshotRates) -> Int) -> Double { Double(recent.reduce(0) { $0 + value($1) }) / seconds }
        return RateSummary(
            allocationsPerSecond: perSecond(\.allocations), freesPerSecond: perSecond(\.frees),
            allocatedBytesPerSecond: perSecond(\.allocatedBytes), freedBytesPerSecond: perSecond(\.freedBytes),
            blocksChangedPerSecond: perSecond(\.blocksChanged), seconds: seconds)
    }
}

/// Everything one refresh shows, computed once when the sample is taken.
public struct LiveFrame: Sendable {
    /// The words and header of this refresh.
    public let snapshot: CacheSnapshot
    /// Statistics of `snapshot` (owner figures only on frames that scanned headers; see `headerScan`).
    public let statistics: CacheStatistics
    /// The latest header scan: owners, requested bytes, leaks.
    public let headerScan: HeaderScan?
    /// Rates over the last second.
    public let rates: RateSummary
    /// Blocks whose word changed since the previous sample, ascending.
    public let changedBlocks: [Int]
    /// For each of `changedBlocks`, how many more leaves it has taken than at the previous sample.
    public let takenLeafDeltas: [Int]
    /// Utilisation of recent samples, oldest first.
    public let utilisationHistory: [Double]
    /// Increases by one per sample, so views can cache what they derive from a frame.
    public let sequence: Int
}

/// Takes the samples of one watched path, attaching and re-attaching as the file comes and goes.
final class LiveSampler {
    /// What one sample produced.
    enum Outcome {
        case frame(LiveFrame)
        /// The file is gone, replaced, truncated or unreadable; the view keeps its last frame.
        case detached(InspectError)
    }

    /// The shortest time between two header scans.
    static let minimumScanInterval = Duration.seconds(2)
    /// From the second scan on, a header scan may take at most 1/`scanCostDivisor` of the time: a
    /// scan of a big, full cache reads every used block, so its interval grows with its cost.
    static let scanCostDivisor = 400
    /// Utilisation samples kept for the sparkline.
    static let historyLength = 512

    let path: String
    private(set) var inspector: CacheInspector?
    private var previous: CacheSnapshot?
    /// Words of the sample before `previous`, reused for the next one.
    private var recycled = RecycledWords()
    private var census: BuddyCensus?
    private var headerScan: HeaderScan?
    private var nextScan = ContinuousClock.now
    private var rateWindow = RateWindow()
    private var history: [Double] = []
    private var sequence = 0

    /// A sampler of `inspector`'s file.
    init(inspector: CacheInspector) {
        path = inspector.path
        self.inspector = inspector
    }

    /// Takes one sample (attaching first when detached).
    func sample() -> Outcome {
        do {
            let inspector = try attached()
            let scanning = ContinuousClock.now >= nextScan
            let started = ContinuousClock.now
            let snapshot: CacheSnapshot, changes: SnapshotChanges?
            if let previous {
                (snapshot, changes) = try inspector.snapshot(readingAllocations: scanning, after: previous, recycling: &recycled)
            } else {
                (snapshot, changes) = (try inspector.snapshot(readingAllocations: scanning), nil)
            }
            if scanning {
                // The first sample also copies every word and the index once: its cost says little
                // about the scans to come, so the next one follows after the shortest interval
                // (which also catches a cache that fills right after attaching, as in `demo`).
                let cost = previous == nil ? .zero : ContinuousClock.now - started
                nextScan = started + max(Self.minimumScanInterval, cost * Self.scanCostDivisor)
            }
            return .frame(frame(for: snapshot, changes: changes, scanned: scanning))
        } catch {
            detach()
            return .detached(error)
        }
    }

    /// Forgets the attachment and everything relative to it; the next sample attaches again.
    private func detach() {
        inspector = nil
        previous = nil
        recycled = RecycledWords()
        census = nil
        headerScan = nil
        rateWindow = RateWindow()
        nextScan = .now
    }

    private func attached() throws(InspectError) -> CacheInspector {
        if let inspector { return inspector }
        let fresh = try CacheInspector(path: path)
        inspector = fresh
        history.removeAll()
        return fresh
    }

    /// The figures of `snapshot`; the census is updated from the blocks that changed since the
    /// previous sample instead of recounted (a live cache changes a few thousand of its blocks
    /// between two refreshes, out of hundreds of thousands).
    private func frame(for snapshot: CacheSnapshot, changes: SnapshotChanges?, scanned: Bool) -> LiveFrame {
        let tree = snapshot.tree
        var changed: [Int] = []
        var deltas: [Int] = []
        if let changes, let census {
            // The snapshot was read by difference from the previous one: rates, census and
            // heatmap deltas are computed from the changed blocks alone.
            rateWindow.add(changes.rates)
            changed = changes.blocks
            deltas = zip(changes.earlierWords, changes.laterWords).map { tree.takenLeafCount($1) - tree.takenLeafCount($0) }
            self.census = changes.census(updating: census)
        } else {
            census = snapshot.words[snapshot.usableBlocks].withUnsafeBufferPointer { BuddyCensus(tree: tree, words: $0) }
        }
        let statistics = CacheStatistics(census: census!, snapshot: snapshot)
        if scanned { headerScan = HeaderScan(statistics: statistics, takenAt: snapshot.takenAt) }
        history.append(statistics.utilisation)
        if history.count > Self.historyLength { history.removeFirst(history.count - Self.historyLength) }
        previous = snapshot
        sequence += 1
        return LiveFrame(
            snapshot: snapshot, statistics: statistics, headerScan: headerScan, rates: rateWindow.summary,
            changedBlocks: changed, takenLeafDeltas: deltas, utilisationHistory: history, sequence: sequence)
    }
}
