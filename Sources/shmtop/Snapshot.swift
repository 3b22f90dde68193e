import ArgumentParser
import Foundation
import ShmFormat
import ShmInspect

extension Shmtop {
    /// `shmtop snapshot`: the whole picture of a cache, as text or JSON.
    struct Snapshot: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a snapshot of a cache: memory, blocks, size classes, fragmentation, owners, heatmap.",
            discussion: """
                Opens the file read-only and never writes to it; safe while writers run. The heatmap uses \
                ░▒▓█ in a UTF-8 locale, otherwise (or with --ascii) the ramp ' .:-=+*#%@'. --json prints \
                one JSON object with stable keys (see docs/snapshot.md) instead of the text.
                """
        )

        @OptionGroup var file: CachePathArgument
        @Flag(help: "Print one JSON object instead of text.")
        var json = false
        @Flag(help: "Draw with ASCII characters only.")
        var ascii = false
        @Option(parsing: .unconditional, help: "Heatmap cells per row.")
        var width = 64
        @Option(
            name: .customLong("block"), parsing: .unconditionalSingleValue,
            help: ArgumentHelp("Also draw this block's tree and allocations (repeatable).", valueName: "n"))
        var blocks: [Int] = []
        @Option(
            parsing: .unconditional,
            help: ArgumentHelp(
                "Take a second snapshot this many seconds after the first and report it, with each owner's allocations and frees per second in between.",
                valueName: "seconds"))
        var interval: Double?

        func validate() throws {
            guard width >= 8 else { throw ValidationError("--width must be at least 8") }
            if let interval, !(interval > 0 && interval <= 3600) {
                throw ValidationError(
                    "--interval \(interval) is out of range: a number of seconds above 0, at most 3600")
            }
            if let negative = blocks.first(where: { $0 < 0 }) {
                throw ValidationError("block \(negative) is negative: blocks are numbered from 0")
            }
        }

        func run() throws {
            let path = try file.resolved()
            let inspector = try failingWithOneLine { () throws(InspectError) in try CacheInspector(path: path) }
            let blockCount = inspector.geometry.blockCount
            if let bad = blocks.first(where: { !(0..<blockCount).contains($0) }) {
                throw ValidationError("block \(bad) is out of range (0..<\(blockCount))")
            }
            let (snapshot, statistics, rateSeconds, pathCache) = try failingWithOneLine { () throws(InspectError) in
                if let interval { return try Self.series(inspector, seconds: interval) }
                let snapshot = try inspector.snapshot()
                var statistics = CacheStatistics(snapshot)
                let pathCache = try inspector.pathCacheReport(root: snapshot.pathCacheRoot, attributingTo: &statistics)
                return (snapshot, statistics, nil, pathCache)
            }
            let details = try failingWithOneLine { () throws(InspectError) in
                try blocks.map { block throws(InspectError) in try inspector.blockDetail(block) }
            }
            let text = SnapshotText(ascii: ascii || !SnapshotText.localeIsUTF8(), width: width)
            if json {
                let report = SnapshotReport(
                    snapshot: snapshot, statistics: statistics, details: details, heatmapAs: text,
                    rateSeconds: rateSeconds, pathCache: pathCache)
                print(report.jsonText(), terminator: "")
            } else {
                print(text.render(snapshot, statistics, pathCache: pathCache, blocks: details), terminator: "")
            }
        }

        /// Two snapshots `seconds` apart: the second, its statistics with the owners of an owner
        /// ledger brought up to it from the first (each owner's rates in between), the seconds,
        /// and the path cache's report with its rates over the same seconds.
        static func series(
            _ inspector: CacheInspector, seconds: Double
        ) throws(InspectError) -> (CacheSnapshot, CacheStatistics, Double?, PathCacheReport) {
            let counters = try inspector.readPathCounters()
            let first = try inspector.snapshot(readingAllocations: false)
            var ledger = try inspector.ownerLedger(of: first)
            usleep(useconds_t(seconds * 1e6))
            let second = try inspector.snapshot(readingAllocations: false)
            let changes = SnapshotChanges(from: first, to: second)
            let activity = try inspector.update(&ledger, to: second, changes: changes).activity
            let allocations = try inspector.census(
                of: ledger, rates: OwnerRates(activity: activity, seconds: changes.rates.seconds))
            let census = second.words[second.usableBlocks].withUnsafeBufferPointer {
                BuddyCensus(tree: second.tree, words: $0)
            }
            var statistics = CacheStatistics(census: census, snapshot: second, allocations: allocations)
            let pathCache = try inspector.pathCacheReport(
                root: second.pathCacheRoot, attributingTo: &statistics, since: (counters, changes.rates.seconds))
            return (second, statistics, changes.rates.seconds, pathCache)
        }
    }
}
