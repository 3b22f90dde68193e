// Sampling a live cache: one snapshot per refresh, and every figure the view shows computed once
// from it. This is a thin layer over ShmInspect; it adds what a watcher needs and a one-shot
// snapshot does not: the words compared in passes sized to a time budget (a large cache is swept
// over several refreshes), a census and an owner ledger kept up to date from the blocks that
// changed, rates averaged over a window, the utilisation history, and re-attaching when the file
// goes away.

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
final class LiveSampler {
    /// What one sample produced.
    enum Outcome {
        case frame(LiveFrame)
        /// The file is gone, replaced, truncated or unreadable; the view keeps its last frame, which
        /// comes back here (`nil` when there was none) for a view that let go of it.
        case detached(InspectError, lastGood: LiveFrame?)
    }

    /// The share of one core the comparison of the words may take: a pass compares as many words
    /// as it can in this share of the refresh interval, and a cache with more words is swept over
    /// several refreshes.
    static let passShare = 0.01
    /// How old an owner's process state and command may grow before they are read again (an
    /// owner's allocations and bytes are never older than one refresh).
    static let ownerStatePeriod = Duration.seconds(1)
    /// Utilisation samples kept for the sparkline.
    static let historyLength = 512

    let path: String
    private(set) var inspector: CacheInspector?
    /// The newest snapshot. The view's frames share its words; the view lets go of them before
    /// the next sample, so the words are brought up to date in place (one copy).
    private var current: CacheSnapshot?
    private var series = SnapshotSeries()
    private var census: LiveCensus?
    private var ledger: OwnerLedger?
    /// The owners' states and commands, read again once per ``ownerStatePeriod``.
    private var ownerStates = OwnerStates(period: ownerStatePeriod)
    /// The highlighted owner's blocks, kept up to date from the blocks the ledger read again.
    private var highlighted: (pid: Int32, blocks: BlockSet)?
    private var rateWindow = RateWindow()
    private var history: [Double] = []
    /// The path cache's walk, a slice per sample, and its counters.
    private var pathSeries = PathCacheSeries()
    private var hitRateHistory: [Double] = []
    private var sequence = 0
    /// The figures of the last frame, without its words: what a failed sample shows again.
    private var lastFrame:
        (
            statistics: CacheStatistics, rates: RateSummary, figuresAge: Duration, sweepSeconds: Double,
            pathCache: PathCachePanel
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
            let inspector = try attached()
            guard var snapshot = current, var ledger else {
                let snapshot = try inspector.snapshot(readingAllocations: false)
                let ledger = try inspector.ownerLedger(of: snapshot)
                census = LiveCensus(of: snapshot)
                return .frame(
                    try frame(
                        snapshot, ledger: ledger, changes: nil, reread: [], activity: OwnerActivity(),
                        inspector: inspector, interval: interval))
            }
            // Let go of this sampler's references, so that the words are changed in place.
            current = nil
            self.ledger = nil
            let usable = snapshot.usableBlocks
            let pass = series.nextPass(of: usable)
            let started = ContinuousClock.now
            let changes: SnapshotChanges
            do { changes = try inspector.advance(&snapshot, series: &series, comparing: pass) } catch {
                // `advance` left the words as they were: the last frame again, without I/O.
                let lastGood = lastFrame.map { last in
                    LiveFrame(
                        snapshot: snapshot, statistics: last.statistics, rates: last.rates, utilisationHistory: history,
                        sequence: sequence, figuresAge: last.figuresAge, sweepSeconds: last.sweepSeconds,
                        pathCache: last.pathCache)
                }
                detach()
                return .detached(error, lastGood: lastGood)
            }
            series.adapt(
                words: pass.count, seconds: Self.seconds(.now - started),
                budget: Self.passShare * Self.seconds(interval),
                usable: usable.count)
            let (activity, reread) = try inspector.update(&ledger, to: snapshot, changes: changes)
            return .frame(
                try frame(
                    snapshot, ledger: ledger, changes: changes, reread: reread, activity: activity,
                    inspector: inspector, interval: interval))
        } catch {
            detach()
            return .detached(error, lastGood: nil)
        }
    }

    private static func seconds(_ duration: Duration) -> Double { Double(duration / .nanoseconds(1)) / 1e9 }

    /// Forgets the attachment and everything relative to it; the next sample attaches again.
    private func detach() {
        inspector = nil
        current = nil
        lastFrame = nil
        series = SnapshotSeries()
        census = nil
        ledger = nil
        ownerStates = OwnerStates(period: Self.ownerStatePeriod)
        highlighted = nil
        rateWindow = RateWindow()
        pathSeries = PathCacheSeries()
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

    /// The figures of `snapshot`; the census is updated from the blocks that changed since the
    /// previous sample instead of recounted (a live cache changes a few thousand of its blocks
    /// between two refreshes, out of hundreds of thousands), as the ledger was, and so are the
    /// highlighted owner's blocks from `reread`, the blocks whose headers the ledger read again.
    private func frame(
        _ snapshot: CacheSnapshot, ledger: OwnerLedger, changes: SnapshotChanges?, reread: [Int],
        activity: OwnerActivity,
        inspector: CacheInspector,
        interval: Duration
    ) throws(InspectError) -> LiveFrame {
        var changed: [Int] = []
        var deltas: [Int] = []
        let paths = try inspector.advance(&pathSeries, root: snapshot.pathCacheRoot)
        if let changes, var census {
            rateWindow.add(
                changes.rates, owners: activity, paths: paths.activity, passesPerSweep: series.passesPerSweep)
            changed = changes.blocks
            deltas = snapshot.takenLeafDeltas(changes)
            census.apply(changes)
            self.census = census
        }
        let allocations = try inspector.census(
            of: ledger, rates: changes == nil ? nil : rateWindow.ownerRates, states: &ownerStates)
        var statistics = CacheStatistics(census: self.census!.census, snapshot: snapshot, allocations: allocations)
        if let attribution = paths.attribution { statistics = statistics.attributing(attribution) }
        Self.append(statistics.utilisation, to: &history)
        let pathRates = changes == nil ? nil : rateWindow.pathRates
        if let hitRate = pathRates?.hitRate { Self.append(hitRate, to: &hitRateHistory) }
        let pathCache = PathCachePanel(
            hasPathCache: snapshot.pathCacheRoot != 0,
            report: PathCacheReport(
                walk: paths.figures, totals: paths.totals, rates: pathRates, figuresAge: paths.figuresAge),
            hitRateHistory: hitRateHistory)
        sequence += 1
        if let pid = highlightedOwner {
            if var kept = highlighted, kept.pid == pid {
                highlighted = nil  // its blocks are changed in place
                ledger.update(&kept.blocks, ownedBy: pid, blocks: reread)
                highlighted = kept
            } else {
                highlighted = (pid, ledger.blocks(ownedBy: pid))
            }
        } else {
            highlighted = nil
        }
        current = snapshot
        self.ledger = ledger
        let sweepSeconds = series.sweepSeconds(interval: interval)
        let rates = rateWindow.summary
        lastFrame = (statistics, rates, series.figuresAge, sweepSeconds, pathCache)
        return LiveFrame(
            snapshot: snapshot, statistics: statistics, rates: rates, changedBlocks: changed,
            takenLeafDeltas: deltas, utilisationHistory: history, sequence: sequence, figuresAge: series.figuresAge,
            sweepSeconds: sweepSeconds, highlightedBlocks: highlighted?.blocks, pathCache: pathCache)
    }
}
