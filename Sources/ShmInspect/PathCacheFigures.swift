// The shared path cache as the inspector reports it: its shape from a walk of its nodes
// (ShmFormat's PathCacheWalk), who allocated those nodes, and the processes' path counters.
//
// Attribution. Every node of the path cache is an ordinary allocation whose header names the
// process that inserted it, and the cache keeps every node for good (PathCache.swift): a writer
// that exits leaves its entries to the cache, not leaked. So the figures that present owners
// take the path cache's nodes away from the owners that allocated them and show them as one
// line of their own, "held by the path cache" (``CacheStatistics/attributing(_:)``), where
// figures are presented; the owner ledger itself keeps counting headers as they are.

import ShmFormat
import ShmSystem

/// The allocations of one owner that hold path cache nodes, or of the whole cache.
public struct PathCacheHolding: Hashable, Sendable, Codable {
    /// Nodes (allocations).
    public internal(set) var allocations = 0
    /// Their node bytes (headers and rounding included).
    public internal(set) var bytes = 0
    /// The bytes their allocator asked for.
    public internal(set) var requestedBytes = 0

    /// Nothing held.
    public init() {}

    /// Counts one node of `nodeBytes` for which `requestedBytes` were asked.
    mutating func add(nodeBytes: Int, requestedBytes: Int) {
        allocations += 1
        bytes += nodeBytes
        self.requestedBytes += requestedBytes
    }
}

/// The path cache's nodes per owner pid, summed as a walk meets them: pids sorted in an array,
/// found by binary search after a check of the last one found. A dictionary would hash the pid of
/// every node, which was half of a walk's cost (a build has a few to a few thousand owners).
struct PathCacheHolders: Sendable {
    /// The owners met so far, ascending, and their nodes.
    private(set) var pids: [Int32] = []
    private(set) var holdings: [PathCacheHolding] = []
    /// The index of the owner found last.
    private var last = 0

    /// Counts a node of `nodeBytes`, `requestedBytes` asked, for `pid`.
    mutating func add(pid: Int32, nodeBytes: Int, requestedBytes: Int) {
        if last >= pids.count || pids[last] != pid {
            var low = 0
            var high = pids.count
            while low < high {
                let middle = (low + high) / 2
                if pids[middle] < pid { low = middle + 1 } else { high = middle }
            }
            if low == pids.count || pids[low] != pid {
                pids.insert(pid, at: low)
                holdings.insert(PathCacheHolding(), at: low)
            }
            last = low
        }
        holdings[last].add(nodeBytes: nodeBytes, requestedBytes: requestedBytes)
    }
}

/// One owner's nodes in the path cache.
public struct PathCacheHolder: Codable, Hashable, Sendable {
    /// The pid the nodes' allocation headers name.
    public let pid: Int32
    /// Its nodes, their bytes and the bytes asked for them.
    public let holding: PathCacheHolding
}

/// What one complete walk of a path cache found: the JSON object `pathCache.walk` (documented in
/// docs/snapshot.md).
public struct PathCacheFigures: Codable, Hashable, Sendable {
    /// Cached paths (entries).
    public let entries: Int
    /// Entries carrying the prefix flag (they answer for everything below them).
    public let prefixEntries: Int
    /// Root and bucket tables.
    public let tables: Int
    /// Node bytes of the tables.
    public let tableBytes: Int
    /// Node bytes of the entries (headers, child slots, path bytes and slack).
    public let entryBytes: Int
    /// The cached paths' own bytes (inside ``entryBytes``).
    public let pathBytes: Int
    /// Node bytes of the whole path cache: tables and entries.
    public let bytes: Int
    /// Nodes replaced or unlinked and waiting until no reader can hold them before they are
    /// freed. Always 0, by construction: the path cache never replaces, moves or frees a node it
    /// published (an insert fills an empty slot, an update changes flags in place; see the top of
    /// ShmPathCache's PathCache.swift), so there is nothing to reclaim. Reported as a figure so
    /// that a reader sees it rather than guesses it.
    public let nodesAwaitingReclamation: Int
    /// `depthHistogram[d]`: entries `d` entries below their bucket slot (0 = in the slot itself).
    public let depthHistogram: [Int]
    /// Slots naming something that is not a valid table or entry (0 in a healthy cache).
    public let invalidSlots: Int
    /// The nodes per owner pid (from their allocation headers), most bytes first (ties by pid).
    public let holders: [PathCacheHolder]

