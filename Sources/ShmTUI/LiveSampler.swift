// Sampling a live cache: one refresh per sample (ShmInspect's LiveRefresh: the words compared in
// passes sized to a time budget, a census and an owner ledger kept up to date from the blocks that
// changed, the path cache walked a slice at a time, the statistics), and what only the view adds:
// rates averaged over a window, the histories of its sparklines, the highlighted owner's blocks,
// and re-attaching when the file goes away.

import ShmInspect

/// Rates averaged over the last ``RateWindow/span`` of samples.
struct RateSummary: Hashable, Sendable {
    var allocationsPerSecond = 0.0
    var freesPerSecond = 0.0
    var allocatedBytesPerSecond = 0.0
    var freedBytesPerSecond = 0.0
    var blocksChangedPerSecond = 0.0
    /// Seconds the figures cover (0 before the second sample).
    var seconds = 0.0

    /// Net growth of allocated bytes per second.
    var netBytesPerSecond: Double { allocatedBytesPerSecond - freedBytesPerSecond }
}

/// The rates between consecutive samples over a sliding time window. Rates between two samples
/// 0.1 s apart jump around; a one-second window reads like `top`. When a sweep of the cache takes
/// several passes, each pass finds the changes of its part since that part was last read, so the
/// window holds whole sweeps: then it has counted every part once over the seconds it covers.
struct RateWindow {
    /// How far back the summary looks at least.
    static let span = 1.0
    private var recent: [(rates: SnapshotRates, owners: OwnerActivity, paths: PathActivity)] = []

    mutating func add(_ rates: SnapshotRates, owners: OwnerActivity, paths: PathActivity, passesPerSweep: Int) {
        recent.append((rates, owners, paths))
        var covered = 0.0
        var keep = recent.count
        // Keep the newest samples that fill the span (at least one sweep), in whole sweeps.
        for (index, sample) in recent.enumerated().reversed() {
            covered += sample.rates.seconds
            keep = recent.count - index
            if covered >= Self.span, keep % max(1, passesPerSweep) == 0 { break }
        }
        recent.removeFirst(recent.count - keep)
    }

    /// Seconds the window covers.
    private var seconds: Double { recent.reduce(0) { $0 + $1.rates.seconds } }

    var summary: RateSummary {
        let seconds = seconds
        guard seconds > 0 else { return RateSummary() }
        func perSecond(_ value: (SnapshotRates) -> Int) -> Double {
            Double(recent.reduce(0) { $0 + value($1.rates) }) / seconds
        }
        return RateSummary(
            allocationsPerSecond: perSecond(\.allocations), freesPerSecond: perSecond(\.frees),
            allocatedBytesPerSecond: perSecond(\.allocatedBytes), freedBytesPerSecond: perSecond(\.freedBytes),
            blocksChangedPerSecond: perSecond(\.blocksChanged), seconds: seconds)
    }

    /// Each owner's allocations and frees over the window.
    var ownerRates: OwnerRates {
        OwnerRates(activity: recent.reduce(OwnerActivity()) { $0.adding($1.owners) }, seconds: seconds)
    }

    /// The path cache's searches, hits and inserts over the window.
    var pathRates: PathCacheRates {
        PathCacheRates(activity: recent.reduce(PathActivity()) { $0.adding($1.paths) }, seconds: seconds)
    }
}

/// The path cache as a frame shows it.
struct PathCachePanel: Sendable {
    /// False while the file has no path cache (no path inserted yet).
    let hasPathCache: Bool
    /// The last complete walk's figures (none before the first walk ends), the counters, and
    /// their rates over the rate window.
    let report: PathCacheReport
    /// The hit rate over the rate window at recent samples, oldest first (samples without
    /// searches are left out).
    let hitRateHistory: [Double]
}

