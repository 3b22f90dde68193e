// What the main view derives from a frame and keeps between repaints: the heatmap cells, and
// what the footer says about the selected cell.

import ShmInspect

/// The heatmap cells of one frame at one grid: computed once, drawn on every repaint until the
/// next frame or a change of zoom, scroll or size. From one frame to the next, only the cells
/// holding changed blocks are updated (by their taken-leaf deltas), so a refresh costs what
/// changed rather than a pass over every block.
struct HeatmapCells {
    let grid: HeatmapGrid
    private(set) var sequence: Int
    /// Leaves taken in each visible cell, row by row.
    private var takenLeaves: [Int]
    /// Leaves in each visible cell (0 past the last block).
    private let leafCapacity: [Int]
    /// Whether a block of the visible cell changed since the previous frame.
    private(set) var changed: [Bool]
    /// Whether the visible cell lies wholly in the null region.
    let isNull: [Bool]

    /// The cells of `frame` at `grid`, counted from the frame's words.
    init(frame: LiveFrame, grid: HeatmapGrid) {
        self.grid = grid
        sequence = frame.sequence
        let snapshot = frame.snapshot
        let leafCount = snapshot.leavesPerBlock
        let visible = grid.columns * grid.visibleRows
        let firstCell = grid.firstRow * grid.columns
        var taken = [Int](repeating: 0, count: visible)
        var capacity = [Int](repeating: 0, count: visible)
        var isNull = [Bool](repeating: false, count: visible)
        for index in 0..<visible where firstCell + index < grid.cellCount {
            let blocks = grid.blocks(ofCell: firstCell + index)
            // meanFill × leaves is the exact taken-leaf count (a ratio of integers).
            capacity[index] = blocks.count * leafCount
            taken[index] = Int((snapshot.meanFill(ofBlocks: blocks) * Double(capacity[index])).rounded())
            isNull[index] = blocks.upperBound <= snapshot.nullBlockCount
        }
        takenLeaves = taken
        leafCapacity = capacity
        self.isNull = isNull
        changed = [Bool](repeating: false, count: visible)
        apply(frame, addingDeltas: false)
    }

    /// Moves these cells on to `frame` when it directly follows them; false when they cannot be
    /// (a frame was skipped, or the grid changed) and must be counted afresh. Changes the cells
    /// in place: a frame costs what changed, not a copy of every cell.
    mutating func advance(to frame: LiveFrame, grid: HeatmapGrid) -> Bool {
        guard grid == self.grid, frame.sequence == sequence + 1 else { return false }
        sequence = frame.sequence
        apply(frame, addingDeltas: true)
        return true
    }

    /// Marks the visible cells holding `frame`'s changed blocks, and adds the blocks' taken-leaf
    /// deltas to them when `addingDeltas`.
    private mutating func apply(_ frame: LiveFrame, addingDeltas: Bool) {
        let grid = grid
        let firstCell = grid.firstRow * grid.columns
        let deltas = frame.takenLeafDeltas
        changed.withUnsafeMutableBufferPointer { changed in
            changed.update(repeating: false)
            takenLeaves.withUnsafeMutableBufferPointer { takenLeaves in
                for (position, block) in frame.changedBlocks.enumerated() {
                    let index = grid.cell(ofBlock: block) - firstCell
                    guard index >= 0, index < changed.count else { continue }
                    changed[index] = true
                    if addingDeltas { takenLeaves[index] += deltas[position] }
                }
            }
        }
    }

    /// The mean fill of the visible cell `index`, or `nil` past the last block.
    func fill(_ index: Int) -> Double? {
        leafCapacity[index] == 0 ? nil : Double(takenLeaves[index]) / Double(leafCapacity[index])
    }
}

/// What the footer says about the selected cell.
struct SelectionSummary {
    let blocks: Range<Int>
    let offsets: Range<Int>
    let fill: Double
    let freeChunks: Int
    let allocations: Int

    init(snapshot: CacheSnapshot, blocks: Range<Int>) {
        self.blocks = blocks
        let blockSize = snapshot.blockSize
        offsets = (blocks.lowerBound * blockSize)..<(blocks.upperBound * blockSize)
        let figures = snapshot.figures(ofBlocks: blocks)
        fill = figures.fill
        freeChunks = figures.freeChunks
        allocations = figures.allocations
    }

    func text(glyphs: GlyphSet, blocksPerCell: Int, blockSize: Int, isNull: Bool) -> String {
        let which =
            blocks.count == 1 ? "block \(blocks.lowerBound)" : "blocks \(blocks.lowerBound)–\(blocks.upperBound - 1)"
        var parts = [
            which,
            "\(Format.offset(offsets.lowerBound))–\(Format.offset(offsets.upperBound - 1))",
        ]
        if isNull {
            parts.append("null region")
        } else {
            parts += ["fill \(Format.percent(fill))", "allocations \(allocations)", "free chunks \(freeChunks)"]
        }
        parts.append("1 cell = \(Format.counted(blocksPerCell, "block")) (\(Format.bytes(blocksPerCell * blockSize)))")
        return parts.joined(separator: glyphs.dot)
    }
}
