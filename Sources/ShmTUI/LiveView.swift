// `shmtop watch`'s entry point, its options and exit, and what the title and the banner say
// about the watched file.

import Foundation
import ShmInspect

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

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

/// The live inspector (`shmtop watch`).
public enum LiveView {
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
