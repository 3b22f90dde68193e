// The snapshot as text for people: aligned tables, a buddyinfo row, a heatmap and block trees.
// The same text is what `shmtop snapshot` prints and what the live view saves with `s`.

import Foundation
import ShmFormat

/// Renders a snapshot and its statistics as text.
public struct SnapshotText: Sendable {
    /// The characters the text draws with.
    public struct Glyphs: Hashable, Sendable {
        /// Heatmap ramp from empty (first) to full (last).
        public let ramp: [Character]
        /// Block tree node glyphs.
        public let allocation, insideAllocation, split, maximalFree, free, invalid: Character
        /// The separator between nodes of a tree row.
        public let separator: Character

        /// Block elements: `░▒▓█`.
        public static let unicode = Glyphs(
            ramp: [" ", "░", "▒", "▓", "█"], allocation: "█", insideAllocation: "▓", split: "─",
            maximalFree: "░", free: " ", invalid: "!", separator: "│")
        /// Plain ASCII: ` .:-=+*#%@`.
        public static let ascii = Glyphs(
            ramp: [" ", ".", ":", "-", "=", "+", "*", "#", "%", "@"], allocation: "#", insideAllocation: "=",
            split: "-", maximalFree: ".", free: " ", invalid: "!", separator: "|")

        /// The glyph of a fill fraction: the first for exactly empty, the last for exactly full,
        /// the ones between in equal steps.
        public func glyph(forFill fill: Double) -> Character { ramp[rampIndex(forFill: fill)] }

        /// The index in ``ramp`` of ``glyph(forFill:)``'s glyph (inlined: the live view asks per cell).
        @inlinable public func rampIndex(forFill fill: Double) -> Int {
            if fill <= 0 { return 0 }
            if fill >= 1 { return ramp.count - 1 }
            let steps = ramp.count - 2
            return 1 + min(steps - 1, Int(fill * Double(steps)))
        }

        /// The glyph of a node state.
        public func glyph(for state: NodeState) -> Character {
            switch state {
            case .allocation: allocation
            case .insideAllocation: insideAllocation
            case .split: split
            case .maximalFree: maximalFree
            case .free: free
            case .invalid: invalid
            }
        }

        /// The legend of the heatmap ramp.
        public var rampLegend: String {
            let steps = ramp.count - 2
            var parts = ["'\(ramp[0])' empty"]
            for step in 0..<steps {
                let low = Int((Double(step) / Double(steps) * 100).rounded())
                let high = Int((Double(step + 1) / Double(steps) * 100).rounded())
                parts.append("\(ramp[step + 1]) \(low)–\(high) %")
            }
            parts.append("\(ramp[ramp.count - 1]) full")
            return parts.joined(separator: "  ")
        }
    }

    /// Drawing characters.
    public let glyphs: Glyphs
    /// Heatmap cells per row.
    public let width: Int
    /// Heatmap rows at most; blocks are grouped per cell when they outnumber `width × maxRows`.
    public let maxRows: Int

    /// A renderer; `ascii` picks the ASCII glyphs.
    public init(ascii: Bool, width: Int = 64, maxRows: Int = 16) {
        glyphs = ascii ? .ascii : .unicode
        self.width = max(8, width)
        self.maxRows = max(1, maxRows)
    }

    /// True when the environment's locale (`LC_ALL`, `LC_CTYPE`, `LANG`, first set wins) is UTF-8.
    public static func localeIsUTF8(_ environment: [String: String] = ProcessInfo.processInfo.environment) -> Bool {
        let locale = ["LC_ALL", "LC_CTYPE", "LANG"].lazy.compactMap { environment[$0] }.first { !$0.isEmpty } ?? ""
        let upper = locale.uppercased()
        return upper.contains("UTF-8") || upper.contains("UTF8")
    }

    // MARK: - The whole text

