// `shmtop watch` end to end: a real cache, the real binary, a real terminal (tmux).

import Foundation
import ShmFormat
import ShmInspect
import ShmSystem
import ShmTestSupport
import Testing

@testable import ShmTUI

#if canImport(Glibc)
    import Glibc
#endif

/// A 16 MiB cache (16384 blocks of 1 KiB) holding allocations of a dead process: known content.
struct KnownCache {
    static let sizes = [8, 20, 56, 100, 200, 500, 1000, 24, 24, 24, 300, 700]
    let directory: ScratchDirectory
    let path: String
    /// The fixture's allocation offsets, in allocation order.
    let offsets: [Int]

    init() throws {
        directory = try ScratchDirectory()
        path = directory.file("known.shm")
        let created = try runToEnd(BuiltProducts.path("shmtop"), ["create", path, "--capacity", "16MiB"])
        #expect(created.termination == .exited(0))
        let fixture = try runToEnd(BuiltProducts.path("shm-inspect-fixture"), [path] + Self.sizes.map(String.init))
        #expect(fixture.termination == .exited(0))
        offsets = fixture.output.split(separator: "\n").compactMap { Int($0) }
        #expect(offsets.count == Self.sizes.count)
    }

    /// `shmtop snapshot PATH` (text, UTF-8 locale) or its `--json` report.
    func snapshotText() throws -> String {
        try runToEnd("/usr/bin/env", ["LC_ALL=C.UTF-8", BuiltProducts.path("shmtop"), "snapshot", path]).output
    }

    func report() throws -> SnapshotReport {
        let json = try runToEnd(BuiltProducts.path("shmtop"), ["snapshot", "--json", path]).output
        return try JSONDecoder().decode(SnapshotReport.self, from: Data(json.utf8))
    }

    /// A session as `watch`, once the main view shows.
    func watchMainView() throws -> TmuxSession {
        let session = try watch()
        try session.waitForScreen("the main view") { $0.contains("LIVE") }
        return session
    }

    /// A tmux session running `shmtop watch` on the cache.
    func watch(width: Int = 120, height: Int = 40, _ extra: [String] = []) throws -> TmuxSession {
        try TmuxSession(
            [BuiltProducts.path("shmtop"), "watch", path, "--snapshot-directory", directory.path] + extra, width: width,
            height: height)
    }
}

/// True when a line of `screen` has `label`, spaces, then exactly `value` (a panel figure).
func panel(_ screen: String, shows label: String, _ value: String) -> Bool {
    let pattern =
        "(^|[ │|])" + NSRegularExpression.escapedPattern(for: label) + " +"
        + NSRegularExpression.escapedPattern(for: value) + "( |$)"
    return screen.lines.contains { $0.range(of: pattern, options: .regularExpression) != nil }
}

