// The keys of `shmtop watch`: each turns into a `Command` (Keys.swift) that changes the view
// state, and `s` writes a snapshot.

import Foundation
import ShmInspect

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

extension WatchApp {
    enum KeyOutcome { case handled, quit }

    func handle(_ key: KeyPress) -> KeyOutcome {
        if state.jumpInput != nil {
            editJump(key)
            return .handled
        }
        if state.showHelp {
            state.showHelp = false
            if key != .character("q") { return .handled }
        }
        guard let command = KeyMap.command(for: key, on: state.screen) else { return .handled }
        return perform(command)
    }

    private func perform(_ command: Command) -> KeyOutcome {
        switch command {
        case .quit: return .quit
        case .moveCells(let delta): moveSelection(cells: delta)
        case .moveRows(let delta): moveSelection(cells: delta * (lastGrid?.columns ?? 1))
        case .movePages(let delta): moveSelection(cells: delta * (lastGrid.map { $0.columns * $0.visibleRows } ?? 1))
        case .first: state.selectedBlock = 0
        case .last:
            state.selectedBlock = lastGrid.map { $0.blocks(ofCell: $0.cellCount - 1).lowerBound } ?? state.selectedBlock
        case .zoomIn:
            if let grid = lastGrid {
                state.zoom = HeatmapGrid.zoomedIn(from: grid.blocksPerCell)
                state.selectedBlock = state.selectedBlock / state.zoom! * state.zoom!
            }
        case .zoomOut:
            if let grid = lastGrid {
                let fitting = HeatmapGrid.fittingBlocksPerCell(
                    blockCount: grid.blockCount, columns: grid.columns, rows: grid.visibleRows)
                let zoom = HeatmapGrid.zoomedOut(from: grid.blocksPerCell, fitting: fitting)
                state.zoom = zoom == fitting ? nil : zoom
            }
        case .startJump: state.jumpInput = ""
        case .drillDown:
            state.screen = .drillDown
            state.selectedAllocation = 0
            detail = nil
            readDetail()
        case .back: state.screen = .main
        case .moveAllocation(let delta):
            if let count = detail?.allocations.count, count > 0 {
                state.selectedAllocation = (state.selectedAllocation + delta + count) % count
            }
        case .neighbourBlock(let delta):
            if let blockCount = shown?.snapshot.blockCount {
                state.selectedBlock = min(max(0, state.selectedBlock + delta), blockCount - 1)
                readDetail()
            }
        case .togglePause:
            state.paused.toggle()
            if !state.paused, let latest { show(latest) }
        case .writeSnapshot: writeSnapshot()
        case .cycleRefreshRate:
            state.interval = state.nextInterval
            flash(Self.refreshMessage(state.interval))
        case .cycleColorMode:
            let index = colorModes.firstIndex(of: state.colorMode) ?? 0
            state.colorMode = colorModes[(index + 1) % colorModes.count]
            flash("colours: \(state.colorMode.rawValue)")
        case .toggleChangeMarks:
            state.markChanges.toggle()
            flash(state.markChanges ? "changed blocks are marked" : "changed blocks are not marked")
        case .toggleHelp: state.showHelp = true
        case .click(let row, let column): click(row: row, column: column)
        case .redraw:
            heatmapCells = nil
            terminal.invalidate()
        case .toggleOwners: state.screen = state.screen == .owners ? .main : .owners
        case .moveOwner(let delta): state.moveOwnerSelection(by: delta, count: owners.count)
        case .sortColumn(let delta): state.sortOwners(movingColumnBy: delta, owners: owners)
        case .invertSort: state.invertOwnerOrder(owners: owners)
        case .highlightOwner:
            state.highlightSelectedOwner(owners: owners)
            flash(
                state.highlightedOwner.map { "highlighting the blocks of pid \($0) (Esc: stop)" }
                    ?? "no owner highlighted")
        case .clearHighlight: state.highlightedOwner = nil
        }
        return .handled
    }

    /// The owners of the frame on screen.
    private var owners: [OwnerAllocations] { shown?.statistics.owners ?? [] }

    private func moveSelection(cells delta: Int) {
        guard let grid = lastGrid else { return }
        state.selectedBlock = grid.move(from: state.selectedBlock, by: delta)
    }

    private func click(row: Int, column: Int) {
        guard state.screen == .main, let layout = lastLayout, let grid = lastGrid,
            layout.heatmap.contains(row: row, column: column),
            let cell = grid.cell(atRow: row - layout.heatmap.top, column: column - layout.heatmap.left)
        else { return }
        state.selectedBlock = grid.blocks(ofCell: cell).lowerBound
    }

    private func editJump(_ key: KeyPress) {
        switch key {
        case .escape: state.jumpInput = nil
        case .backspace: _ = state.jumpInput?.popLast()
        case .enter:
            let text = state.jumpInput ?? ""
            state.jumpInput = nil
            guard let snapshot = shown?.snapshot else { return }
            if let block = KeyMap.jumpTarget(text, blockSize: snapshot.blockSize, blockCount: snapshot.blockCount) {
                state.selectedBlock = block
                if state.screen == .drillDown { readDetail() }
            } else {
                flash("not a block number or offset of this cache: \(text)", isError: true)
            }
        case .character(let character) where !character.isNewline: state.jumpInput?.append(character)
        default: break
        }
    }

    /// What `r` flashes: the new period and its rate.
    static func refreshMessage(_ interval: Duration) -> String {
        "refresh every \(Format.seconds(interval)) (\(Format.hertz(interval: interval)))"
    }

    func flash(_ text: String, isError: Bool = false) {
        state.flash = ViewState.Flash(text: text, isError: isError, until: .now + .seconds(4))
    }

    // MARK: - Snapshots

    /// Writes what `shmtop snapshot PATH` prints (a fresh snapshot with the header scan) to a
    /// timestamped file, and flashes its path.
    private func writeSnapshot() {
        guard let inspector = sampler.inspector else {
            flash("no snapshot: the file is not attached", isError: true)
            return
        }
        do {
            let snapshot = try inspector.snapshot()
            var statistics = CacheStatistics(snapshot)
            let pathCache = try inspector.pathCacheReport(root: snapshot.pathCacheRoot, attributingTo: &statistics)
            let text = SnapshotText(ascii: state.glyphs == .ascii).render(snapshot, statistics, pathCache: pathCache)
            let path = Self.snapshotPath(
                directory: options.snapshotDirectory, wallClockNanoseconds: snapshot.wallClockNanoseconds)
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            flash("snapshot written to \(path)")
        } catch {
            flash("snapshot failed: \(error)", isError: true)
        }
    }

    /// `DIRECTORY/shmtop-snapshot-YYYYMMDD-HHMMSS.txt` in local time, with `-2`, `-3` … when taken.
    static func snapshotPath(directory: String, wallClockNanoseconds: UInt64) -> String {
        var seconds = time_t(wallClockNanoseconds / 1_000_000_000)
        var parts = tm()
        localtime_r(&seconds, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let length = strftime(&buffer, buffer.count, "%Y%m%d-%H%M%S", &parts)
        let stamp = String(decoding: buffer[..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let base = (directory as NSString).appendingPathComponent("shmtop-snapshot-\(stamp)")
        var path = base + ".txt"
        var counter = 2
        while FileManager.default.fileExists(atPath: path) {
            path = "\(base)-\(counter).txt"
            counter += 1
        }
        return path
    }
}
