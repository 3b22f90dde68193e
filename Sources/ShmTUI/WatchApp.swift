// `shmtop watch`: the loop that samples, reads keys and paints.
//
// One sample per refresh interval computes a `LiveFrame` (every figure the view shows); keys only
// change the `ViewState`; painting draws the current frame and state into a canvas. The heatmap
// cells derived from a frame are cached until the next frame or a change of zoom, scroll or size,
// so moving the cursor repaints without recomputing anything.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import Foundation
import ShmFormat
import ShmInspect

/// What `shmtop watch` was asked to do.
public struct WatchOptions: Sendable {
    /// The cache file.
    public var path: String
    /// Time between samples (10 Hz by default).
    public var interval: Duration
    /// Draw with ASCII only, even in a UTF-8 locale.
    public var ascii: Bool
    /// Where `s` writes snapshot files.
    public var snapshotDirectory: String
    /// Stop by itself after this long (as if `q` was pressed); `nil` runs until `q` or a signal.
    public var duration: Duration?

    public init(
        path: String, interval: Duration = .milliseconds(100), ascii: Bool = false, snapshotDirectory: String = ".",
        duration: Duration? = nil
    ) {
        self.path = path
        self.interval = interval
        self.ascii = ascii
        self.snapshotDirectory = snapshotDirectory
        self.duration = duration
    }
}

/// How the watch ended.
public enum WatchExit: Hashable, Sendable {
    /// `q` was pressed (or the requested duration passed).
    case quit
    /// A signal (SIGINT, SIGTERM, SIGHUP) asked to stop; the terminal was restored.
    case signal(Int32)

    /// The exit status a command should end with: 0, or 128 + the signal as shells report it.
    public var status: Int32 {
        switch self {
        case .quit: 0
        case .signal(let signal): 128 + signal
        }
    }
}

/// Why the watch could not start.
public enum WatchError: Error, CustomStringConvertible, Sendable {
    case inspect(InspectError)
    case terminal(TerminalError)

    public var description: String {
        switch self {
        case .inspect(let error): error.description
        case .terminal(let error): error.description
        }
    }
}

/// The live inspector.
public enum Watch {
    /// Attaches to the cache, takes over the terminal and runs until `q` or a signal. The
    /// terminal is restored on every way out.
    public static func run(_ options: WatchOptions) throws(WatchError) -> WatchExit {
        let inspector: CacheInspector
        do { inspector = try CacheInspector(path: options.path) } catch { throw .inspect(error) }
        let terminal: Terminal
        do { terminal = try Terminal() } catch { throw .terminal(error) }
        defer { terminal.restore() }
        let noColor = !(ProcessInfo.processInfo.environment["NO_COLOR"] ?? "").isEmpty
        let app = WatchApp(
            terminal: terminal, sampler: LiveSampler(inspector: inspector), options: options,
            colorModes: ColorMode.available(colors: terminal.colorCount, noColor: noColor),
            glyphs: terminal.unicode && !options.ascii ? .unicode : .ascii)
        return app.run()
    }
}

/// Why the watched file cannot be read, while it cannot: the loop's one account of it, from
/// which the banner and the title's status are both drawn.
struct Detachment: Hashable {
    /// What happened to the file.
    let first: InspectError
    /// Why the latest attempt to read or attach again failed.
    let latest: InspectError
    /// The banner's words: what happened, and why attaching fails now when that is another story
    /// (a file still too short after a truncation is the same story). Made once per change of
    /// state, not once per frame.
    let reason: String

    init(first: InspectError, latest: InspectError) {
        self.first = first
        self.latest = latest
        let sameStory = latest == first || (first.fileIsTooShort && latest.fileIsTooShort)
        reason = sameStory ? first.reason : "\(first.reason) (now \(latest.reason))"
    }
}

/// The state the title bar shows at its right end.
enum TitleStatus: String, Hashable {
    case live = "LIVE"
    case paused = "PAUSED"
    case deleted = "DELETED"
    case truncated = "TRUNCATED"
    case replaced = "REPLACED"
    /// The file became unreadable in another way (a failing read, for one).
    case detached = "DETACHED"

