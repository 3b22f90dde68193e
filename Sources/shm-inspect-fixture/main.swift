// `shm-inspect-fixture PATH SIZE...`: attaches to the cache at PATH, allocates each SIZE in order,
// fills every allocation with its index as text ("alloc-0", "alloc-1", … repeated), prints the
// offsets one per line, and exits without freeing: the allocations stay, owned by a dead pid.
// The inspector tests use it to leave a known leak behind.
//
// `shm-inspect-fixture PATH --paths FLAGS:PATH...` inserts each PATH into the cache's path cache
// with FLAGS (a number: 0x6 is deny|prefix), then searches each once; `--generated-paths N`
// inserts N generated paths (seeds 0 ..< N, flags as the path cache workload picks them). Its
// path cache nodes then belong to a dead pid, as a traced build's exited processes leave them.
// `--paths-then-wait` inserts and searches as `--paths`, prints `ready`, and waits for a signal
// to end it: a live process that holds nothing but path cache nodes.

import ShmAlloc
import ShmPathCache
import ShmWorkloads

#if canImport(Glibc)
    import Glibc
#endif

/// Writes one line to standard error.
func fail(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Inserts `entries` (`FLAGS:PATH`) into the path cache of `cache` and searches each once.
func insertPaths(_ entries: some Collection<String>, into cache: SharedCache) throws {
    let paths = try PathCache(cache: cache)
    var inserted: [String] = []
    for entry in entries {
        guard let colon = entry.firstIndex(of: ":"), let flags = parseFlags(entry[..<colon]) else {
            fail("shm-inspect-fixture: not FLAGS:PATH: \(entry)")
            exit(2)
        }
        let path = String(entry[entry.index(after: colon)...])
        try paths.insert(path, flags: PathFlags(rawValue: flags))
        inserted.append(path)
    }
    for path in inserted { _ = try paths.search(path) }
}

/// `0x6` or `6`.
func parseFlags(_ text: Substring) -> UInt8? {
    text.hasPrefix("0x") ? UInt8(text.dropFirst(2), radix: 16) : UInt8(text)
}

/// Inserts `count` generated paths into the path cache of `cache`.
func insertGeneratedPaths(_ count: Int, into cache: SharedCache) throws {
    let paths = try PathCache(cache: cache)
    for seed in 0..<UInt64(count) {
        let path = PathCacheWorkload.path(seed: seed)
        try paths.insert(path, flags: PathFlags(rawValue: PathCacheWorkload.flags(path: path)))
    }
}

let arguments = CommandLine.arguments.dropFirst()
guard let path = arguments.first else {
    fail(
        "usage: shm-inspect-fixture PATH SIZE... | PATH --paths[-then-wait] FLAGS:PATH... | PATH --generated-paths N")
    exit(2)
}
do {
    let cache = try SharedCache(path: path, policy: .attach)
    let rest = arguments.dropFirst()
    if rest.first == "--paths" || rest.first == "--paths-then-wait" {
        try insertPaths(rest.dropFirst(), into: cache)
        guard rest.first == "--paths-then-wait" else { exit(0) }
        print("ready")
        fflush(nil)
        while true { pause() }
    }
    if rest.first == "--generated-paths" {
        guard rest.count == 2, let count = Int(rest.last!), count >= 0 else {
            fail("shm-inspect-fixture: --generated-paths N")
            exit(2)
        }
        try insertGeneratedPaths(count, into: cache)
        exit(0)
    }
    for (index, text) in rest.enumerated() {
        guard let size = Int(text) else {
            fail("shm-inspect-fixture: not a size: \(text)")
            exit(2)
        }
        let pointer = try cache.allocatePointer(size)
        let pattern = Array("alloc-\(index) ".utf8)
        for byte in 0..<size {
            pointer.storeBytes(of: pattern[byte % pattern.count], toByteOffset: byte, as: UInt8.self)
        }
        print(cache.offset(of: pointer)!.rawValue)
    }
} catch {
    fail("shm-inspect-fixture: \(error)")
    exit(1)
}