/// Blocks per heatmap cell, from the heatmap's legend ("7 blocks per cell").
func blocksPerCell(_ screen: String) -> Int? {
    guard let range = screen.range(of: #"\d+ blocks? per cell"#, options: .regularExpression) else { return nil }
    return Int(screen[range].prefix { $0.isNumber })
}

@Suite("shmtop watch in tmux", .serialized)
struct WatchTmuxTests {
    @Test("known content: the heatmap is drawn and the panel's figures equal `snapshot --json`")
    func panelMatchesJSON() throws {
        let cache = try KnownCache()
        let report = try cache.report()
        let session = try cache.watch()
        let screen = try session.waitForScreen("the panel with the owner scan") {
            $0.contains("owners") && $0.contains("LIVE")
        }

        #expect(screen.contains("16 MiB"))
        #expect(screen.contains("16384 blocks"))
        // Heatmap: the legend, filled cells where the fixture allocated, empty cells after them.
        #expect(screen.contains("Heatmap"))
        #expect(screen.contains("7 blocks per cell"))
        let heatmapRows = screen.lines.dropFirst(2).prefix(30).map { $0.prefix(60) }
        #expect(heatmapRows.contains { $0.contains { "░▒▓█".contains($0) } })
        #expect(heatmapRows.contains { $0.contains("·") })

        #expect(panel(screen, shows: "alloc", Format.bytes(report.allocatedBytes)))
        #expect(panel(screen, shows: "free", Format.bytes(report.freeBytes)))
        #expect(panel(screen, shows: "request", Format.bytes(report.requestedBytes ?? -1)))
        #expect(panel(screen, shows: "int frag", Format.bytes(report.internalFragmentationBytes ?? -1)))
        #expect(panel(screen, shows: "live", "\(report.liveAllocations)"))
        #expect(panel(screen, shows: "largest", Format.bytes(report.largestFreeChunk)))
        #expect(panel(screen, shows: "leaked", Format.bytes(report.leakedBytes ?? -1)))
        #expect(report.leakedBytes == report.allocatedBytes, "the fixture's process is dead: all it holds is leaked")
        #expect(
            panel(screen, shows: "used", Format.percent(report.utilisation))
                || screen.contains(Format.percent(report.utilisation)))
        #expect(
            screen.contains(
                "empty \(report.blocks.empty)  partial \(report.blocks.partial)  full \(report.blocks.full)"))
        #expect(screen.contains("owners  0 alive  1 dead"))
        for (size, chunks) in report.freeChunksBySize {
            let label = Format.bytes(Int(size)!)
            let figures =
                Format.right("\(chunks)", 8) + Format.right("\(report.blocksByLargestFreeChunk[size]!)", 7)
                + Format.right(Format.fixed(report.unusableFreeIndex[size]!, digits: 2), 6)
                + Format.right(report.fragmentationIndex[size]!.map { Format.fixed($0, digits: 2) } ?? "—", 6)
            #expect(
                screen.lines.contains { $0.contains(" \(label) ") && $0.hasSuffix(figures) },
                "free chunks and blocks of \(label): \(figures)")
        }
        #expect(try session.quit() == 0)
    }

    @Test("drill-down: one row per tree level, the block's allocations, neighbours and back")
    func drillDown() throws {
        let cache = try KnownCache()
        let session = try cache.watchMainView()
        let block = cache.offsets[0] / 1024
        try session.send("/")
        try session.type("#\(block)")
        try session.send("Enter")
        try session.waitForScreen("the jump") { $0.contains("blocks \(block / 7 * 7)–") }
        try session.send("Enter")
        let screen = try session.waitForScreen("the drill-down") { $0.contains("Allocations (") }

        let treeRows = screen.lines.filter { $0.range(of: #"^ +\d+ (B|KiB) +│"#, options: .regularExpression) != nil }
        #expect(
            treeRows.map {
                $0.trimmingCharacters(in: .whitespaces).prefix { $0 != "│" }.trimmingCharacters(in: .whitespaces)
            }
                == ["1 KiB", "512 B", "256 B", "128 B", "64 B", "32 B"])
        let inBlock = cache.offsets.filter { $0 / 1024 == block }
        #expect(screen.contains("Block \(block)"))
        #expect(screen.contains("Allocations (\(inBlock.count))"))
        for offset in inBlock {
            #expect(screen.contains(Format.offset(offset)), "allocation at \(Format.offset(offset))")
        }
        #expect(screen.contains("alloc-1 alloc-1"), "first bytes as text")
        #expect(screen.contains("61 6c 6c 6f 63 2d 30"), "first bytes as hex")
        #expect(screen.contains("dead"))
        #expect(
            screen.range(of: #"word +([01]{8} ){7}[01]{8}"#, options: .regularExpression) != nil, "the word in binary")
        #expect(
            screen.range(of: #"hex +0x[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}"#, options: .regularExpression)
                != nil)

        try session.send("Tab")
        try session.waitForScreen("the second allocation selected") { $0.contains("allocation 2 of \(inBlock.count)") }
        try session.send("]")
        try session.waitForScreen("the next block") { $0.contains("Block \(block + 1)") }
        try session.send("Escape")
        try session.waitForScreen("the main view again") { $0.contains("Heatmap") && !$0.contains("Allocations (") }
        #expect(try session.quit() == 0)
    }

    @Test("`s` writes the text of `shmtop snapshot` to a timestamped file")
    func snapshotKey() throws {
        let cache = try KnownCache()
        let session = try cache.watchMainView()
        try session.send("s")
        try session.waitForScreen("the snapshot's path") { $0.contains("snapshot written to") }
        let files = try FileManager.default.contentsOfDirectory(atPath: cache.directory.path).filter {
            $0.hasPrefix("shmtop-snapshot-")
        }
        #expect(files.count == 1)
        #expect(files.first?.range(of: #"^shmtop-snapshot-\d{8}-\d{6}\.txt$"#, options: .regularExpression) != nil)
        let written = try String(contentsOfFile: cache.directory.file(files.first ?? ""), encoding: .utf8)
        let printed = try cache.snapshotText()
        // The two were taken at different moments: only the snapshot time may differ.
        func timeless(_ text: String) -> String {
            text.replacingOccurrences(
                of: #"snapshot \d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} UTC"#, with: "snapshot <time>",
                options: .regularExpression)
        }
        #expect(timeless(written) == timeless(printed))
        #expect(written.contains("Heatmap"))
        #expect(try session.quit() == 0)
    }

    @Test("zoom and navigation change what the footer names")
    func zoomAndNavigation() throws {
        let cache = try KnownCache()
        let session = try cache.watch()
        var screen = try session.waitForScreen("the main view") { $0.contains("LIVE") }
        #expect(blocksPerCell(screen) == 7)
        #expect(screen.contains("blocks 0–6"))
        try session.send("l")
        try session.waitForScreen("the next cell") { $0.contains("blocks 7–13") }
        try session.send("j")
        screen = try session.waitForScreen("the cell below") { $0.contains("blocks 490–496") }
        try session.send("+")
        screen = try session.waitForScreen("zoomed in") { blocksPerCell($0) == 4 }
        #expect(screen.contains("blocks 488–491"))
        try session.send("+", "+")
        screen = try session.waitForScreen("one block per cell") { blocksPerCell($0) == 1 }
        #expect(screen.contains("block 488 "))
        try session.send("G")
        try session.waitForScreen("the last block") { $0.contains("block 16383 ") }
        try session.send("-", "-", "-")
        screen = try session.waitForScreen("zoomed out to fit") {
            blocksPerCell($0) == 7 && $0.contains("all 16384 blocks")
        }
        try session.send("g")
        try session.waitForScreen("the first cell") { $0.contains("blocks 0–6") }
        #expect(try session.quit() == 0)
    }

    @Test("resizing to 80×24 redraws everything; 40×10 shows only the enlarge message")
    func resize() throws {
        let cache = try KnownCache()
        let session = try cache.watchMainView()
        try session.resize(width: 80, height: 24)
        let small = ScreenLayout(width: 80, height: 24, banner: false)
        let fitting = HeatmapGrid.fittingBlocksPerCell(
            blockCount: 16384, columns: small.heatmap.width, rows: small.heatmap.height)
        var screen = try session.waitForScreen("the 80×24 layout") { blocksPerCell($0) == fitting }
        #expect(screen.lines.allSatisfy { $0.count <= 80 })
        #expect(screen.lines.first?.contains("shmtop") == true)
        #expect(screen.lines.first?.contains("LIVE") == true)
        for part in ["Heatmap", "Memory", "Free chunks", "32 B", "1 KiB", "blocks  empty", "?:help"] {
            #expect(screen.contains(part), "\(part) at 80×24")
        }
        #expect(!screen.contains("enlarge"))

        try session.resize(width: 40, height: 10)
        screen = try session.waitForScreen("the enlarge message") { $0.contains("enlarge the terminal to 80×24") }
        let shown = screen.lines.filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
        #expect(shown.count == 1, "one line and nothing else: \(shown)")

        try session.resize(width: 100, height: 30)
        try session.waitForScreen("the view back") { $0.contains("Heatmap") && !$0.contains("enlarge") }
        #expect(try session.quit() == 0)
    }

    @Test("live: with `load` running, captures a second apart differ and rates are non-zero")
    func live() throws {
        let directory = try ScratchDirectory()
        let path = directory.file("live.shm")
        #expect(
            try runToEnd(BuiltProducts.path("shmtop"), ["create", path, "--capacity", "32MiB"]).termination
                == .exited(0))
        let load = try ChildProcess.spawn(
            BuiltProducts.path("shmtop"),
            ["load", path, "--writers", "2", "--seconds", "30", "--rate", "20000", "--period", "2"])
        defer {
            load.send(SIGINT)
            _ = load.wait()
        }
        let session = try TmuxSession([BuiltProducts.path("shmtop"), "watch", path])
        func allocationRate(_ screen: String) -> String? {
            guard let range = screen.range(of: #"allocs/s +\S+"#, options: .regularExpression) else { return nil }
            return screen[range].split(separator: " ").last.map(String.init)
        }
        let first = try session.waitForScreen("non-zero rates") { screen in
            allocationRate(screen).map { $0 != "0" } ?? false
        }
        usleep(1_000_000)
        let second = try session.capture()
        #expect(first != second)
        #expect(allocationRate(second).map { $0 != "0" } == true)
        // Writers are counted by the header scan, which runs every two seconds or so.
        try session.waitForScreen("both writers seen") { $0.contains("writers 2") }
        #expect(try session.quit() == 0)
    }

    @Test(
        "o shows the owner table: the fixture's pid marked dead with its allocations; > moves the sort column; Enter highlights it"
    )
    func ownerTable() throws {
        let cache = try KnownCache()
        // The fixture allocated and exited without freeing: its pid owns everything, and is dead.
        let pid = try #require(try cache.report().owners?.first?.pid)
        let session = try cache.watchMainView()
        try session.send("o")
        let table = try session.waitForScreen("the owner table") { $0.contains("allocs/s") && $0.contains(" \(pid) ") }
        let row = try #require(table.lines.first { $0.contains(" \(pid) ") })
        #expect(row.contains(" dead ") && row.contains(" \(KnownCache.sizes.count) "), "\(row)")
        #expect(table.contains("bytes▼"), "sorted by bytes at first:\n\(table)")
        try session.send(">")
        _ = try session.waitForScreen("sorted by requested bytes") { $0.contains("requested▼") }
        try session.send("Enter")
        let main = try session.waitForScreen("the heatmap, highlighting") { $0.contains("pid \(pid) highlighted") }
        #expect(main.contains("Heatmap"))
        #expect(try session.quit() == 0)
    }

    @Test("demo: the writers' lines wait until the live view ends (none scrolls it), then q shows them")
    func demoKeepsTheScreen() throws {
        let directory = try ScratchDirectory()
        let path = directory.file("demo.shm")
        let session = try TmuxSession([BuiltProducts.path("shmtop"), "demo", "--file", path, "--writers", "2"])
        func titleRow(_ screen: String) -> Bool {
            screen.split(separator: "\n", omittingEmptySubsequences: false).first?.contains("shmtop \(path)") == true
        }
        try session.waitForScreen("the live view") { titleRow($0) && $0.contains("LIVE") }
        // `load` prints its first line as it starts its writers, well within this.
        usleep(2_000_000)
        let screen = try session.capture()
        #expect(titleRow(screen), "the title stays on the first row:\n\(screen)")
        #expect(!screen.contains("load:"))
        #expect(try !session.savedScreen().contains("load:"), "nothing written under the view either")
        #expect(try session.quit() == 0)
        let after = try session.capture()
        #expect(after.contains("load: 2 writers on \(path)"))
        #expect(after.contains("failures=0 verificationErrors=0"))
    }

    @Test(
        "the file deleted while watching: a banner, the title turns from LIVE to DELETED, the last frame stays, re-attached when it is back"
    )
    func fileDeletedAndBack() throws {
        let cache = try KnownCache()
        let session = try cache.watchMainView()
        func title(_ screen: String) -> Substring { screen.lines.first ?? "" }
        #expect(title(try session.capture()).hasSuffix("● LIVE"))
        #expect(unlink(cache.path) == 0)
        let screen = try session.waitForScreen("the banner") { $0.contains("deleted while attached") }
        #expect(title(screen).hasSuffix("● DELETED"), "\(title(screen))")
        #expect(!title(screen).contains("LIVE"))
        #expect(screen.contains("showing the last good frame"))
        #expect(screen.contains("Heatmap") && screen.contains("owners  0 alive  1 dead"), "the last frame stays")
        #expect(
            try runToEnd(BuiltProducts.path("shmtop"), ["create", cache.path, "--capacity", "8MiB"]).termination
                == .exited(0))
        let back = try session.waitForScreen("re-attached") { $0.contains("re-attached to") }
        #expect(back.contains("8192 blocks") && !back.contains("deleted while attached"))
        #expect(title(back).hasSuffix("● LIVE"), "\(title(back))")
        #expect(try session.quit() == 0)
    }

    @Test("SIGTERM ends the watch with the terminal restored")
    func terminationSignal() throws {
        let cache = try KnownCache()
        let session = try cache.watchMainView()
        let pid = try #require(try session.commandPID())
        #expect(try session.format("#{alternate_on}") == "1", "full screen while watching")
        #expect(kill(pid, SIGTERM) == 0)
        #expect(try session.waitForExit() == 128 + SIGTERM)
        #expect(try session.format("#{alternate_on}") == "0", "the terminal is back from the alternate screen")
    }

    @Test("without a terminal: one clear line pointing to `shmtop snapshot`, exit status 1")
    func notATerminal() throws {
        let cache = try KnownCache()
        let pipe = try ChildProcess.makePipe()
        let child = try ChildProcess.spawn(
            BuiltProducts.path("shmtop"), ["watch", cache.path], standardOutput: pipe.write, standardError: pipe.write)
        close(pipe.write)
        let output = String(decoding: ChildProcess.readAll(pipe.read), as: UTF8.self)
        close(pipe.read)
        #expect(child.wait() == .exited(1))
        #expect(output.hasPrefix("shmtop: "))
        #expect(output.contains("shmtop snapshot"))
        #expect(output.split(separator: "\n").count == 1)
    }
}