    /// The status of a view `paused` or not, whose file is attached unless `detachment` says
    /// otherwise; what happened to the file outweighs a pause, as the banner's first words do.
    init(paused: Bool, detachment: Detachment?) {
        guard let detachment else {
            self = paused ? .paused : .live
            return
        }
        switch detachment.first {
        case .deleted: self = .deleted
        case .replaced: self = .replaced
        case let error where error.fileIsTooShort: self = .truncated
        default: self = .detached
        }
    }
}

/// The loop's state: the sampler, the frames, the view state and the derived caches.
final class WatchApp {
    private let terminal: Terminal
    private let sampler: LiveSampler
    private let options: WatchOptions
    private let colorModes: [ColorMode]
    private var state: ViewState
    /// The newest sample.
    private var latest: LiveFrame?
    /// The frame on screen (older than `latest` while paused).
    private var shown: LiveFrame?
    /// The drill-down's block, read at the frame on screen.
    private var detail: BlockDetail?
    /// Why the file is not attached, while it is not: the banner and the title's status both
    /// come from it.
    private var detachment: Detachment?
    private var heatmapCells: HeatmapCells?
    /// The grid and layout of the last paint, for keys that move by rows and for clicks.
    private var lastGrid: HeatmapGrid?
    private var lastLayout: ScreenLayout?

    init(terminal: Terminal, sampler: LiveSampler, options: WatchOptions, colorModes: [ColorMode], glyphs: GlyphSet) {
        self.terminal = terminal
        self.sampler = sampler
        self.options = options
        self.colorModes = colorModes
        state = ViewState(colorMode: colorModes[0], glyphs: glyphs, interval: options.interval)
    }

    func run() -> WatchExit {
        var nextSample = ContinuousClock.now
        let end = options.duration.map { nextSample + $0 }
        var needsPaint = true
        var flashShown = false
        while true {
            if let signal = TerminationSignals.take() { return .signal(signal) }
            let now = ContinuousClock.now
            if let end, now >= end { return .quit }
            if now >= nextSample {
                takeSample()
                needsPaint = true
                // Keep the cadence, but never try to catch up on samples missed while busy.
                nextSample = max(nextSample + state.interval, now)
            }
            if flashShown, let flash = state.flash, flash.until <= now {
                state.flash = nil
                needsPaint = true
            }
            if needsPaint {
                paint(now: now)
                flashShown = state.flash != nil
                needsPaint = false
            }
            var wait = nextSample - ContinuousClock.now
            if let flash = state.flash { wait = min(wait, flash.until - ContinuousClock.now) }
            if let end { wait = min(wait, end - ContinuousClock.now) }
            // Rounded up: a wait of less than a millisecond rounded down to 0 would poll the
            // terminal in a busy loop until the next sample is due.
            let milliseconds = max(0, Int((wait / .milliseconds(1)).rounded(.up)))
            guard let key = terminal.readKey(timeoutMilliseconds: milliseconds) else { continue }
            if handle(key) == .quit { return .quit }
            needsPaint = true
        }
    }

    // MARK: - Sampling

    private func takeSample() {
        // The sampler brings the words up to date in place when no frame shares them: the frames
        // let go of them first (a paused view keeps its frame, and the sample then copies them;
        // while detached the sampler holds no words, and the last good frame stays).
        latest = nil
        if !state.paused, detachment == nil { shown = nil }
        sampler.highlightedOwner = state.highlightedOwner
        switch sampler.sample(interval: state.interval) {
        case .frame(let frame):
            if detachment != nil {
                detachment = nil
                flash("re-attached to \(options.path)")
            }
            latest = frame
            if !state.paused { show(frame) }
        case .detached(let error, let lastGood):
            if shown == nil { shown = lastGood }
            detach(error)
        }
    }

    /// Puts `frame` on screen (and re-reads the drill-down's block at it).
    private func show(_ frame: LiveFrame) {
        shown = frame
        state.selectedBlock = min(state.selectedBlock, frame.snapshot.geometry.blockCount - 1)
        if state.screen == .drillDown { readDetail() }
    }