    /// The full text: header, memory, blocks, size classes with the buddyinfo row, owners,
    /// health counters, heatmap, then one tree per detail in `blocks`.
    public func render(
        _ snapshot: CacheSnapshot, _ statistics: CacheStatistics, pathCache: PathCacheReport? = nil,
        blocks: [BlockDetail] = []
    ) -> String {
        var sections = [
            title(snapshot), memory(statistics), blockCounts(statistics), sizeClasses(statistics),
            freeIndex(FreeIndexStatistics(snapshot), geometry: snapshot.geometry), owners(statistics),
            pathCache.map(self.pathCache) ?? "", health(statistics), heatmap(snapshot),
        ]
        sections += blocks.map(tree)
        return sections.filter { !$0.isEmpty }.joined(separator: "\n")
    }

    /// File, geometry and time.
    public func title(_ snapshot: CacheSnapshot) -> String {
        let header = snapshot.header
        let layout = snapshot.layout
        return finish(
            """
            \(snapshot.path)
              format v\(header.formatVersion) · \(snapshot.geometry) · page \(ByteCount(layout.pageSize)) · \
            file \(ByteCount(layout.fileSize))
              created \(Self.timestamp(header.createdAtNanoseconds)) by pid \(header.creatorPID) · \
            snapshot \(Self.timestamp(snapshot.wallClockNanoseconds))

            """)
    }

    /// Where the file's bytes are.
    public func memory(_ statistics: CacheStatistics) -> String {
        let managed = statistics.managedBytes
        func share(_ bytes: Int, of total: Int) -> String { Self.percent(Double(bytes), of: Double(total)) }
        var table = TextTable(["Memory", "bytes", "", "share"])
        table.add(["managed (file)", "\(managed)", "\(ByteCount(managed))", "100.0 %"])
        table.add([
            "reserved", "\(statistics.reservedBytes)", "\(ByteCount(statistics.reservedBytes))",
            share(statistics.reservedBytes, of: managed),
        ])
        table.add([
            "allocated", "\(statistics.allocatedBytes)", "\(ByteCount(statistics.allocatedBytes))",
            share(statistics.allocatedBytes, of: managed),
        ])
        table.add([
            "free", "\(statistics.freeBytes)", "\(ByteCount(statistics.freeBytes))",
            share(statistics.freeBytes, of: managed),
        ])
        if let requested = statistics.requestedBytes, let overhead = statistics.internalFragmentationBytes {
            table.add(["requested", "\(requested)", "\(ByteCount(requested))", share(requested, of: managed)])
            table.add([
                "internal fragmentation", "\(overhead)", "\(ByteCount(overhead))",
                share(overhead, of: statistics.allocatedBytes) + " of allocated",
            ])
        }
        return finish(
            table.text + """
                utilisation \(Self.percent(statistics.utilisation, of: 1)) · live allocations \(statistics.liveAllocations) · \
                largest free chunk \(ByteCount(statistics.largestFreeChunk)) · \
                external fragmentation \(Self.fixed(statistics.externalFragmentation))

                """)
    }

    /// Empty, partial, full and null blocks.
    public func blockCounts(_ statistics: CacheStatistics) -> String {
        let blocks = statistics.blocks
        var table = TextTable(["Blocks", "empty", "partial", "full", "null", "total"])
        table.add([
            "count", "\(blocks.empty)", "\(blocks.partial)", "\(blocks.full)", "\(blocks.null)",
            "\(statistics.geometry.blockCount)",
        ])
        return table.text
    }

    /// One column per size class, with the buddyinfo row, the requests of each size that would
    /// fit, and the kernel's indices.
    public func sizeClasses(_ statistics: CacheStatistics) -> String {
        let classes = statistics.sizeClasses
        var table = TextTable(["Size class"] + classes.map { "\(ByteCount($0.size))" })
        table.add(["allocations"] + classes.map { "\($0.allocations)" })
        table.add(["allocated bytes"] + classes.map { "\($0.allocatedBytes)" })
        if classes.allSatisfy({ $0.requestedBytes != nil }) {
            table.add(["requested bytes"] + classes.map { "\($0.requestedBytes ?? 0)" })
        }
        table.add(["free chunks (buddyinfo)"] + classes.map { "\($0.freeChunks)" })
        table.add(["blocks by largest free"] + classes.map { "\($0.blocksWithLargestFreeChunk)" })
        table.add(["requests that fit"] + classes.map { "\($0.fits)" })
        table.add(["unusable free index"] + classes.map { Self.fixed($0.unusableFreeIndex) })
        // Where a request would succeed the kernel's index is −1: a dash says so without a column
        // of identical numbers drowning the rows where a request would fail.
        table.add(["fragmentation index"] + classes.map { $0.failingFragmentationIndex.map(Self.fixed) ?? "—" })
        let buddyinfo =
            "buddyinfo \(statistics.geometry.blockCount - statistics.blocks.null) blocks "
            + classes.map { String($0.freeChunks) }.joined(separator: " ")
        return finish(table.text + buddyinfo + "\n")
    }