    /// The figures of a finished walk's `census`, with the nodes' `holders`.
    init(_ census: PathCacheCensus, holders: PathCacheHolders) {
        entries = census.entries
        prefixEntries = census.prefixEntries
        tables = census.tables
        tableBytes = census.tableNodeBytes
        entryBytes = census.entryNodeBytes
        pathBytes = census.pathBytes
        bytes = census.tableNodeBytes + census.entryNodeBytes
        nodesAwaitingReclamation = 0
        depthHistogram = census.depthCounts
        invalidSlots = census.invalidSlots
        self.holders = zip(holders.pids, holders.holdings).map { PathCacheHolder(pid: $0, holding: $1) }
            .sorted { ($0.holding.bytes, $1.pid) > ($1.holding.bytes, $0.pid) }
    }

    /// The nodes of every owner together: what the path cache holds.
    public var held: PathCacheHolding {
        holders.reduce(into: PathCacheHolding()) { sum, holder in
            sum.allocations += holder.holding.allocations
            sum.bytes += holder.holding.bytes
            sum.requestedBytes += holder.holding.requestedBytes
        }
    }
}

/// Searches, hits and inserts: counted by the processes in their owner-table entries, summed.
public struct PathActivity: Hashable, Sendable {
    /// Searches made.
    public internal(set) var searches = 0
    /// Searches answered by an entry or a prefix.
    public internal(set) var hits = 0
    /// Inserts (new paths and updated flags).
    public internal(set) var inserts = 0

    /// No activity.
    public init() {}

    /// The activity between two readings of the owner table: each entry's growth, where an
    /// entry that names another process now (its entry was reused, and the counters started
    /// again from 0) counts what the new process counted, and a counter that went down counts 0.
    /// Never negative.
    public init(from earlier: PathCounterReading, to later: PathCounterReading) {
        for (index, now) in later.counters.enumerated() {
            let sameProcess = earlier.identities[index] == later.identities[index]
            let before = sameProcess ? earlier.counters[index] : PathCounters()
            searches += Self.growth(from: before.searches, to: now.searches)
            hits += Self.growth(from: before.hits, to: now.hits)
            inserts += Self.growth(from: before.inserts, to: now.inserts)
        }
    }

    private static func growth(from earlier: UInt64, to later: UInt64) -> Int {
        later > earlier ? Int(clamping: later - earlier) : 0
    }

    /// This activity and `other`'s, summed.
    public func adding(_ other: PathActivity) -> PathActivity {
        var sum = self
        sum.searches += other.searches
        sum.hits += other.hits
        sum.inserts += other.inserts
        return sum
    }

    /// Hits per search, 0...1; `nil` without searches.
    public var hitRate: Double? { searches > 0 ? min(1, Double(hits) / Double(searches)) : nil }
}

/// The path counters of every owner-table entry at one reading (see ``OwnerTable``).
public struct PathCounterReading: Hashable, Sendable {
    /// Each entry's identity word (0: free).
    let identities: [UInt64]
    /// Each entry's counters.
    let counters: [PathCounters]

    /// The reading of a copy of the owner table (``OwnerTable/byteCount`` bytes).
    init(table: UnsafeRawBufferPointer) {
        identities = (0..<OwnerTable.entryCount).map { OwnerTable.identity(in: table, entry: $0) }
        counters = (0..<OwnerTable.entryCount).map { entry in
            OwnerTable.identity(in: table, entry: entry) == 0
                ? PathCounters() : OwnerTable.pathCounters(in: table, entry: entry)
        }
    }

    /// The counters of the processes in the table now, summed: everything they counted since they
    /// attached (a process that left and whose entry was taken by another is no longer in it).
    public var totals: PathActivity {
        var totals = PathActivity()
        for counter in counters {
            totals.searches += Int(clamping: counter.searches)
            totals.hits += Int(clamping: counter.hits)
            totals.inserts += Int(clamping: counter.inserts)
        }
        return totals
    }
}

/// Path cache activity per second over a stated number of seconds.
public struct PathCacheRates: Hashable, Sendable {
    /// What the processes did over `seconds`.
    public let activity: PathActivity
    /// The seconds `activity` covers (0: no rates yet).
    public let seconds: Double

    /// Rates of `activity` over `seconds`.
    public init(activity: PathActivity, seconds: Double) {
        self.activity = activity
        self.seconds = seconds
    }

    public var searchesPerSecond: Double { perSecond(activity.searches) }
    public var hitsPerSecond: Double { perSecond(activity.hits) }
    public var insertsPerSecond: Double { perSecond(activity.inserts) }
    /// Hits per search over the seconds; `nil` without searches.
    public var hitRate: Double? { activity.hitRate }

    private func perSecond(_ count: Int) -> Double { seconds > 0 ? Double(count) / seconds : 0 }
}

/// A walk's nodes per owner and in all, as ``CacheStatistics/attributing(_:)`` takes them from
/// their owners: made once per walk, not at every refresh that attributes them.
public struct PathCacheAttribution: Sendable {
    /// Every node of the walk: what the path cache holds.
    public let held: PathCacheHolding
    /// The nodes each owner pid allocated.
    let byOwner: [Int32: PathCacheHolding]

