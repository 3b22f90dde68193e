// The demo writers' path checks: what a process of a traced build does before it opens a file. It
// asks the shared path cache for the path's verdict and, on a miss, asks the tracing server and
// caches the answer for every process. Here the paths are real ones of this system, enumerated
// once, drawn with a skewed popularity (a build opens the same headers again and again), and the
// server is a fixed rule, so every writer gives a path the same verdict and any can check it.

import ShmPathCache

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// Files (and links) of this system, the same list in the same order in every process that
/// enumerates them while the directories do not change, ranked by a fixed shuffle: index 0 is the
/// most popular.
public final class SystemPaths {
    /// Where the enumeration looks, each root with an equal share of the paths: what a build reads
    /// (configuration, headers, libraries, data, tools, add-ons). A missing root adds nothing.
    public static let roots = ["/etc", "/usr/include", "/usr/lib", "/usr/share", "/usr/bin", "/opt"]

    /// The paths, end to end, in rank order.
    private let bytes: UnsafeMutableRawBufferPointer
    /// Where each path starts in `bytes`, and one past the last path's end.
    private let starts: [Int]

    /// Paths in the list.
    public var count: Int { starts.count - 1 }

    /// Enumerates up to `limit` paths of files and links under `roots` (depth first, names in
    /// byte order, symbolic links not followed), none longer than `longest` bytes.
    public init(roots: [String] = SystemPaths.roots, limit: Int = 40_000, longest: Int) {
        var paths: [[UInt8]] = []
        for root in roots {
            let share = limit / max(roots.count, 1)
            Self.enumerate(Array(root.utf8), limit: paths.count + share, longest: longest, into: &paths)
        }
        // Popularity unrelated to the directory order, the same in every process.
        var random = SplitMix64(seed: 0x7EAC_ED)
        paths.shuffle(using: &random)
        bytes = .allocate(byteCount: max(paths.reduce(0) { $0 + $1.count }, 1), alignment: 8)
        var starts = [0]
        for path in paths {
            let start = starts.last!
            UnsafeMutableRawBufferPointer(rebasing: bytes[start..<(start + path.count)]).copyBytes(from: path)
            starts.append(start + path.count)
        }
        self.starts = starts
    }

    deinit { bytes.deallocate() }

    /// The path of rank `index`.
    public func path(_ index: Int) -> UnsafeRawBufferPointer {
        UnsafeRawBufferPointer(rebasing: bytes[starts[index]..<starts[index + 1]])
    }

    /// Adds the files and links under `root` to `paths`, depth first, until `paths` holds `limit`.
    private static func enumerate(_ root: [UInt8], limit: Int, longest: Int, into paths: inout [[UInt8]]) {
        var directories = [root]
        while paths.count < limit, let directory = directories.popLast() {
            var files: [[UInt8]] = []
            var subdirectories: [[UInt8]] = []
            guard let stream = opendir(String(decoding: directory, as: UTF8.self)) else {
                continue  // unreadable or gone: a build would not read it either
            }
            while let entry = readdir(stream) {
                let name = withUnsafeBytes(of: &entry.pointee.d_name) { Array($0.prefix { $0 != 0 }) }
                guard name != [UInt8(ascii: ".")], name != [UInt8(ascii: "."), UInt8(ascii: ".")] else { continue }
                let path = directory + [UInt8(ascii: "/")] + name
                switch entry.pointee.d_type {
                case UInt8(DT_DIR): subdirectories.append(path)
                case UInt8(DT_REG), UInt8(DT_LNK): if path.count <= longest { files.append(path) }
                default: break  // devices, sockets; a file system without d_type lists none
                }
            }
            closedir(stream)
            for file in files.sorted(by: { $0.lexicographicallyPrecedes($1) }) where paths.count < limit {
                paths.append(file)
            }
            // Reversed onto the stack: the first name is visited next.
            directories += subdirectories.sorted { $1.lexicographicallyPrecedes($0) }
        }
    }
}