/// Everything one refresh shows, computed once when the sample is taken.
struct LiveFrame: Sendable {
    /// The words and header of this refresh.
    let snapshot: CacheSnapshot
    /// Statistics of `snapshot`, owner figures included (from the owner ledger, with each
    /// owner's rates over the rate window).
    let statistics: CacheStatistics
    /// Rates over the last second (or whole sweeps, when longer).
    let rates: RateSummary
    /// Blocks whose word changed since the previous sample, ascending.
    let changedBlocks: [Int]
    /// For each of `changedBlocks`, how many more leaves it has taken than at the previous sample.
    let takenLeafDeltas: [Int]
    /// Utilisation of recent samples, oldest first.
    let utilisationHistory: [Double]
    /// Increases by one per sample, so views can cache what they derive from a frame.
    let sequence: Int
    /// How long before this snapshot the part of the cache read longest ago was read: the most
    /// any figure lags (0 while every refresh reads the whole cache).
    let figuresAge: Duration
    /// How long one read of the whole cache takes at the current pace.
    let sweepSeconds: Double
    /// The blocks holding allocations of the highlighted owner; `nil` when no owner is
    /// highlighted.
    let highlightedBlocks: BlockSet?
    /// The path cache's figures; `nil` in frames made without reading it (tests).
    let pathCache: PathCachePanel?

    /// A frame from its parts (the sampler makes them; tests may too).
    init(
        snapshot: CacheSnapshot, statistics: CacheStatistics, rates: RateSummary = RateSummary(),
        changedBlocks: [Int] = [],
        takenLeafDeltas: [Int] = [], utilisationHistory: [Double] = [], sequence: Int = 0, figuresAge: Duration = .zero,
        sweepSeconds: Double = 0, highlightedBlocks: BlockSet? = nil, pathCache: PathCachePanel? = nil
    ) {
        self.pathCache = pathCache
        self.snapshot = snapshot
        self.statistics = statistics
        self.rates = rates
        self.changedBlocks = changedBlocks
        self.takenLeafDeltas = takenLeafDeltas
        self.utilisationHistory = utilisationHistory
        self.sequence = sequence
        self.figuresAge = figuresAge
        self.sweepSeconds = sweepSeconds
        self.highlightedBlocks = highlightedBlocks
    }
}

/// Takes the samples of one watched path, attaching and re-attaching as the file comes and goes.
/// The refresh itself is ShmInspect's ``LiveRefresh``; the sampler keeps what only the view
/// needs: rates over a window, the histories, the highlighted owner's blocks, the last frame.
final class LiveSampler {
    /// What one sample produced.
    enum Outcome {
        case frame(LiveFrame)
        /// The file is gone, replaced, truncated or unreadable; the view keeps its last frame, which
        /// comes back here (`nil` when there was none) for a view that let go of it.
        case detached(InspectError, lastGood: LiveFrame?)
    }

    /// Utilisation samples kept for the sparkline.
    static let historyLength = 512

    let path: String
    private(set) var inspector: CacheInspector?
    /// The refresh of the attached file. The view's frames share its snapshot's words; the view
    /// lets go of them before the next sample, so the words are brought up to date in place.
    private var live: LiveRefresh?
    /// The highlighted owner's blocks, kept up to date from the blocks the ledger read again.
    private var highlighted: (pid: Int32, blocks: BlockSet)?
    private var rateWindow = RateWindow()
    private var history: [Double] = []
    private var hitRateHistory: [Double] = []
    private var sequence = 0
    /// The figures of the last frame, without its words: what a failed sample shows again, with
    /// the snapshot they were made from while the refresh still holds it (`takenAt`).
    private var lastFrame:
        (
            statistics: CacheStatistics, rates: RateSummary, figuresAge: Duration, sweepSeconds: Double,
            pathCache: PathCachePanel, takenAt: ContinuousClock.Instant
        )?
    /// The owner whose blocks frames list (``LiveFrame/highlightedBlocks``).
    var highlightedOwner: Int32?

    /// A sampler of `inspector`'s file.
    init(inspector: CacheInspector) {
        path = inspector.path
        self.inspector = inspector
    }

