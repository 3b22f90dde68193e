// Driving `shmtop watch` inside a private tmux server, the way a person would use it.
//
// tmux is started with posix_spawn and an empty signal mask (see ChildProcess): Foundation.Process
// hangs on tmux's daemon, and Swift Testing's blocked signals would otherwise reach the watcher,
// which then never sees SIGWINCH or SIGTERM. Screens are polled until they show what is expected
// (with a deadline) instead of sleeping a fixed time.

import Foundation
import ShmInspect
import ShmSystem
import ShmTestSupport
import Testing

#if canImport(Glibc)
    import Glibc
#endif

/// A private tmux server with one session running one command.
final class TmuxSession {
    static let executable: String = {
        let candidates: [String] = ["/usr/bin/tmux", "/usr/local/bin/tmux"]
        return candidates.first { access($0, X_OK) == 0 } ?? candidates[0]
    }()
    let socket: String
    /// Where the wrapping shell writes the command's exit status when it ends.
    private let statusFile: String

    /// Starts `command` (argv) in a detached `width` × `height` session, in a UTF-8 locale. A
    /// shell runs it and records its exit status in a file (tmux's own `pane_dead_status` is not
    /// always filled in when the pane's terminal closes first).
    init(_ command: [String], width: Int = 120, height: Int = 40, environment: [String: String] = [:]) throws {
        let name = "shmtop-tui-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"
        socket = name
        statusFile = NSTemporaryDirectory() + name + ".status"
        var arguments = ["new-session", "-d", "-s", "watch", "-x", "\(width)", "-y", "\(height)"]
        for (name, value) in ["LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"].merging(environment, uniquingKeysWith: { $1 }) {
            arguments += ["-e", "\(name)=\(value)"]
        }
        let wrapper =
            #""$0" "$@"; echo $? > "$SHMTOP_TEST_STATUS.tmp" && mv "$SHMTOP_TEST_STATUS.tmp" "$SHMTOP_TEST_STATUS"; sleep 600"#
        try tmux(arguments + ["-e", "SHMTOP_TEST_STATUS=\(statusFile)", "--", "/bin/sh", "-c", wrapper] + command)
    }

    deinit {
        _ = try? tmux("kill-server")
        unlink(statusFile)
    }

    /// Runs one tmux command on this server and returns its output.
    @discardableResult
    func tmux(_ arguments: String...) throws -> String { try tmux(arguments) }

    @discardableResult
    func tmux(_ arguments: [String]) throws -> String {
        try runToEnd(Self.executable, ["-L", socket, "-f", "/dev/null"] + arguments).output
    }

    /// The screen as text (`escapes`: with colour escape sequences).
    func capture(escapes: Bool = false) throws -> String {
        try tmux(["capture-pane", "-p", "-t", "watch"] + (escapes ? ["-e"] : []))
    }

    /// The normal screen saved under the full-screen app while it runs (tmux's alternate grid).
    func savedScreen() throws -> String {
        try tmux(["capture-pane", "-p", "-a", "-t", "watch"])
    }

    /// Sends keys by tmux name (`Enter`, `Escape`, `Tab`, `q`, …).
    func send(_ keys: String...) throws { try tmux(["send-keys", "-t", "watch"] + keys) }

    /// Sends literal text.
    func type(_ text: String) throws { try tmux("send-keys", "-t", "watch", "-l", text) }

    func resize(width: Int, height: Int) throws {
        try tmux("resize-window", "-t", "watch", "-x", "\(width)", "-y", "\(height)")
    }

    /// The pid of the command (the child of the pane's wrapping shell), once it runs.
    func commandPID() throws -> pid_t? {
        let shell = try format("#{pane_pid}")
        let children = (try? String(contentsOfFile: "/proc/\(shell)/task/\(shell)/children", encoding: .utf8)) ?? ""
        return children.split(separator: " ").first.flatMap { pid_t($0) }
    }

    /// The command's exit status once it ended, else `nil`.
    func exitStatus() -> Int32? {
        (try? String(contentsOfFile: statusFile, encoding: .utf8)).flatMap {
            Int32($0.trimmingCharacters(in: .whitespacesAndNewlines))
        }
    }

    /// A tmux format evaluated for the pane (`#{pane_pid}`, `#{alternate_on}` …).
    func format(_ format: String) throws -> String {
        try tmux("display-message", "-p", "-t", "watch", format).trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Polls the screen until `condition` holds, for at most `seconds`; returns the last screen,
    /// and records an issue naming `what` when the deadline passes.
    @discardableResult
    func waitForScreen(
        _ what: String, seconds: Double = 15, sourceLocation: SourceLocation = #_sourceLocation,
        _ condition: (String) -> Bool
    ) throws -> String {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        var screen = try capture()
        while true {
            if condition(screen) {
                // A capture can land while the app is still painting a frame: the condition may hold
                // on its top half. A frame paints in well under 30 ms, so one more capture that
                // still satisfies the condition is a whole frame.
                usleep(30_000)
                let settled = try capture()
                if condition(settled) { return settled }
                screen = settled
            }
            guard ContinuousClock.now < deadline else {
                Issue.record("timed out waiting for \(what); screen:\n\(screen)", sourceLocation: sourceLocation)
                return screen
            }
            usleep(50_000)
            screen = try capture()
        }
    }

    /// Presses `q` and returns the exit status.
    func quit() throws -> Int32? {
        try send("q")
        return try waitForExit()
    }

    /// Polls until the pane's command has ended and returns its exit status.
    func waitForExit(seconds: Double = 10) throws -> Int32? {
        let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
        while ContinuousClock.now < deadline {
            if let status = exitStatus() { return status }
            usleep(50_000)
        }
        return nil
    }
}

extension String {
    /// The screen's lines.
    var lines: [Substring] { split(separator: "\n", omittingEmptySubsequences: false) }
}
