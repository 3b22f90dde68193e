// One live refresh of a cache, as `shmtop watch` makes it and `shmbench`'s `watch` group measures
// it: the words compared in passes sized to a time budget, the owner ledger and the census brought
// up to date from the blocks that changed, the path cache walked a slice at a time, and the
// statistics made. What only a view keeps (rates over a window, histories, a highlighted owner,
// re-attaching) is the view's; this is the part both share, so the benchmark measures the view's
// own refresh.

/// The state a live view keeps from one refresh of a cache to the next, and the refresh itself.
///
/// The first ``refresh(interval:)`` shows the snapshot taken when the refresh was made; each later
/// one brings the words up to date in place (one copy of them: a caller that keeps a
/// ``snapshot`` lets go of it before the next refresh, or the words are copied), finding the
/// blocks that changed, and updates every figure from those blocks instead of recounting.
/// Then ``statistics(ownerRates:)`` makes the figures, with owner rates the caller chooses (over
/// its own window, or of this refresh alone).
public struct LiveRefresh {
    /// The share of one core the comparison of the words may take: a pass compares as many words
    /// as it can in this share of the refresh interval, and a cache with more words is swept over
    /// several refreshes.
    public static let passShare = 0.01
    /// How old an owner's process state and command may grow before they are read again (an
    /// owner's allocations and bytes are never older than one refresh).
    public static let ownerStatePeriod = Duration.seconds(1)

    /// The inspector of the watched file.
    public let inspector: CacheInspector
    /// The words and header of the newest refresh.
    public private(set) var snapshot: CacheSnapshot
    /// Every owner's allocations, up to date with `snapshot`.
    public private(set) var ledger: OwnerLedger
    /// Where the passes over the words stand, and what they cost.
    public private(set) var series = SnapshotSeries()
    private var census: LiveCensus
    /// The owners' states and commands, read again once per ``ownerStatePeriod``.
    private var ownerStates = OwnerStates(period: ownerStatePeriod)
    /// The path cache's walk, a slice per refresh, and its counters.
    private var pathSeries = PathCacheSeries()
    /// The path cache sample of the last refresh, whose attribution the statistics carry.
    private var paths: PathCacheSample?
    /// False until the first refresh, which shows the snapshot taken at `init`.
    private var refreshed = false

    /// Takes the first snapshot of `inspector`'s file, and counts its census and owner ledger.
    public init(inspector: CacheInspector) throws(InspectError) {
        self.inspector = inspector
        snapshot = try inspector.snapshot(readingAllocations: false)
        ledger = try inspector.ownerLedger(of: snapshot)
        census = LiveCensus(of: snapshot)
    }

    /// What one refresh found.
    public struct Step: Sendable {
        /// What changed since the previous refresh; `nil` at the first, which compares nothing.
        public let changes: SnapshotChanges?
        /// Each owner's allocations and frees the ledger saw in the changed blocks.
        public let activity: OwnerActivity
        /// The blocks whose allocation headers the ledger read again, ascending.
        public let reread: [Int]
        /// The path cache's counters, their changes, and the last complete walk's figures.
        public let paths: PathCacheSample
    }

    /// Refreshes every figure; `interval` is the time until the next refresh, which the pass over
    /// the words is sized to (see ``passShare``). When reading the words fails, ``snapshot`` is
    /// left as it was; after any other failure the refresh is to be made again from the start.
    public mutating func refresh(interval: Duration) throws(InspectError) -> Step {
        guard refreshed else {
            refreshed = true
            return try finishStep(changes: nil, activity: OwnerActivity(), reread: [])
        }
        let usable = snapshot.usableBlocks
        let pass = series.nextPass(of: usable)
        let started = ContinuousClock.now
        let changes = try inspector.advance(&snapshot, series: &series, comparing: pass)
        series.adapt(
            words: pass.count, seconds: (.now - started).inSeconds, budget: Self.passShare * interval.inSeconds,
            usable: usable.count)
        census.apply(changes)
        let (activity, reread) = try inspector.update(&ledger, to: snapshot, changes: changes)
        return try finishStep(changes: changes, activity: activity, reread: reread)
    }

    /// Advances the path cache's walk by one slice and assembles the step.
    private mutating func finishStep(
        changes: SnapshotChanges?, activity: OwnerActivity, reread: [Int]
    ) throws(InspectError) -> Step {
        let paths = try inspector.advance(&pathSeries, root: snapshot.pathCacheRoot)
        self.paths = paths
        return Step(changes: changes, activity: activity, reread: reread, paths: paths)
    }

    /// The statistics of ``snapshot``: the census, the owners from the ledger (with `ownerRates`,
    /// when given, as each owner's rates), and the path cache's attribution of its nodes.
    public mutating func statistics(ownerRates: OwnerRates?) throws(InspectError) -> CacheStatistics {
        let allocations = try inspector.census(of: ledger, rates: ownerRates, states: &ownerStates)
        let statistics = CacheStatistics(census: census.census, snapshot: snapshot, allocations: allocations)
        guard let attribution = paths?.attribution else { return statistics }
        return statistics.attributing(attribution)
    }
}
