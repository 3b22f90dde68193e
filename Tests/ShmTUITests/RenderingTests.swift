// The pure parts of the live view: widgets, number formats, layout, heatmap grid, keys, frames.

import Foundation
import ShmFormat
import ShmInspect
import Testing

@testable import ShmTUI

@Suite("widgets")
struct WidgetTests {
    @Test("bars fill to the fraction in eighths, and show any non-zero value")
    func bars() {
        let glyphs = GlyphSet.unicode
        #expect(Widgets.bar(fraction: 0, width: 10, glyphs: glyphs).filled.isEmpty)
        #expect(Widgets.bar(fraction: 0, width: 10, glyphs: glyphs).track == 10)
        #expect(Widgets.bar(fraction: 1, width: 10, glyphs: glyphs).filled == Array(repeating: "█", count: 10))
        #expect(Widgets.bar(fraction: 0.5, width: 10, glyphs: glyphs).filled == Array(repeating: "█", count: 5))
        #expect(Widgets.bar(fraction: 0.0625, width: 10, glyphs: glyphs).filled == ["▋"], "5/8 of a cell")
        #expect(Widgets.bar(fraction: 0.0001, width: 10, glyphs: glyphs).filled == ["▏"])
        #expect(Widgets.bar(fraction: 7, width: 4, glyphs: glyphs).filled.count == 4)
        #expect(Widgets.bar(fraction: .nan, width: 4, glyphs: glyphs).filled.isEmpty)
        let ascii = Widgets.bar(fraction: 0.5, width: 8, glyphs: .ascii)
        #expect(ascii.filled == Array(repeating: "#", count: 4) && ascii.track == 4)
    }

    @Test("sparklines map 0...1 to eight levels, newest on the right, padded on the left")
    func sparklines() {
        #expect(Widgets.sparkline([0, 0.5, 1], width: 5, glyphs: .unicode) == [" ", " ", "▁", "▅", "█"])
        #expect(Widgets.sparkline([0.1, 0.2, 0.3, 0.99], width: 2, glyphs: .unicode) == ["▃", "█"])
        #expect(Widgets.sparkline([1], width: 1, glyphs: .ascii) == ["@"])
    }

    @Test("heat levels: empty is 0, full is the top level, the rest split evenly")
    func heatLevels() {
        #expect(Widgets.heatLevel(fill: 0, levels: 8) == 0)
        #expect(Widgets.heatLevel(fill: 0.01, levels: 8) == 0)
        #expect(Widgets.heatLevel(fill: 0.5, levels: 8) == 4)
        #expect(Widgets.heatLevel(fill: 0.999, levels: 8) == 7)
        #expect(Widgets.heatLevel(fill: 1, levels: 8) == 7)
    }

    @Test("heatmap glyphs: the snapshot text's ramp, a dot for empty, a cross for the null region")
    func heatGlyphs() {
        #expect(GlyphSet.unicode.heatGlyph(fill: 0, isNull: false) == "·")
        #expect(GlyphSet.unicode.heatGlyph(fill: 1, isNull: false) == "█")
        #expect(GlyphSet.unicode.heatGlyph(fill: 0.3, isNull: false) == "░")
        #expect(GlyphSet.unicode.heatGlyph(fill: 1, isNull: true) == "×")
        #expect(GlyphSet.ascii.heatGlyph(fill: 1, isNull: false) == "@")
    }

    @Test("canvas text is clipped with an ellipsis; lines read back without trailing spaces")
    func canvasClipping() {
        var canvas = Canvas(width: 10, height: 2)
        let end = canvas.text("hello world", row: 0, column: 2)
        #expect(end == 10)
        #expect(canvas.lines[0] == "  hello w…")
        canvas.centred("mid", row: 1, columns: 0..<10)
        #expect(canvas.lines[1] == "   mid")
        canvas.text("x", row: 5, column: 0)
        canvas.text("y", row: 0, column: 12)
        #expect(canvas.lines.count == 2)
    }
}

