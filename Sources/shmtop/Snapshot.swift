import ArgumentParser
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

        func validate() throws {
            guard width >= 8 else { throw ValidationError("--width must be at least 8") }
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
            let snapshot = try failingWithOneLine { () throws(InspectError) in try inspector.snapshot() }
            let statistics = CacheStatistics(snapshot)
            let details = try failingWithOneLine { () throws(InspectError) in
                try blocks.map { block throws(InspectError) in try inspector.blockDetail(block) }
            }
            let text = SnapshotText(ascii: ascii || !SnapshotText.localeIsUTF8(), width: width)
            if json {
                let report = SnapshotReport(snapshot: snapshot, statistics: statistics, details: details, heatmapAs: text)
                print(report.jsonText(), terminator: "")
            } else {
                print(text.render(snapshot, statistics, blocks: details), terminator: "")
            }
        }
    }
}