/// The tracing server's verdicts, as a fixed rule of a path's bytes.
public enum Verdict {
    /// Directories whose whole subtree gets one verdict: one prefix entry answers for every path below.
    public static let subtrees: [(directory: [UInt8], flags: PathFlags)] = [
        (Array("/etc/ssl".utf8), PathFlags.deny.union(.prefix)),
        (Array("/usr/share/doc".utf8), PathFlags.allow.union(.prefix)),
        (Array("/usr/share/locale".utf8), PathFlags.allow.union(.prefix)),
        (Array("/usr/share/man".utf8), PathFlags.allow.union(.prefix)),
    ]
    /// Files denied one by one; every other path is allowed.
    public static let deniedFiles = ["/etc/shadow", "/etc/gshadow", "/etc/sudoers"].map { Array($0.utf8) }

    /// The entry that caches the verdict on `path`: its key, which is `path` or the subtree
    /// directory `path` lies in (the key's first `keyLength` bytes), and its flags.
    public static func entry(for path: UnsafeRawBufferPointer) -> (keyLength: Int, flags: PathFlags) {
        for subtree in subtrees
        where path.starts(with: subtree.directory)
            && (path.count == subtree.directory.count || path[subtree.directory.count] == UInt8(ascii: "/"))
        {
            return (subtree.directory.count, subtree.flags)
        }
        return (path.count, deniedFiles.contains { $0.elementsEqual(path) } ? .deny : .allow)
    }
}

/// What a writer's path checks did.
public struct PathCheckSummary: Hashable, Sendable {
    /// Paths searched.
    public var searches = 0
    /// Searches the cache answered (by the path's entry or a prefix).
    public var hits = 0
    /// Verdicts inserted after a miss.
    public var verdicts = 0
    /// Verdicts the cache refused (no room): the path stays uncached, which a cache may leave it.
    public var refused = 0
    /// Verdicts found again with their flags at the end.
    public var verified = 0
    /// Verdicts not found at the end, or found with other flags.
    public var errors = 0

    /// The sum of two writers' figures.
    public static func + (lhs: Self, rhs: Self) -> Self {
        PathCheckSummary(
            searches: lhs.searches + rhs.searches, hits: lhs.hits + rhs.hits, verdicts: lhs.verdicts + rhs.verdicts,
            refused: lhs.refused + rhs.refused, verified: lhs.verified + rhs.verified, errors: lhs.errors + rhs.errors)
    }
}

/// One writer's path checks: each draws a path by popularity and searches it in the shared path
/// cache; a miss inserts the path's ``Verdict``. The verdicts it inserted are checked by
/// ``verify()``.
public struct PathChecks {
    let pathCache: PathCache
    let paths: SystemPaths
    private var random: SplitMix64
    /// The paths whose verdicts this writer inserted.
    private var inserted: [Int] = []
    /// What the checks did so far.
    public private(set) var summary = PathCheckSummary()

    /// Writer number `writer`'s checks of `paths` in `pathCache`. Writers draw different
    /// sequences from the same ranks, so the popular paths are everyone's.
    public init(pathCache: PathCache, paths: SystemPaths, writer: Int) {
        self.pathCache = pathCache
        self.paths = paths
        random = SplitMix64(seed: UInt64(writer) &+ 0xC4EC)
    }

    /// Searches the next path, and inserts its verdict when the cache has none.
    public mutating func checkNext() {
        guard paths.count > 0 else { return }
        // Rank count^u - 1 for u uniform in [0, 1): rank r is drawn about 1/(r+1) as often as rank
        // 0, as a build opens its common headers far more often than any one source file.
        let unit = Double(random.next() >> 11) / Double(1 << 53)
        let index = min(Int(pow(Double(paths.count), unit)) - 1, paths.count - 1)
        let path = paths.path(index)
        summary.searches += 1
        if (try? pathCache.search(path)) != nil {
            summary.hits += 1
            return
        }
        let entry = Verdict.entry(for: path)
        do {
            try pathCache.insert(UnsafeRawBufferPointer(rebasing: path[..<entry.keyLength]), flags: entry.flags)
            summary.verdicts += 1
            inserted.append(index)
        } catch {
            summary.refused += 1
        }
    }

    /// Searches the key of every verdict this writer inserted, expecting its flags.
    public mutating func verify() {
        for index in inserted {
            let path = paths.path(index)
            let entry = Verdict.entry(for: path)
            if (try? pathCache.search(UnsafeRawBufferPointer(rebasing: path[..<entry.keyLength]))) == entry.flags {
                summary.verified += 1
            } else {
                summary.errors += 1
            }
        }
    }
}