    /// The free-space index's listings per class beside the blocks' actual classes; empty without an index.
    public func freeIndex(_ index: FreeIndexStatistics?, geometry: Geometry) -> String {
        guard let index else { return "" }
        let sizes = (0..<index.listedByOrder.count).map { "\(ByteCount(geometry.nodeSize(ofOrder: $0)))" }
        var table = TextTable(["Free-space index"] + sizes)
        table.add(["blocks listed"] + index.listedByOrder.map(String.init))
        table.add(["blocks in class"] + index.actualByOrder.map(String.init))
        return finish(
            table.text
                + "stale listings \(index.staleListings) (advisory) · missing listings \(index.missingListings)\n")
    }

    /// The owner table: one row per owner with its process state, command while alive, what it
    /// holds, its share of the cache and (when the snapshot has a previous frame) its allocations
    /// and frees per second; and the leak of those that can no longer free (zombies and the dead).
    public func owners(_ statistics: CacheStatistics, order: OwnerOrder = .byBytes) -> String {
        guard let owners = statistics.owners else { return "" }
        let hasRates = owners.contains { $0.allocationsPerSecond != nil }
        let columns = OwnerColumn.allCases.filter { hasRates || ($0 != .allocationsPerSecond && $0 != .freesPerSecond) }
        var table = TextTable(
            columns.map { $0 == .pid ? "Owner pid" : $0.title },
            leftAligned: Set(columns.indices.filter { !columns[$0].isNumeric }))
        for owner in order.sorted(owners) { table.add(columns.map { Self.cell($0, of: owner) }) }
        if owners.isEmpty { table.add(["(none)"] + Array(repeating: "", count: columns.count - 1)) }
        let leaked = statistics.leakedBytes ?? 0
        var text = finish(table.text)
        if let held = statistics.heldByPathCache {
            text +=
                "held by the path cache: \(held.bytes) bytes (\(ByteCount(held.bytes))) "
                + "in \(held.allocations) nodes, not counted above\n"
        }
        return text + "leaked by dead owners: \(leaked) bytes (\(ByteCount(leaked)))\n"
    }

    /// The path cache: entries, bytes, nodes awaiting reclamation, depth histogram, invalid slots,
    /// the nodes per owner, and the processes' searches, hits and inserts (with rates over the
    /// report's window when it has one).
    public func pathCache(_ report: PathCacheReport) -> String {
        var text = ""
        if let walk = report.walk {
            text +=
                "Path cache: \(walk.entries) entries (\(walk.prefixEntries) prefixes) · \(walk.tables) tables · "
                + "invalid slots \(walk.invalidSlots)\n"
            var table = TextTable(["  bytes", "tables", "entries", "paths", "total"])
            let bytes = [walk.tableBytes, walk.entryBytes, walk.pathBytes, walk.bytes]
            table.add(["  node bytes"] + bytes.map { "\($0)" })
            table.add([""] + bytes.map { "\(ByteCount($0))" })
            text += table.text
            text +=
                "  nodes awaiting reclamation \(walk.nodesAwaitingReclamation) "
                + "(by design: a published node is never replaced or freed)\n"
            let depths = walk.depthHistogram.enumerated().map { "\($0.offset): \($0.element)" }
            text += "  depth " + depths.joined(separator: "  ") + "\n"
            let holders = walk.holders.map { "\($0.pid) \($0.holding.bytes) bytes" }
            text += "  held per pid: " + (holders.isEmpty ? "none" : holders.joined(separator: ", ")) + "\n"
        } else {
            text += "Path cache: none yet (no path inserted)\n"
        }
        let hitRate = report.hitRate.map { Self.percent($0, of: 1) } ?? "–"
        text +=
            "  searches \(report.searches) · hits \(report.hits) · inserts \(report.inserts) · hit rate \(hitRate) "
            + "(summed over the owner table's processes)\n"
        if let seconds = report.rateSeconds {
            let windowHitRate = report.windowHitRate.map { Self.percent($0, of: 1) } ?? "–"
            text +=
                "  over \(String(format: "%.1f", seconds)) s: searches/s \(Self.rate(report.searchesPerSecond)) · "
                + "hits/s \(Self.rate(report.hitsPerSecond)) · inserts/s \(Self.rate(report.insertsPerSecond)) · "
                + "hit rate \(windowHitRate)\n"
        }
        return finish(text)
    }

