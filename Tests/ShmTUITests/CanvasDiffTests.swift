// What a frame costs the view: the cells handed to the terminal (those that differ from the last
// frame's, by runs of one style), the packed cell styles that make the comparison cheap, heatmap
// cells advanced in place, and numbers printed without Foundation's formatter.

import Foundation
import ShmFormat
import ShmInspect
import Testing

@testable import ShmTUI

@Suite("canvas diff")
struct CanvasDiffTests {
    static func runs(of canvas: Canvas, since previous: Canvas?) -> [Canvas.Run] {
        var runs: [Canvas.Run] = []
        canvas.forEachChangedRun(since: previous) { runs.append($0) }
        return runs
    }

    @Test("without a previous canvas, or with one of another size, every run of one style is painted")
    func everything() {
        var canvas = Canvas(width: 6, height: 2)
        canvas.text("ab", row: 0, column: 2, style: .accent)
        let whole = [
            Canvas.Run(row: 0, columns: 0..<2, style: .plain), Canvas.Run(row: 0, columns: 2..<4, style: .accent),
            Canvas.Run(row: 0, columns: 4..<6, style: .plain), Canvas.Run(row: 1, columns: 0..<6, style: .plain),
        ]
        #expect(Self.runs(of: canvas, since: nil) == whole)
        #expect(Self.runs(of: canvas, since: Canvas(width: 6, height: 3)) == whole)
        #expect(Self.runs(of: canvas, since: Canvas(width: 5, height: 2)) == whole)
        #expect(Self.runs(of: canvas, since: canvas).isEmpty)
    }

