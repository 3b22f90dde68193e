// What the path cache costs the live view: a refresh walks a slice of it (ShmInspect's
// PathCacheSeries), so its cost per refresh is bounded whatever the cache's size.

import ShmInspect
import ShmSystem

extension PathBenchmarks {
    /// Microseconds per refresh a watcher spends on the path cache of the file at `path` while
    /// it walks it: the median over the refreshes of `walks` whole walks, each a fresh series (a
    /// slice of ``PathCacheSeries/nodesPerRefresh`` nodes, the owners' headers and the owner
    /// table's counters), and the refreshes one walk takes.
    static func watcherSlice(path: String, walks: Int) throws -> (microseconds: Double, refreshes: Int) {
        let inspector = try CacheInspector(path: path)
        let root = try inspector.pathCacheRoot()
        var times: [Double] = []
        var refreshes = 0
        for _ in 0..<walks {
            var series = PathCacheSeries()
            refreshes = 0
            var finished = false
            while !finished {
                let start = SystemClock.monotonicNanoseconds()
                finished = try inspector.advance(&series, root: root).figures != nil
                times.append(Double(SystemClock.monotonicNanoseconds() - start) / 1000)
                refreshes += 1
            }
        }
        return (median(times), refreshes)
    }
}