@Suite("number formats")
struct FormatTests {
    @Test func formats() {
        #expect(Format.bytes(0) == "0 B")
        #expect(Format.bytes(1536) == "1.5 KiB")
        #expect(Format.bytes(512 << 20) == "512 MiB")
        #expect(Format.count(0) == "0")
        #expect(Format.count(2.5) == "2.5")
        #expect(Format.count(9999) == "9999")
        #expect(Format.count(12_345) == "12.3k")
        #expect(Format.count(1_250_000) == "1.2M" || Format.count(1_250_000) == "1.3M")
        #expect(Format.byteRate(1024 * 1024 * 3, signed: true) == "+3 MiB/s")
        #expect(Format.byteRate(-2048, signed: true) == "-2 KiB/s")
        #expect(Format.byteRate(0, signed: true) == "±0 B/s")
        #expect(Format.percent(0.5312) == "53.1%")
        #expect(Format.fixed(-1, digits: 2) == "-1.00")
        #expect(Format.offset(0x1234) == "0x00001234")
        #expect(Format.offset(0x1_0000_0000) == "0x100000000")
        #expect(Format.hexWord(0xdead_beef) == "0x0000_0000_dead_beef")
        #expect(
            Format.binaryWord(0b1_0000_0011)
                == "00000000 00000000 00000000 00000000 00000000 00000000 00000001 00000011")
        #expect(Format.printable(Array("ab\u{0}c\u{7F}".utf8)) == "ab.c.")
        #expect(Format.hexBytes([0, 15, 255]) == "00 0f ff")
        #expect(Format.hertz(interval: .milliseconds(100)) == "10 Hz")
        #expect(Format.hertz(interval: .seconds(2)) == "0.5 Hz")
        #expect(Format.seconds(.milliseconds(50)) == "0.05 s")
        #expect(Format.seconds(.milliseconds(100)) == "0.1 s")
        #expect(Format.seconds(.seconds(1)) == "1 s")
        #expect(Format.seconds(.milliseconds(1250)) == "1.25 s")
        #expect(Format.counted(1, "allocation") == "1 allocation")
        #expect(Format.counted(0, "block") == "0 blocks")
        #expect(Format.counted(2, "free chunk") == "2 free chunks")
        #expect(Format.right("ab", 4) == "  ab")
        #expect(Format.left("ab", 4) == "ab  ")
    }
}

@Suite("layout")
struct LayoutTests {
    @Test("80×24 is the smallest size; below it only the enlarge message, which fits 40 columns")
    func minimumSize() {
        #expect(!ScreenLayout(width: 80, height: 24, banner: false).isTooSmall)
        #expect(ScreenLayout(width: 79, height: 24, banner: false).isTooSmall)
        #expect(ScreenLayout(width: 80, height: 23, banner: false).isTooSmall)
        #expect(ScreenLayout(width: 40, height: 10, banner: false).enlargeMessage.count <= 40)
    }

    @Test("regions do not overlap and fill the screen", arguments: [(80, 24), (120, 40), (200, 60), (81, 25)])
    func regions(width: Int, height: Int) {
        for banner in [false, true] {
            let layout = ScreenLayout(width: width, height: height, banner: banner)
            #expect(layout.heatmap.left + layout.heatmap.width < layout.dividerColumn)
            #expect(layout.dividerColumn < layout.panel.left)
            #expect(layout.panel.left + layout.panel.width == width)
            #expect(layout.heatmap.top > layout.titleRow + (banner ? 1 : 0))
            #expect(layout.body.top + layout.body.height == layout.selectionRow)
            #expect(layout.keyRow == height - 1)
            #expect(layout.heatmap.width >= 30 && layout.panel.width >= 42)
            #expect(layout.panel.height >= 19, "the panel's lines fit at \(width)×\(height)")
        }
    }
}