    @Test("only the changed cells are painted: each run narrowed to its first through last changed cell")
    func changedRuns() {
        var before = Canvas(width: 12, height: 4)
        before.text("unchanged", row: 0, column: 0)
        before.text("abcdefgh", row: 1, column: 0)
        before.text("styled", row: 2, column: 3)
        before.text("x", row: 3, column: 11, style: .muted)
        var after = before
        // Row 1: two characters changed in one plain run; the cells between them go along.
        after.put("X", row: 1, column: 2)
        after.put("Y", row: 1, column: 5)
        // Row 2: the same characters in another style, then a character in a run of its own.
        after.restyle(row: 2, column: 4, count: 2) { $0.bold = true }
        after.put("z", row: 2, column: 10, style: .muted)
        // Row 3: the last cell, by style alone.
        after.put("x", row: 3, column: 11, style: .accent)
        #expect(
            Self.runs(of: after, since: before) == [
                Canvas.Run(row: 1, columns: 2..<6, style: .plain),
                Canvas.Run(row: 2, columns: 4..<6, style: CellStyle(.plain, bold: true)),
                Canvas.Run(row: 2, columns: 10..<11, style: .muted),
                Canvas.Run(row: 3, columns: 11..<12, style: .accent),
            ])
        // Painting the runs' cells over the previous canvas gives the new one.
        var painted = before
        for run in Self.runs(of: after, since: before) {
            for column in run.columns { painted.put(after[run.row, column].character, row: run.row, column: column) }
            painted.restyle(row: run.row, column: run.columns.lowerBound, count: run.columns.count) {
                $0 = run.style
            }
        }
        #expect(painted.cells == after.cells)
    }

    @Test("a style keeps its role and each attribute apart; every role's code is its colour pair's index")
    func packedStyles() {
        for (index, role) in Palette.roles.enumerated() {
            #expect(role.code == UInt32(index))
            #expect(ColorRole(code: role.code) == role)
            #expect(Palette.pairNumber(role) == Int16(index + 1))
            var style = CellStyle(role, bold: true, underline: true)
            #expect(style.role == role && style.bold && !style.reverse && style.underline)
            style.reverse = true
            style.bold = false
            style.role = .warning
            #expect(style == CellStyle(.warning, reverse: true, underline: true))
        }
        // Roles the palette draws alike share a code.
        #expect(CellStyle(.owner(Palette.ownerColors + 1)) == CellStyle(.owner(1)))
        #expect(CellStyle(.heat(Palette.heatLevels + 3)).role == .heat(Palette.heatLevels - 1))
        #expect(CellStyle(.heat(-1)).role == .heat(0))
        #expect(CellStyle(.heat(1)) != CellStyle(.heat(2)))
    }

    @Test("heatmap cells advanced by a frame's deltas equal cells counted afresh")
    func incrementalHeatmap() throws {
        let first = try FrameRenderingTests.frame()
        var words = first.snapshot.words
        let tree = first.snapshot.tree
        words[6] = tree.fullWord
        words[4] = tree.setMask(ofNode: 2)
        let snapshot = CacheSnapshot(
            path: first.snapshot.path, header: first.snapshot.header, words: words, allocations: nil, takenAt: .now,
            wallClockNanoseconds: 0)
        let second = LiveFrame(
            snapshot: snapshot, statistics: CacheStatistics(snapshot), rates: RateSummary(),
            changedBlocks: [4, 6], takenLeafDeltas: [-4, 32], utilisationHistory: [], sequence: 2)
        for columns in [3, 64] {
            let grid = HeatmapGrid(blockCount: 64, columns: columns, rows: 4, zoom: nil, selectedBlock: 0, scrollRow: 0)
            var advanced = HeatmapCells(frame: first, grid: grid)
            let advancedToSecond = advanced.advance(to: second, grid: grid)
            #expect(advancedToSecond)
            let fresh = HeatmapCells(frame: second, grid: grid)
            let visible = grid.columns * grid.visibleRows
            #expect((0..<visible).map(advanced.fill) == (0..<visible).map(fresh.fill))
            #expect(advanced.changed == fresh.changed)
            // Advanced again, in place: the marks are the new frame's alone.
            let third = LiveFrame(
                snapshot: snapshot, statistics: second.statistics, rates: RateSummary(), changedBlocks: [6],
                takenLeafDeltas: [0], utilisationHistory: [], sequence: 3)
            let advancedToThird = advanced.advance(to: third, grid: grid)
            #expect(advancedToThird)
            #expect(advanced.changed == HeatmapCells(frame: third, grid: grid).changed)
            #expect(advanced.changed != fresh.changed)
        }
        let grid = HeatmapGrid(blockCount: 64, columns: 3, rows: 4, zoom: nil, selectedBlock: 0, scrollRow: 0)
        var cells = HeatmapCells(frame: second, grid: grid)
        let advancedBackwards = cells.advance(to: first, grid: grid)
        #expect(!advancedBackwards, "not the next frame")
    }

    @Test("decimals print as C's %.*f prints them: ties in the binary value to even, negative zero kept")
    func decimals() {
        var values: [Double] = [
            0, -0.0, 0.05, 0.15, 0.25, 0.35, 2.5, 3.5, 0.125, 0.375, 1e-9, -1e-9, -0.04, 99.95, 99.949_999,
            999_999.95, 4_503_599_627_370_495.5, 1e300, -1e300, .nan, .infinity, -.infinity, .pi, -.pi,
        ]
        // Exact ties and their neighbours at every magnitude, and a deterministic scatter.
        for exponent in -6...12 {
            for numerator in [1.0, 3, 5, 7, 9, 11, 13, 15] {
                let tie = numerator / 16 * pow(2, Double(exponent))
                values += [tie, tie.nextUp, tie.nextDown, -tie]
            }
        }
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15
        for _ in 0..<20_000 {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            let mantissa = Double(state >> 11) / Double(1 << 53)
            values.append((mantissa - 0.25) * pow(10, Double(Int(state & 15)) - 4))
        }
        for digits in 0...3 {
            for value in values {
                let expected = String(format: "%.\(digits)f", value)
                #expect(Format.fixed(value, digits: digits) == expected, "\(value) with \(digits) digits")
            }
        }
    }
}