    /// Takes one sample (attaching first when detached); `interval` is the time until the next.
    func sample(interval: Duration) -> Outcome {
        do {
            if live == nil { live = try LiveRefresh(inspector: try attached()) }
            // Changed in place (a copy would copy the words).
            let step = try live!.refresh(interval: interval)
            return .frame(try frame(step, of: &live!, interval: interval))
        } catch {
            // When reading the words failed, they are as they were: the last frame again, without I/O.
            var lastGood: LiveFrame?
            if let last = lastFrame, let snapshot = live?.snapshot, snapshot.takenAt == last.takenAt {
                lastGood = LiveFrame(
                    snapshot: snapshot, statistics: last.statistics, rates: last.rates, utilisationHistory: history,
                    sequence: sequence, figuresAge: last.figuresAge, sweepSeconds: last.sweepSeconds,
                    pathCache: last.pathCache)
            }
            detach()
            return .detached(error, lastGood: lastGood)
        }
    }

    /// Forgets the attachment and everything relative to it; the next sample attaches again.
    private func detach() {
        inspector = nil
        live = nil
        lastFrame = nil
        highlighted = nil
        rateWindow = RateWindow()
        hitRateHistory.removeAll()
    }

    private func attached() throws(InspectError) -> CacheInspector {
        if let inspector { return inspector }
        let fresh = try CacheInspector(path: path)
        inspector = fresh
        history.removeAll()
        return fresh
    }

    /// Appends `sample` to a history of the panel's sparklines, keeping the last `historyLength`.
    private static func append(_ sample: Double, to history: inout [Double]) {
        history.append(sample)
        if history.count > historyLength { history.removeFirst(history.count - historyLength) }
    }

    /// The frame of the refresh `step` made: its changes added to the rate window, the statistics
    /// with each owner's rates over the window, the histories, and the highlighted owner's blocks,
    /// brought up to date from the blocks whose headers the ledger read again.
    private func frame(
        _ step: LiveRefresh.Step, of live: inout LiveRefresh, interval: Duration
    ) throws(InspectError) -> LiveFrame {
        let series = live.series
        if let changes = step.changes {
            rateWindow.add(
                changes.rates, owners: step.activity, paths: step.paths.activity,
                passesPerSweep: series.passesPerSweep)
        }
        let statistics = try live.statistics(ownerRates: step.changes == nil ? nil : rateWindow.ownerRates)
        Self.append(statistics.utilisation, to: &history)
        let pathRates = step.changes == nil ? nil : rateWindow.pathRates
        if let hitRate = pathRates?.hitRate { Self.append(hitRate, to: &hitRateHistory) }
        let snapshot = live.snapshot
        let paths = step.paths
        let pathCache = PathCachePanel(
            hasPathCache: snapshot.pathCacheRoot != 0,
            report: PathCacheReport(
                walk: paths.figures, totals: paths.totals, rates: pathRates, figuresAge: paths.figuresAge),
            hitRateHistory: hitRateHistory)
        sequence += 1
        if let pid = highlightedOwner {
            let ledger = live.ledger
            if var kept = highlighted, kept.pid == pid {
                highlighted = nil  // its blocks are changed in place
                ledger.update(&kept.blocks, ownedBy: pid, blocks: step.reread)
                highlighted = kept
            } else {
                highlighted = (pid, ledger.blocks(ownedBy: pid))
            }
        } else {
            highlighted = nil
        }
        let sweepSeconds = series.sweepSeconds(interval: interval)
        let rates = rateWindow.summary
        lastFrame = (statistics, rates, series.figuresAge, sweepSeconds, pathCache, snapshot.takenAt)
        return LiveFrame(
            snapshot: snapshot, statistics: statistics, rates: rates, changedBlocks: step.changes?.blocks ?? [],
            takenLeafDeltas: step.changes?.takenLeafDeltas ?? [], utilisationHistory: history, sequence: sequence,
            figuresAge: series.figuresAge, sweepSeconds: sweepSeconds, highlightedBlocks: highlighted?.blocks,
            pathCache: pathCache)
    }
}