@Suite("heatmap grid")
struct HeatmapGridTests {
    @Test("the default zoom fits every block; zoom steps through powers of two")
    func zoom() {
        #expect(HeatmapGrid.fittingBlocksPerCell(blockCount: 524_288, columns: 35, rows: 20) == 749)
        #expect(HeatmapGrid.fittingBlocksPerCell(blockCount: 100, columns: 35, rows: 20) == 1)
        #expect(HeatmapGrid.zoomedIn(from: 749) == 512)
        #expect(HeatmapGrid.zoomedIn(from: 512) == 256)
        #expect(HeatmapGrid.zoomedIn(from: 1) == 1)
        #expect(HeatmapGrid.zoomedOut(from: 256, fitting: 749) == 512)
        #expect(HeatmapGrid.zoomedOut(from: 512, fitting: 749) == 749)
        let grid = HeatmapGrid(blockCount: 524_288, columns: 35, rows: 20, zoom: nil, selectedBlock: 0, scrollRow: 0)
        #expect(grid.blocksPerCell == 749 && grid.showsEverything)
        #expect(grid.blocks(ofCell: grid.cellCount - 1).upperBound == 524_288)
    }

    @Test("zoomed in, the rows scroll to keep the selection visible")
    func scrolling() {
        let grid = HeatmapGrid(blockCount: 10_000, columns: 10, rows: 5, zoom: 1, selectedBlock: 999, scrollRow: 0)
        #expect(grid.firstRow == 95)
        #expect(grid.position(ofCell: 999)! == (4, 9))
        #expect(grid.cell(atRow: 4, column: 9) == 999)
        #expect(!grid.showsEverything)
        let back = HeatmapGrid(blockCount: 10_000, columns: 10, rows: 5, zoom: 1, selectedBlock: 5, scrollRow: 95)
        #expect(back.firstRow == 0)
        #expect(grid.move(from: 999, by: 10_000) == 9_999)
        #expect(grid.move(from: 999, by: -10_000) == 0)
        let coarse = HeatmapGrid(blockCount: 100, columns: 4, rows: 2, zoom: nil, selectedBlock: 0, scrollRow: 0)
        #expect(coarse.blocksPerCell == 13)
        #expect(coarse.cell(atRow: 1, column: 3) == 7)
        #expect(coarse.blocks(ofCell: 7) == 91..<100)
    }
}

@Suite("keys")
struct KeyTests {
    @Test("key map per screen")
    func keyMap() {
        #expect(KeyMap.command(for: .enter, on: .main) == .drillDown)
        #expect(KeyMap.command(for: .character("q"), on: .drillDown) == .quit)
        #expect(KeyMap.command(for: .escape, on: .drillDown) == .back)
        #expect(KeyMap.command(for: .character("]"), on: .drillDown) == .neighbourBlock(1))
        #expect(KeyMap.command(for: .left, on: .drillDown) == .neighbourBlock(-1))
        #expect(KeyMap.command(for: .left, on: .main) == .moveCells(-1))
        #expect(KeyMap.command(for: .character("j"), on: .main) == .moveRows(1))
        #expect(KeyMap.command(for: .tab, on: .drillDown) == .moveAllocation(1))
        #expect(KeyMap.command(for: .character("+"), on: .main) == .zoomIn)
        #expect(KeyMap.command(for: .character(" "), on: .main) == .togglePause)
        #expect(KeyMap.command(for: .character("z"), on: .main) == nil)
    }

    @Test("jump targets: block numbers and offsets")
    func jumpTargets() {
        #expect(KeyMap.jumpTarget("123", blockSize: 1024, blockCount: 1000) == 123)
        #expect(KeyMap.jumpTarget("#7", blockSize: 1024, blockCount: 1000) == 7)
        #expect(KeyMap.jumpTarget("0x800", blockSize: 1024, blockCount: 1000) == 2)
        #expect(KeyMap.jumpTarget(" 0x8ff ", blockSize: 1024, blockCount: 1000) == 2)
        #expect(KeyMap.jumpTarget("512KiB", blockSize: 1024, blockCount: 1000) == 512)
        #expect(KeyMap.jumpTarget("1000", blockSize: 1024, blockCount: 1000) == nil)
        #expect(KeyMap.jumpTarget("abc", blockSize: 1024, blockCount: 1000) == nil)
        #expect(KeyMap.jumpTarget("", blockSize: 1024, blockCount: 1000) == nil)
    }