    static func rate(_ value: Double?) -> String { value.map { String(format: "%.1f", $0) } ?? "–" }

    /// The text of `owner`'s cell in `column`: exact counts, as the rest of the snapshot gives them.
    static func cell(_ column: OwnerColumn, of owner: OwnerAllocations) -> String {
        switch column {
        case .pid: "\(owner.pid)"
        case .state: owner.state.rawValue
        case .command: owner.command ?? ""
        case .allocations: "\(owner.allocations)"
        case .bytes: "\(owner.bytes)"
        case .requested: "\(owner.requestedBytes)"
        case .share: String(format: "%.1f%%", owner.share * 100)
        case .allocationsPerSecond: owner.allocationsPerSecond.map { String(format: "%.1f", $0) } ?? ""
        case .freesPerSecond: owner.freesPerSecond.map { String(format: "%.1f", $0) } ?? ""
        }
    }

    /// Counters that should stay at zero, and the allocator's failure counters.
    public func health(_ statistics: CacheStatistics) -> String {
        var line = "Health: invalid words \(statistics.invalidWords)"
        if let unreadable = statistics.unreadableHeaders { line += " · unreadable headers \(unreadable)" }
        if let inFlight = statistics.inFlightHeaders, inFlight > 0 { line += " · in flight \(inFlight)" }
        line += " · failed allocations \(statistics.failedAllocations) · invalid frees \(statistics.invalidFrees)"
        return finish(line + "\n")
    }

    /// The mean fill of every heatmap cell this renderer draws (at most `width × maxRows`; cell i
    /// covers the blocks `snapshot.heatmapGroup(i, of: count)`): what the JSON report lists too.
    public func heatmapCells(_ snapshot: CacheSnapshot) -> [Double] {
        snapshot.heatmap(cellCount: min(snapshot.geometry.blockCount, width * maxRows))
    }

    /// The fill of every block (or group of blocks), row by row, with a legend.
    public func heatmap(_ snapshot: CacheSnapshot) -> String {
        let blockCount = snapshot.geometry.blockCount
        let fills = heatmapCells(snapshot)
        let cellCount = fills.count
        let perCell = Double(blockCount) / Double(cellCount)
        let perCellText = perCell == perCell.rounded() ? "\(Int(perCell))" : String(format: "%.1f", perCell)
        var text =
            "Heatmap: \(cellCount) cells, \(perCellText) block\(perCell == 1 ? "" : "s") per cell, mean fill; "
            + "blocks 0..<\(snapshot.layout.nullBlockCount) are the null region\n"
        text += "  " + finish(glyphs.rampLegend) + "\n"
        for rowStart in stride(from: 0, to: fills.count, by: width) {
            let row = fills[rowStart..<min(fills.count, rowStart + width)]
            let firstBlock = snapshot.heatmapGroup(rowStart, of: cellCount).lowerBound
            text +=
                Self.padded("\(firstBlock)", to: 8) + " " + String(glyphs.separator)
                + String(row.map(glyphs.glyph(forFill:))) + String(glyphs.separator) + "\n"
        }
        return text
    }

