// Reading the shared path cache: a walk of its nodes in the read-only data mapping (whole for a
// snapshot, a slice per refresh for a live view), the owners of those nodes, and the processes'
// path counters in the owner table.

import ShmFormat

extension CacheInspector {
    /// The figures of a complete walk of the path cache whose root is `root` (a snapshot's
    /// ``FileHeader/pathCacheRoot``); `nil` when the file has no path cache (root 0) or its data
    /// region could not be mapped. `visit` sees every entry's path bytes and flags.
    public func pathCache(
        root: UInt64, _ visit: (_ path: UnsafeRawBufferPointer, _ flags: UInt8) -> Void = { _, _ in }
    ) throws(InspectError) -> PathCacheFigures? {
        guard root != 0 else { return nil }
        var progress = PathCacheWalk.Progress()
        var holders = PathCacheHolders()
        guard try walkPathCache(root: root, progress: &progress, holders: &holders, nodes: Int.max, visit) else {
            return nil
        }
        return PathCacheFigures(progress.census, holders: holders)
    }

    /// The report of the path cache at `root` from a whole walk and the counters read now, with
    /// rates since `earlier` (counters read `seconds` before) when given; `statistics` (of the
    /// same snapshot) get the path cache's nodes attributed to it (``CacheStatistics/attributing(_:)``).
    public func pathCacheReport(
        root: UInt64, attributingTo statistics: inout CacheStatistics,
        since earlier: (counters: PathCounterReading, seconds: Double)? = nil
    ) throws(InspectError) -> PathCacheReport {
        // The counters first: the snapshot's seconds are measured from when its words were read,
        // which the walk of the whole path cache would otherwise push the reading away from.
        let counters = try readPathCounters()
        let figures = try pathCache(root: root)
        if let figures { statistics = statistics.attributing(PathCacheAttribution(figures)) }
        let rates = earlier.map {
            PathCacheRates(activity: PathActivity(from: $0.counters, to: counters), seconds: $0.seconds)
        }
        return PathCacheReport(walk: figures, totals: counters.totals, rates: rates)
    }

    /// Brings `series` one slice further: up to ``PathCacheSeries/nodesPerRefresh`` nodes of the
    /// walk of the path cache at `root`, publishing its figures when the walk ends (the next
    /// starts when ``PathCacheSeries`` says), and the owner table's counters read afresh.
    public func advance(_ series: inout PathCacheSeries, root: UInt64) throws(InspectError) -> PathCacheSample {
        let now = ContinuousClock.now
        let counters = try readPathCounters()
        let activity = series.counters.map { PathActivity(from: $0, to: counters) } ?? PathActivity()
        series.counters = counters
        let totals = counters.totals
        let inserts = totals.inserts
        if root != 0,
            series.walkStarted != nil || series.progress.root != root
                || series.shouldStartWalk(inserts: inserts, at: now)
        {
            if series.walkStarted == nil || series.progress.root != root {
                series.progress = PathCacheWalk.Progress()
                series.holders = PathCacheHolders()
                series.walkStarted = now
                series.insertsAtWalkStart = inserts
            }
            let mapped = try walkPathCache(
                root: root, progress: &series.progress, holders: &series.holders, nodes: PathCacheSeries.nodesPerRefresh
            )
            if mapped, series.progress.isFinished {
                let figures = PathCacheFigures(series.progress.census, holders: series.holders)
                series.latest = (figures, PathCacheAttribution(figures), series.walkStarted!)
                series.insertsAtLatest = series.insertsAtWalkStart
                series.walkStarted = nil
            }
        }
        return PathCacheSample(
            figures: series.latest?.figures, attribution: series.latest?.attribution,
            figuresAge: series.latest.map { now - $0.started } ?? .zero,
            totals: totals, activity: activity)
    }

    /// The header's path cache root word as the file holds it now (0: no path cache), read alone:
    /// a lister of paths needs nothing else of a snapshot.
    public func pathCacheRoot() throws(InspectError) -> UInt64 {
        try checkFile()
        return try readWords(count: 1, at: FileHeader.Field.pathCacheRoot)[0]
    }

    /// The path counters of every owner-table entry, read now.
    public func readPathCounters() throws(InspectError) -> PathCounterReading {
        try withOwnerTable(PathCounterReading.init(table:))
    }

    /// Continues `progress` by up to `nodes` nodes in the data mapping, adding each node's owner
    /// (from its allocation header) to `holders`. Returns false when the data region is not
    /// mapped. A read that met a truncation is discarded (the walk starts again) and reported.
    private func walkPathCache(
        root: UInt64, progress: inout PathCacheWalk.Progress, holders: inout PathCacheHolders, nodes: Int,
        _ visit: (_ path: UnsafeRawBufferPointer, _ flags: UInt8) -> Void = { _, _ in }
    ) throws(InspectError) -> Bool {
        guard let dataMapping else { return false }
        let geometry = geometry
        // The walk and the holders are moved out (changed in place, not copied) and put back only
        // when the read was whole.
        var walked = PathCacheWalk.Progress()
        var held = PathCacheHolders()
        swap(&walked, &progress)
        swap(&held, &holders)
        let whole: Void? = dataMapping.read(descriptor) { mapped in
            let walk = PathCacheWalk(data: mapped.bytes(count: geometry.capacity), geometry: geometry, root: root)
            walk.resume(&walked, nodes: nodes) { node in
                if !node.isTable { visit(node.path, node.flags) }
                // A published node's header was written before the slot naming it, and never
                // changes: it names the process that inserted it.
                let header = AllocationHeader(rawValue: mapped.word(at: (node.offset - AllocationHeader.size) / 8))
                held.add(
                    pid: header?.ownerPID ?? 0, nodeBytes: node.nodeBytes, requestedBytes: header?.requestedSize ?? 0)
            }
        }
        guard whole != nil else {
            try checkFile()
            throw .truncated(path: path, size: dataMapping.faultedFileOffset ?? 0, expected: layout.fileSize)
        }
        swap(&walked, &progress)
        swap(&held, &holders)
        return true
    }
}