    /// The attribution of `figures`' holders.
    public init(_ figures: PathCacheFigures) {
        held = figures.held
        byOwner = Dictionary(uniqueKeysWithValues: figures.holders.map { ($0.pid, $0.holding) })
    }
}

/// A path cache as a live view sees it at one refresh.
public struct PathCacheSample: Sendable {
    /// The figures of the last complete walk; `nil` before the first walk ends.
    public let figures: PathCacheFigures?
    /// `figures`' attribution, made when their walk ended.
    public let attribution: PathCacheAttribution?
    /// How long before this refresh the walk the figures come from started: the most they lag.
    public let figuresAge: Duration
    /// The processes' counters now, summed (cumulative).
    public let totals: PathActivity
    /// What the processes did since the previous refresh.
    public let activity: PathActivity
}

/// The state a live view keeps between refreshes to walk the path cache a slice at a time
/// (``CacheInspector/advance(_:root:)``): a walk costs a cache miss or two per entry, and a
/// cache of 100 000 paths walked whole at every refresh would cost the watcher several times
/// its budget. A refresh visits at most ``nodesPerRefresh`` nodes; a complete census is
/// published when a walk ends, with its age. The next walk starts at once while the processes
/// count inserts (the cache may have grown), otherwise only ``idleRewalkPeriod`` after the
/// last one started: a cache nobody inserts into costs nothing between walks, and a process
/// that inserts without counting (one the owner table had no entry for) is seen that late.
public struct PathCacheSeries: Sendable {
    /// Tables and entries one refresh visits at most.
    public static let nodesPerRefresh = 2048
    /// How long after a walk started the next starts when no insert was counted meanwhile.
    public static let idleRewalkPeriod = Duration.seconds(30)
    var progress = PathCacheWalk.Progress()
    /// The current walk's holders so far, when it started, and the inserts counted then.
    var holders = PathCacheHolders()
    var walkStarted: ContinuousClock.Instant?
    var insertsAtWalkStart = 0
    /// The inserts counted when the walk of ``latest`` started.
    var insertsAtLatest = 0
    /// The last complete walk's figures, and when that walk started.
    var latest: (figures: PathCacheFigures, attribution: PathCacheAttribution, started: ContinuousClock.Instant)?
    /// The owner table's counters at the previous refresh.
    var counters: PathCounterReading?

    /// A series that has walked nothing yet.
    public init() {}

    /// Whether a new walk should start, no walk running, with `inserts` counted now: at once
    /// while inserts are counted, else once the last walk is ``idleRewalkPeriod`` old.
    func shouldStartWalk(inserts: Int, at now: ContinuousClock.Instant) -> Bool {
        guard let latest else { return true }
        return inserts != insertsAtLatest || now - latest.started >= Self.idleRewalkPeriod
    }
}

/// The path cache as `shmtop snapshot` reports it: the JSON key `pathCache`, and what the text's
/// "Path cache" section shows (documented in docs/snapshot.md).
public struct PathCacheReport: Codable, Hashable, Sendable {
    /// The last complete walk's figures; absent for a file without a path cache (no path
    /// inserted yet) and before a live view's first walk ends.
    public let walk: PathCacheFigures?
    /// Searches, hits and inserts the processes in the owner table counted since they attached.
    public let searches: Int
    public let hits: Int
    public let inserts: Int
    /// `hits / searches` of those counts; absent without searches.
    public let hitRate: Double?
    /// The seconds the rates cover (`snapshot --interval`, or the live view's rate window);
    /// absent without rates, and so are the rates.
    public let rateSeconds: Double?
    public let searchesPerSecond: Double?
    public let hitsPerSecond: Double?
    public let insertsPerSecond: Double?
    /// Hits per search over `rateSeconds`; absent without rates or without searches meanwhile.
    public let windowHitRate: Double?
    /// How long before the report the walk its figures come from started (0 for a snapshot,
    /// which walks the whole cache; a live view walks a slice per refresh).
    public let figuresAgeSeconds: Double

    /// The report of `walk` (`nil`: none), the counters' `totals`, the `rates` over a window (if
    /// any), and the figures' age.
    public init(
        walk: PathCacheFigures?, totals: PathActivity, rates: PathCacheRates? = nil, figuresAge: Duration = .zero
    ) {
        self.walk = walk
        searches = totals.searches
        hits = totals.hits
        inserts = totals.inserts
        hitRate = totals.hitRate
        rateSeconds = rates?.seconds
        searchesPerSecond = rates?.searchesPerSecond
        hitsPerSecond = rates?.hitsPerSecond
        insertsPerSecond = rates?.insertsPerSecond
        windowHitRate = rates?.hitRate
        figuresAgeSeconds = figuresAge.inSeconds
    }
}