    private func readDetail() {
        guard let inspector = sampler.inspector, let blockCount = shown?.snapshot.geometry.blockCount else { return }
        do {
            let block = min(state.selectedBlock, blockCount - 1)
            let fresh = try inspector.blockDetail(block)
            if fresh.block != detail?.block { state.selectedAllocation = 0 }
            detail = fresh
            state.selectedAllocation = min(state.selectedAllocation, max(0, fresh.allocations.count - 1))
        } catch {
            detach(error)
        }
    }

    /// Records that the file cannot be read: the first error tells what happened to it, later
    /// ones why attaching again fails.
    private func detach(_ error: InspectError) {
        detachment = Detachment(first: detachment?.first ?? error, latest: error)
    }

    // MARK: - Keys

    private enum KeyOutcome { case handled, quit }

    private func handle(_ key: KeyPress) -> KeyOutcome {
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
        case .last: state.selectedBlock = lastGrid.map { $0.blocks(ofCell: $0.cellCount - 1).lowerBound } ?? state.selectedBlock
        case .zoomIn:
            if let grid = lastGrid {
                state.zoom = HeatmapGrid.zoomedIn(from: grid.blocksPerCell)
                state.selectedBlock = state.selectedBlock / state.zoom! * state.zoom!
            }
        case .zoomOut:
            if let grid = lastGrid {
                let fitting = HeatmapGrid.fittingBlocksPerCell(blockCount: grid.blockCount, columns: grid.columns, rows: grid.visibleRows)
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
            if let blockCount = shown?.snapshot.geometry.blockCount {
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
            flash(state.highlightedOwner.map { "highlighting the blocks of pid \($0) (Esc: stop)" } ?? "no owner highlighted")
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
            guard let geometry = shown?.snapshot.geometry else { return }
            if let block = KeyMap.jumpTarget(text, blockSize: geometry.blockSize, blockCount: geometry.blockCount) {
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

    private func flash(_ text: String, isError: Bool = false) {
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
            let text = SnapshotText(ascii: state.glyphs == .ascii).render(snapshot, CacheStatistics(snapshot))
            let path = Self.snapshotPath(directory: options.snapshotDirectory, wallClockNanoseconds: snapshot.wallClockNanoseconds)
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

    // MARK: - Painting

    private func paint(now: ContinuousClock.Instant) {
        let (width, height) = terminal.size
        var canvas = Canvas(width: width, height: height)
        let layout = ScreenLayout(width: width, height: height, banner: detachment != nil)
        lastLayout = layout
        defer { terminal.paint(canvas, palette: Palette(mode: state.colorMode)) }
        if layout.isTooSmall {
            canvas.centred(layout.enlargeMessage, row: height / 2, columns: 0..<width, style: .accent)
            return
        }
        guard let frame = shown else {
            canvas.centred("attaching to \(options.path) …", row: height / 2, columns: 0..<width, style: .muted)
            return
        }
        let view = MainView(frame: frame, state: state, layout: layout, now: now, detachment: detachment)
        switch state.screen {
        case .main:
            let grid = HeatmapGrid(
                blockCount: frame.snapshot.geometry.blockCount, columns: layout.heatmap.width, rows: layout.heatmap.height,
                zoom: state.zoom, selectedBlock: state.selectedBlock, scrollRow: state.scrollRow)
            state.scrollRow = grid.firstRow
            lastGrid = grid
            let cells = heatmapCells.flatMap { cells in
                cells.grid == grid && cells.sequence == frame.sequence ? cells : cells.advanced(to: frame, grid: grid)
            } ?? HeatmapCells(frame: frame, grid: grid)
            heatmapCells = cells
            view.draw(into: &canvas, cells: cells)
        case .owners:
            OwnerTableView(frame: frame, state: state, layout: layout, now: now).draw(into: &canvas, detachment: detachment)
        case .drillDown:
            view.drawTitle(into: &canvas)
            if let detail {
                DrillDownView(detail: detail, state: state, layout: layout, now: now).draw(into: &canvas)
            }
        }
        if let detachment {
            MainView.drawBanner(
                "\(detachment.reason) · showing the last good frame · re-attaching when a valid file appears",
                into: &canvas, layout: layout)
        }
        if state.showHelp { HelpOverlay.draw(into: &canvas, layout: layout, state: state) }
    }
}
