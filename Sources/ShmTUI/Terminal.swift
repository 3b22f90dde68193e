// The terminal: ncurses set up and torn down, keys read, canvases painted.
//
// Restoring the terminal is the one thing that must never be skipped. `Terminal.restore()` is
// idempotent and called by `deinit`, by the watch loop on every exit path (q, a signal, an error),
// and the signals that end the program (SIGINT, SIGTERM, SIGHUP) only set a flag that the loop
// reads: ncurses is never called from a signal handler.

import CNcurses
import ShmInspect
import ShmSystem
import Synchronization

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The signal that asked the program to stop, or 0. Written by the signal handler (an atomic
/// store is async-signal-safe), read by the watch loop.
let pendingTerminationSignal = Atomic<Int32>(0)

/// SIGINT, SIGTERM and SIGHUP as a flag for the watch loop.
enum TerminationSignals {
    static let handled = [SIGINT, SIGTERM, SIGHUP]

    /// Makes the handled signals set ``pendingTerminationSignal``, then unblocks them and SIGWINCH
    /// (for resizes). A signal interrupts the key read at once instead of after its timeout, and
    /// one pending from before never takes the default action, which would leave the terminal in
    /// curses mode.
    static func install() {
        SignalRouting.install(
            handled, handler: { pendingTerminationSignal.store($0, ordering: .relaxed) }, alsoUnblocking: [SIGWINCH])
    }

    /// The signal received since the last call, or `nil`.
    static func take() -> Int32? {
        let signal = pendingTerminationSignal.exchange(0, ordering: .relaxed)
        return signal == 0 ? nil : signal
    }
}

/// One input event.
enum KeyPress: Hashable, Sendable {
    case character(Character)
    case up, down, left, right, pageUp, pageDown, home, end
    case enter, escape, backspace, tab, backTab
    /// The terminal changed size.
    case resize
    /// A mouse click at a screen position.
    case click(row: Int, column: Int)
    /// A function key: F1 is `function(1)`.
    case function(Int)
}

/// Why the terminal could not be used.
public enum TerminalError: Error, CustomStringConvertible, Sendable {
    /// Standard input or output is not a terminal.
    case notATerminal
    /// ncurses could not set up the terminal (unknown `TERM`, …).
    case setupFailed(term: String)

    public var description: String {
        switch self {
        case .notATerminal:
            "watch needs a terminal, and standard input or output is not one; for text output use `shmtop snapshot PATH` (or --json)"
        case .setupFailed(let term):
            "cannot set up the terminal (TERM=\(term)); for text output use `shmtop snapshot PATH`"
        }
    }
}

/// The terminal in full-screen mode. Create one at a time; `restore()` (or `deinit`) gives the
/// terminal back as it was.
final class Terminal {
    /// The number of colours the terminal reports.
    let colorCount: Int
    /// True when the locale is UTF-8 and block elements can be drawn.
    let unicode: Bool
    private var active = true
    private var palette: Palette?
    /// The canvas on screen and the palette it was painted with; `nil` before the first paint and
    /// after `invalidate()`.
    private var painted: (canvas: Canvas, palette: Palette)?
    /// One run's characters for `mvaddnwstr`, kept to avoid an allocation per run.
    private var wideText: [wchar_t] = []

    /// Takes over the terminal: locale, full screen, no echo, keys and mouse, colours.
    init() throws(TerminalError) {
        guard isatty(STDIN_FILENO) == 1, isatty(STDOUT_FILENO) == 1 else { throw .notATerminal }
        TerminationSignals.install()
        // Wide characters (░▒▓█) need the environment's locale before initscr.
        let locale = setlocale(LC_ALL, "").map { String(cString: $0) } ?? "C"
        unicode = locale.uppercased().contains("UTF-8") || locale.uppercased().contains("UTF8")
        // newterm instead of initscr: initscr exits the process on failure, newterm returns nil.
        guard shm_newterm_stdio() != nil else {
            throw .setupFailed(term: getenv("TERM").map { String(cString: $0) } ?? "")
        }
        cbreak()
        // No typeahead check: ncurses otherwise polls the keyboard between the lines of every
        // update (about 30 polls a second under load). A key waits for the frame: a millisecond.
        typeahead(-1)
        noecho()
        nonl()
        keypad(shm_stdscr(), true)
        curs_set(0)
        set_escdelay(25)
        mousemask(shm_mouse_click_mask(), nil)
        mouseinterval(0)
        if has_colors() {
            start_color()
            use_default_colors()
            colorCount = Int(shm_colors())
        } else {
            colorCount = 0
        }
        // ncurses 6.4 flushes its output at every cursor move until the screen has been through
        // one endwin and refresh (newterm leaves it in its "initial" state, where a move may come
        // from a terminfo program that never refreshes): a frame then went out in dozens of writes
        // of 40 bytes, a tenth of the watcher's CPU in the kernel's terminal path. After this
        // cycle, which draws nothing, a frame is one write.
        endwin()
        refresh()
    }

    deinit { restore() }

    /// Leaves full-screen mode; safe to call more than once.
    func restore() {
        guard active else { return }
        active = false
        mousemask(0, nil)
        curs_set(1)
        endwin()
    }

    /// The terminal's size in cells.
    var size: (width: Int, height: Int) { (Int(shm_cols()), Int(shm_lines())) }

    /// Defines the colour pairs of `palette` (once per mode change).
    private func apply(_ palette: Palette) {
        guard self.palette != palette else { return }
        self.palette = palette
        guard colorCount > 0 else { return }
        for role in Palette.roles {
            let look = palette.look(role)
            init_pair(Palette.pairNumber(role), look.foreground, look.background)
        }
    }

    /// Forgets what is on the screen, so that the next `paint` draws every row and ncurses
    /// repaints the whole terminal (Ctrl-L).
    func invalidate() {
        painted = nil
        clearok(shm_stdscr(), true)
    }

    /// Draws `canvas` (sized to the terminal) and shows it.
    ///
    /// Only the cells that differ from the last painted canvas go to ncurses (see
    /// `Canvas.forEachChangedRun`): it keeps the others on its screen, and handing it a cell
    /// (widths, attributes) costs more than comparing it. A different size or palette paints
    /// everything. Runs go to ncurses as wide characters, which it stores as they are.
    func paint(_ canvas: Canvas, palette: Palette) {
        apply(palette)
        let previous = painted.flatMap { $0.palette == palette ? $0.canvas : nil }
        painted = (canvas, palette)
        canvas.forEachChangedRun(since: previous) { run in
            wideText.removeAll(keepingCapacity: true)
            for column in run.columns {
                wideText.append(wchar_t(bitPattern: canvas[run.row, column].character.value))
            }
            setAttributes(run.style, palette: palette)
            // The bottom-right cell makes addnwstr report an error (the cursor cannot advance);
            // the character is drawn all the same.
            _ = wideText.withUnsafeBufferPointer {
                mvaddnwstr(Int32(run.row), Int32(run.columns.lowerBound), $0.baseAddress, Int32($0.count))
            }
        }
        shm_set_attributes(shm_attr_normal(), 0)
        refresh()
    }

    private func setAttributes(_ style: CellStyle, palette: Palette) {
        let look = palette.look(style.role)
        var attributes = shm_attr_normal()
        if style.bold || look.bold { attributes |= shm_attr_bold() }
        if look.dim { attributes |= shm_attr_dim() }
        if style.reverse != look.reverse { attributes |= shm_attr_reverse() }
        if style.underline { attributes |= shm_attr_underline() }
        let pair = colorCount > 0 && palette.mode != .monochrome ? Palette.pairNumber(style.role) : 0
        shm_set_attributes(attributes, pair)
    }

    /// Waits up to `milliseconds` for a key; `nil` on timeout or when a signal interrupted the wait.
    func readKey(timeoutMilliseconds milliseconds: Int) -> KeyPress? {
        timeout(Int32(max(0, milliseconds)))
        var code: Int32 = 0
        var isFunctionKey: Int32 = 0
        guard shm_read_key(&code, &isFunctionKey) != ERR else { return nil }
        if isFunctionKey != 0 { return functionKey(code) }
        switch code {
        case 9: return .tab
        case 10, 13: return .enter
        case 27: return .escape
        case 8, 127: return .backspace
        default: return Unicode.Scalar(UInt32(code)).map { .character(Character($0)) }
        }
    }

    private func functionKey(_ code: Int32) -> KeyPress? {
        switch code {
        case KEY_UP: .up
        case KEY_DOWN: .down
        case KEY_LEFT: .left
        case KEY_RIGHT: .right
        case KEY_PPAGE: .pageUp
        case KEY_NPAGE: .pageDown
        case KEY_HOME: .home
        case KEY_END: .end
        case KEY_ENTER: .enter
        case KEY_BACKSPACE: .backspace
        case KEY_BTAB: .backTab
        case KEY_RESIZE: .resize
        case KEY_MOUSE: mouseClick()
        case (KEY_F0 + 1)...(KEY_F0 + 12): .function(Int(code - KEY_F0))
        default: nil
        }
    }

    private func mouseClick() -> KeyPress? {
        var event = MEVENT()
        guard getmouse(&event) == OK, shm_is_click(event.bstate) != 0 else { return nil }
        return .click(row: Int(event.y), column: Int(event.x))
    }
}