    /// One block's tree, one row per level, and its allocations.
    public func tree(_ detail: BlockDetail) -> String {
        let tree = detail.tree
        let minSize = detail.offsets.count >> tree.depth
        let rowWidth = max(2 << tree.depth, 16)
        var text =
            "Block \(detail.block) · offsets 0x\(String(detail.offsets.lowerBound, radix: 16))..<0x\(String(detail.offsets.upperBound, radix: 16))"
        text += detail.isNullBlock ? " · null region" : ""
        text += " · word 0x\(String(detail.word, radix: 16)) · \(detail.isValid ? "valid" : "INVALID")\n"
        let largest = detail.census.largestFreeOrder.map { "\(ByteCount(minSize << $0))" } ?? "none (full)"
        let listed = detail.advertisedOrders.map { "\(ByteCount(minSize << $0))" }.joined(separator: ", ")
        text +=
            "  largest free chunk \(largest) · free-space index lists it under: \(listed.isEmpty ? "no class" : listed)\n"
        text += "  bits " + Self.binary(detail.word) + "\n"
        for (level, states) in detail.levels.enumerated() {
            let nodeWidth = rowWidth >> level
            var row = String(glyphs.separator)
            for state in states {
                row += String(repeating: glyphs.glyph(for: state), count: nodeWidth - 1) + String(glyphs.separator)
            }
            text += Self.padded("\(ByteCount(minSize << (tree.depth - level)))", to: 8) + " " + row + "\n"
        }
        text +=
            "  legend: \(glyphs.allocation) allocation  \(glyphs.insideAllocation) inside an allocation  "
            + "\(glyphs.split) split  \(glyphs.maximalFree) free chunk  '\(glyphs.free)' free inside a chunk  "
            + "\(glyphs.invalid) invalid\n"
        var table = TextTable(
            ["  offset", "node", "requested", "owner", "state", "first bytes", "hex"], leftAligned: [4, 5, 6])
        for allocation in detail.allocations {
            let header = allocation.header
            table.add([
                "  0x" + String(allocation.offset, radix: 16), "\(ByteCount(allocation.nodeSize))",
                header.map { "\($0.requestedSize)" } ?? "?", header.map { "\($0.ownerPID)" } ?? "?",
                allocation.ownerState?.rawValue ?? "no header",
                Self.printable(allocation.firstBytes.prefix(24)),
                allocation.firstBytes.prefix(12).map { Self.hexByte($0) }.joined(separator: " "),
            ])
        }
        if detail.allocations.isEmpty { table.add(["  (no allocations)", "", "", "", "", "", ""]) }
        return finish(text + table.text)
    }

    // MARK: - Formatting helpers

    /// The text as drawn: with ASCII glyphs, the few typographic characters of the labels become
    /// ASCII too, so `--ascii` output is pure ASCII (except what the cache's own bytes contain,
    /// which `printable` already limits to ASCII).
    func finish(_ text: String) -> String {
        guard glyphs == .ascii else { return text }
        return text.replacingOccurrences(of: "·", with: "-").replacingOccurrences(of: "×", with: "x")
            .replacingOccurrences(of: "–", with: "-").replacingOccurrences(of: "—", with: "-")
    }

    static func timestamp(_ nanoseconds: UInt64) -> String {
        let date = Date(timeIntervalSince1970: Double(nanoseconds) / 1e9)
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: "UTC")
        formatter.dateFormat = "yyyy-MM-dd HH:mm:ss.SSS 'UTC'"
        return formatter.string(from: date)
    }

    static func percent(_ part: Double, of whole: Double) -> String {
        whole == 0 ? "–" : String(format: "%.1f %%", part / whole * 100)
    }

    static func fixed(_ value: Double) -> String { String(format: "%.3f", value) }

    static func padded(_ text: String, to width: Int) -> String {
        String(repeating: " ", count: max(0, width - text.count)) + text
    }

    static func binary(_ word: UInt64) -> String {
        let digits = String(word, radix: 2)
        let full = String(repeating: "0", count: 64 - digits.count) + digits
        return stride(from: 0, to: 64, by: 8).map { start in
            let from = full.index(full.startIndex, offsetBy: start)
            return String(full[from..<full.index(from, offsetBy: 8)])
        }.joined(separator: " ")
    }

    static func hexByte(_ byte: UInt8) -> String {
        let digits = String(byte, radix: 16)
        return digits.count == 1 ? "0" + digits : digits
    }

    static func printable(_ bytes: some Sequence<UInt8>) -> String {
        String(bytes.map { (0x20..<0x7F).contains($0) ? Character(Unicode.Scalar($0)) : "." })
    }
}