    @Test("`r` says a period that matches its rate, for every rate it cycles through")
    func refreshMessages() throws {
        #expect(WatchApp.refreshMessage(.milliseconds(50)) == "refresh every 0.05 s (20 Hz)")
        for interval in ViewState.refreshIntervals {
            let message = WatchApp.refreshMessage(interval)
            let match = try #require(message.firstMatch(of: /refresh every ([0-9.]+) s \(([0-9.]+) Hz\)/), "\(message)")
            let (period, hertz) = (try #require(Double(match.1)), try #require(Double(match.2)))
            #expect(abs(period * hertz - 1) < 1e-9, "\(message)")
        }
    }

    @Test("refresh rates cycle; colour modes follow the terminal and NO_COLOR")
    func modes() {
        var state = ViewState(colorMode: .full256, glyphs: .unicode, interval: .milliseconds(100))
        var seen: [Duration] = []
        for _ in ViewState.refreshIntervals {
            seen.append(state.interval)
            state.interval = state.nextInterval
        }
        #expect(Set(seen).count == ViewState.refreshIntervals.count && state.interval == .milliseconds(100))
        #expect(ColorMode.available(colors: 256, noColor: false) == [.full256, .basic8, .monochrome])
        #expect(ColorMode.available(colors: 8, noColor: false) == [.basic8, .monochrome])
        #expect(ColorMode.available(colors: 256, noColor: true) == [.monochrome])
        #expect(ColorMode.available(colors: 0, noColor: false) == [.monochrome])
    }
}

@Suite("frames")
struct FrameRenderingTests {
    /// A snapshot of a 64-block cache whose block 4 holds two allocations and block 5 is full.
    static func snapshot() throws -> CacheSnapshot {
        let geometry = try Geometry(minSize: 32, maxSize: 1024, capacity: 64 * 1024)
        let layout = try FileLayout(geometry: geometry, pageSize: 4096)
        let tree = geometry.tree
        var words = [UInt64](repeating: 0, count: geometry.blockCount)
        for block in 0..<layout.nullBlockCount { words[block] = tree.fullWord }
        words[4] = tree.setMask(ofNode: 2) | tree.setMask(ofNode: 12)
        words[5] = tree.fullWord
        return CacheSnapshot(
            path: "/tmp/example.shm", header: FileHeader(layout: layout, creatorPID: 1, createdAtNanoseconds: 0),
            words: words, allocations: nil, takenAt: .now, wallClockNanoseconds: 0)
    }

    static func frame() throws -> LiveFrame {
        let snapshot = try snapshot()
        return LiveFrame(
            snapshot: snapshot, statistics: CacheStatistics(snapshot), rates: RateSummary(),
            changedBlocks: [4], takenLeafDeltas: [20], utilisationHistory: [0.1, 0.2], sequence: 1)
    }

