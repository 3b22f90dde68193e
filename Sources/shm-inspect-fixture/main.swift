// `shm-inspect-fixture PATH SIZE...`: attaches to the cache at PATH, allocates each SIZE in order,
// fills every allocation with its index as text ("alloc-0", "alloc-1", … repeated), prints the
// offsets one per line, and exits without freeing: the allocations stay, owned by a dead pid.
// The inspector tests use it to leave a known leak behind.

#if canImport(Glibc)
import Glibc
#endif
import ShmAlloc

/// Writes one line to standard error.
func fail(_ line: String) {
    var text = line + "\n"
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

let arguments = CommandLine.arguments.dropFirst()
guard let path = arguments.first else {
    fail("usage: shm-inspect-fixture PATH SIZE...")
    exit(2)
}
do {
    let cache = try SharedCache(path: path, policy: .attach)
    for (index, text) in arguments.dropFirst().enumerated() {
        guard let size = Int(text) else {
            fail("shm-inspect-fixture: not a size: \(text)")
            exit(2)
        }
        let pointer = try cache.allocatePointer(size)
        let pattern = Array("alloc-\(index) ".utf8)
        for byte in 0..<size { pointer.storeBytes(of: pattern[byte % pattern.count], toByteOffset: byte, as: UInt8.self) }
        print(cache.offset(of: pointer)!.rawValue)
    }
} catch {
    fail("shm-inspect-fixture: \(error)")
    exit(1)
}
