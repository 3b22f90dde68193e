// `shmtop watch`: the loop that samples, reads keys and paints.
//
// One sample per refresh interval computes a `LiveFrame` (every figure the view shows); keys only
// change the `ViewState`; painting draws the current frame and state into a canvas. The heatmap
// cells derived from a frame are cached until the next frame or a change of zoom, scroll or size,
// so moving the cursor repaints without recomputing anything.

import Foundation
import ShmInspect

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The loop's state: the sampler, the frames, the view state and the derived caches.
final class WatchApp {
    let terminal: Terminal
    let sampler: LiveSampler
    let options: WatchOptions
    let colorModes: [ColorMode]
    var state: ViewState
    /// The newest sample.
    var latest: LiveFrame?
    /// The frame on screen (older than `latest` while paused).
    var shown: LiveFrame?
    /// The drill-down's block, read at the frame on screen.
    var detail: BlockDetail?
    /// Why the file is not attached, while it is not: the banner and the title's status both
    /// come from it.
    var detachment: Detachment?
    var heatmapCells: HeatmapCells?
    /// The grid and layout of the last paint, for keys that move by rows and for clicks.
    var lastGrid: HeatmapGrid?
    var lastLayout: ScreenLayout?

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

    func takeSample() {
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
    func show(_ frame: LiveFrame) {
        shown = frame
        state.selectedBlock = min(state.selectedBlock, frame.snapshot.blockCount - 1)
        if state.screen == .drillDown { readDetail() }
    }

    func readDetail() {
        guard let inspector = sampler.inspector, let blockCount = shown?.snapshot.blockCount else { return }
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
    func detach(_ error: InspectError) {
        detachment = Detachment(first: detachment?.first ?? error, latest: error)
    }

    // MARK: - Painting

    func paint(now: ContinuousClock.Instant) {
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
                blockCount: frame.snapshot.blockCount, columns: layout.heatmap.width, rows: layout.heatmap.height,
                zoom: state.zoom, selectedBlock: state.selectedBlock, scrollRow: state.scrollRow)
            state.scrollRow = grid.firstRow
            lastGrid = grid
            view.draw(into: &canvas, cells: heatmapCells(of: frame, grid: grid))
        case .owners:
            OwnerTableView(frame: frame, state: state, layout: layout, now: now).draw(
                into: &canvas, detachment: detachment)
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

    /// The heatmap cells of `frame` at `grid`: the kept ones, advanced when `frame` follows them,
    /// or counted afresh.
    private func heatmapCells(of frame: LiveFrame, grid: HeatmapGrid) -> HeatmapCells {
        // Taken out of the property while advanced, so that their arrays change in place.
        if var cells = heatmapCells.take(),
            (cells.grid == grid && cells.sequence == frame.sequence) || cells.advance(to: frame, grid: grid)
        {
            heatmapCells = cells
            return cells
        }
        let cells = HeatmapCells(frame: frame, grid: grid)
        heatmapCells = cells
        return cells
    }
}