    @Test("the main view at 80×24: title, heatmap cells by fill, panel figures, footer")
    func mainView() throws {
        let frame = try Self.frame()
        let layout = ScreenLayout(width: 80, height: 24, banner: false)
        var state = ViewState(colorMode: .monochrome, glyphs: .unicode, interval: .milliseconds(100))
        state.selectedBlock = 4
        let grid = HeatmapGrid(
            blockCount: 64, columns: layout.heatmap.width, rows: layout.heatmap.height, zoom: nil, selectedBlock: 4,
            scrollRow: 0)
        var canvas = Canvas(width: 80, height: 24)
        MainView(frame: frame, state: state, layout: layout, now: .now).draw(
            into: &canvas, cells: HeatmapCells(frame: frame, grid: grid))
        let lines = canvas.lines
        #expect(lines[0].contains("/tmp/example.shm"))
        #expect(lines[0].contains("64 KiB"))
        #expect(lines[0].hasSuffix("● LIVE"))
        // Null blocks, block 4 (512 + 128 of 1024 B taken: ▒), block 5 full, then empty blocks.
        let cells = Array(lines[2].unicodeScalars.dropFirst().prefix(8)).map(Character.init)
        #expect(cells == ["×", "×", "×", "×", "▒", "█", "·", "·"])
        #expect(canvas[2, 5].style.role == .selection)
        #expect(canvas[2, 5].style.bold)
        // Two allocations in block 4, and block 5 is one whole-block allocation.
        #expect(
            lines.contains { $0.range(of: "live +3 ", options: .regularExpression) != nil },
            "\(lines.joined(separator: "\n"))")
        #expect(
            lines[22].contains("block 4 ") && lines[22].contains("fill 62.5%") && lines[22].contains("allocations 2"),
            "\(lines[22])")
        #expect(lines[23].contains("?:help"))
        #expect(lines.allSatisfy { $0.unicodeScalars.count <= 80 })
    }

    @Test("the panel's heading gives how often the whole cache is read and the figures' age")
    func sweepAges() throws {
        let snapshot = try Self.snapshot()
        let layout = ScreenLayout(width: 120, height: 30, banner: false)
        let state = ViewState(colorMode: .monochrome, glyphs: .unicode, interval: .milliseconds(100))
        let grid = HeatmapGrid(
            blockCount: 64, columns: layout.heatmap.width, rows: layout.heatmap.height, zoom: nil, selectedBlock: 0,
            scrollRow: 0)
        for (sweep, age, heading) in [
            (0.1, Duration.zero, "Memory · read at 10 Hz · figures 0.0 s old"),
            (1.25, .milliseconds(1100), "Memory · read every 1.2 s · figures 1.1 s old"),
        ] {
            let frame = LiveFrame(
                snapshot: snapshot, statistics: CacheStatistics(snapshot), sequence: 1, figuresAge: age,
                sweepSeconds: sweep)
            var canvas = Canvas(width: 120, height: 30)
            MainView(frame: frame, state: state, layout: layout, now: .now).draw(
                into: &canvas, cells: HeatmapCells(frame: frame, grid: grid))
            #expect(canvas.lines.contains { $0.contains(heading) }, "\(canvas.lines.joined(separator: "\n"))")
        }
    }

    @Test("the drill-down: a row per level with spans proportional to node sizes, the word, the list")
    func drillDown() throws {
        let snapshot = try Self.snapshot()
        var bytes = [UInt8](repeating: 0, count: 1024)
        // Headers for the two allocations: node 2 (512 B at 0) and node 12 (128 B at 512).
        for (node, order, requested) in [(2, 4, 300), (12, 2, 40)] {
            let offset = snapshot.tree.byteOffset(ofNode: node, minSize: 32)
            let header = AllocationHeader(ownerPID: 4242, requestedSize: requested, order: order)
            withUnsafeBytes(of: header.rawValue.littleEndian) { bytes.replaceSubrange(offset..<(offset + 8), with: $0) }
            bytes.replaceSubrange((offset + 8)..<(offset + 13), with: Array("hello".utf8))
        }
        let detail = bytes.withUnsafeBytes {
            BlockDetail(block: 4, word: snapshot.words[4], layout: snapshot.layout, blockBytes: $0, previewLength: 16)
        }
        let layout = ScreenLayout(width: 80, height: 24, banner: false)
        let state = ViewState(colorMode: .monochrome, glyphs: .unicode, interval: .milliseconds(100))
        var canvas = Canvas(width: 80, height: 24)
        DrillDownView(detail: detail, state: state, layout: layout, now: .now).draw(into: &canvas)
        let lines = canvas.lines
        let rows = lines.filter { $0.range(of: #"^ +\d+ (B|KiB) +│"#, options: .regularExpression) != nil }
        #expect(rows.count == 6)
        let width = DrillDownView.treeRowWidth(screenWidth: 80, leafCount: 32)
        #expect(width == 64)
        // Level 1: the left half is one allocation (█), the right half split (─).
        #expect(
            rows[1].contains("│" + String(repeating: "█", count: 31) + "│" + String(repeating: "─", count: 31) + "│"))
        #expect(lines.contains { $0.contains("Allocations (2)") })
        #expect(
            lines.contains {
                $0.contains("0x00001008") && $0.contains("512 B") && $0.contains("300") && $0.contains("4242")
                    && $0.contains("hello")
            })
        #expect(lines.contains { $0.contains("0x00001208") && $0.contains("128 B") && $0.contains("40") })
        #expect(lines.contains { $0.contains(Format.binaryWord(snapshot.words[4])) })
        #expect(
            lines.contains { $0.contains(" · 2 allocations · ") && $0.hasSuffix(" · 2 free chunks") }, "\(lines[1])")

        // One allocation and one free chunk: counted in the singular.
        let single = bytes.withUnsafeBytes {
            BlockDetail(
                block: 4, word: snapshot.tree.setMask(ofNode: 2), layout: snapshot.layout, blockBytes: $0,
                previewLength: 16)
        }
        var singleCanvas = Canvas(width: 80, height: 24)
        DrillDownView(detail: single, state: state, layout: layout, now: .now).draw(into: &singleCanvas)
        let heading = singleCanvas.lines[layout.body.top]
        #expect(heading.contains(" · 1 allocation · ") && heading.hasSuffix(" · 1 free chunk"), "\(heading)")
    }

    @Test("the title's status follows the file: live, paused, then what happened to it, whether paused or not")
    func titleStatus() throws {
        let frame = try Self.frame()
        let layout = ScreenLayout(width: 80, height: 24, banner: true)
        let path = frame.snapshot.path
        let cases: [(InspectError?, Bool, String)] = [
            (nil, false, "● LIVE"), (nil, true, "● PAUSED"),
            (.deleted(path: path), false, "● DELETED"), (.deleted(path: path), true, "● DELETED"),
            (.truncated(path: path, size: 10, expected: 4096), false, "● TRUNCATED"),
            (.format(path: path, .truncatedHeader(size: 10, needed: 4096)), false, "● TRUNCATED"),
            (.replaced(path: path), true, "● REPLACED"),
        ]
        for (error, paused, status) in cases {
            var state = ViewState(colorMode: .monochrome, glyphs: .unicode, interval: .milliseconds(100))
            state.paused = paused
            let detachment = error.map { Detachment(first: $0, latest: .deleted(path: path)) }
            var canvas = Canvas(width: 80, height: 24)
            MainView(frame: frame, state: state, layout: layout, now: .now, detachment: detachment).drawTitle(
                into: &canvas)
            #expect(canvas.lines[0].hasSuffix(status), "\(canvas.lines[0])")
        }
    }

    @Test("snapshot files are timestamped and never overwrite each other")
    func snapshotPaths() throws {
        let directory = NSTemporaryDirectory() + "shmtop-paths-\(UInt32.random(in: 0...UInt32.max))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let first = WatchApp.snapshotPath(directory: directory, wallClockNanoseconds: 1_700_000_000_000_000_000)
        #expect(first.range(of: #"/shmtop-snapshot-\d{8}-\d{6}\.txt$"#, options: .regularExpression) != nil)
        #expect(FileManager.default.createFile(atPath: first, contents: Data()))
        let second = WatchApp.snapshotPath(directory: directory, wallClockNanoseconds: 1_700_000_000_000_000_000)
        #expect(second == first.replacingOccurrences(of: ".txt", with: "-2.txt"))
    }
}
