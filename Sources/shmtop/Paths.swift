import ArgumentParser
import Foundation
import ShmFormat
import ShmInspect

extension Shmtop {
    /// `shmtop paths`: the path cache's paths and their flags, read-only.
    struct Paths: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "List the paths a cache's path cache holds, with their flags.",
            discussion: """
                Opens the file read-only and never writes to it; safe while writers run. Paths are sorted \
                by their bytes; flags are shown as allow, deny and prefix, plus the caller's own bits in hex. \
                A last line counts them. A cache without a path cache lists nothing and says so (exit 0).
                """
        )

        @OptionGroup var file: CachePathArgument
        @Option(
            help: ArgumentHelp(
                "Only DIR and the paths below it (at a '/' boundary: /usr/local is not under /usr/loc).",
                valueName: "DIR"))
        var under: String?
        @Flag(help: "Print one JSON object instead of text.")
        var json = false

        func validate() throws {
            if let under, !under.hasPrefix("/") {
                throw ValidationError("--under \(under) is not an absolute path: DIR starts with /")
            }
        }

        func run() throws {
            let path = try file.resolved()
            let inspector = try failingWithOneLine { () throws(InspectError) in try CacheInspector(path: path) }
            var cached: [CachedPath] = []
            let figures = try failingWithOneLine { () throws(InspectError) in
                try inspector.pathCache(root: inspector.pathCacheRoot()) { bytes, flags in
                    cached.append(CachedPath(bytes: Array(bytes), flags: flags))
                }
            }
            let directory = under.map { Array($0.utf8) }
            let listed = cached.filter { directory.map($0.isUnder) ?? true }.sorted {
                $0.bytes.lexicographicallyPrecedes($1.bytes)
            }
            if json {
                let report = Report(
                    file: path, hasPathCache: figures != nil, under: under, paths: listed.map(Report.Entry.init),
                    count: listed.count, cached: cached.count)
                let encoder = JSONEncoder()
                encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
                print(String(decoding: try encoder.encode(report), as: UTF8.self))
                return
            }
            guard figures != nil else {
                print("\(path): no path cache (no path has been inserted yet)")
                return
            }
            let width = max(5, listed.map { $0.flagsText.count }.max() ?? 0)
            print("flags".padding(toLength: width, withPad: " ", startingAt: 0) + "  path")
            for entry in listed {
                print(entry.flagsText.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + entry.text)
            }
            let noun = cached.count == 1 ? "path" : "paths"
            print(under.map { "\(listed.count) of \(cached.count) \(noun) under \($0)" } ?? "\(listed.count) \(noun)")
        }

        /// One cached path and its flags.
        struct CachedPath {
            let bytes: [UInt8]
            let flags: UInt8

            /// The bits the cache gives no meaning to: the caller's.
            var callerBits: UInt8 {
                flags & ~(PathCacheLayout.allowFlag | PathCacheLayout.denyFlag | PathCacheLayout.prefixFlag)
            }

            /// `allow`, `deny`, `prefix` joined by `|` (`-` for none), then the caller's bits (`+0x40`).
            var flagsText: String {
                let named = [
                    (PathCacheLayout.allowFlag, "allow"), (PathCacheLayout.denyFlag, "deny"),
                    (PathCacheLayout.prefixFlag, "prefix"),
                ]
                .filter { flags & $0.0 != 0 }.map(\.1)
                let names = named.isEmpty ? "-" : named.joined(separator: "|")
                return callerBits == 0 ? names : names + " +0x" + String(callerBits, radix: 16)
            }

            /// The path as text (bytes that are not UTF-8 become U+FFFD).
            var text: String { String(decoding: bytes, as: UTF8.self) }

            /// True for `directory` itself and the paths below it at a `/` boundary.
            func isUnder(_ directory: [UInt8]) -> Bool {
                // "/usr/" means "/usr"; "/" becomes "", under which every absolute path lies.
                var directory = directory[...]
                while directory.last == UInt8(ascii: "/") { directory = directory.dropLast() }
                guard bytes.starts(with: directory) else { return false }
                return bytes.count == directory.count ? !directory.isEmpty : bytes[directory.count] == UInt8(ascii: "/")
            }
        }

        /// The JSON object `paths --json` prints.
        struct Report: Encodable {
            /// One path: its text, its flags as a number, and each flag.
            struct Entry: Encodable {
                let path: String
                let flags: UInt8
                let allow: Bool
                let deny: Bool
                let prefix: Bool
                let callerBits: UInt8

                init(_ cached: CachedPath) {
                    path = cached.text
                    flags = cached.flags
                    allow = cached.flags & PathCacheLayout.allowFlag != 0
                    deny = cached.flags & PathCacheLayout.denyFlag != 0
                    prefix = cached.flags & PathCacheLayout.prefixFlag != 0
                    callerBits = cached.callerBits
                }
            }

            let file: String
            let hasPathCache: Bool
            let under: String?
            let paths: [Entry]
            /// Paths listed.
            let count: Int
            /// Paths cached, listed or not.
            let cached: Int
        }
    }
}
