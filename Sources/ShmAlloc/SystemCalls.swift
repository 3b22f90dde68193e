// Thin, typed wrappers over the system calls swift-system does not cover (mmap and friends,
// flock, pread to the end). Each throws `Errno` and names the C function it wraps. None is on a hot path.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import SystemPackage

extension FileDescriptor {
    /// Tries to take the exclusive advisory lock without blocking; `false` when another open file
    /// description holds it. The kernel drops the lock when its holder dies.
    ///
    /// The corresponding C function is `flock` with `LOCK_EX | LOCK_NB`.
    func tryLockExclusive() throws(Errno) -> Bool {
        while flock(rawValue, LOCK_EX | LOCK_NB) != 0 {
            switch errno {
            case EWOULDBLOCK: return false
            case EINTR: continue
            case let code: throw Errno(rawValue: code)
            }
        }
        return true
    }

    /// Releases the advisory lock.
    ///
    /// The corresponding C function is `flock` with `LOCK_UN`.
    func unlock() {
        _ = flock(rawValue, LOCK_UN)
    }

    /// Reads exactly `buffer.count` bytes at `offset`, or fewer when the file ends first.
    ///
    /// The corresponding C function is `pread`, repeated until the buffer is full or the file ends.
    func readFully(at offset: Int, into buffer: UnsafeMutableRawBufferPointer) throws(Errno) -> Int {
        var done = 0
        while done < buffer.count {
            let count = Glibc.pread(rawValue, buffer.baseAddress! + done, buffer.count - done, off_t(offset + done))
            if count < 0 {
                if errno == EINTR { continue }
                throw Errno(rawValue: errno)
            }
            if count == 0 { break }
            done += count
        }
        return done
    }
}

/// Memory mappings.
enum Mapping {
    /// `MAP_FIXED_NOREPLACE` (Linux 4.17), which this glibc's headers do not define.
    private static let fixedNoReplace: Int32 = 0x10_0000

    /// Maps `length` bytes of `descriptor` shared, read-write or read-only, at `address` when one is
    /// given. Nothing already mapped is ever replaced: an address range that is in use, even in
    /// part, fails with `EEXIST` (`MAP_FIXED_NOREPLACE`), so a failure later in opening a cache can
    /// unmap what this mapped without leaving a hole where the caller's mapping was.
    ///
    /// The corresponding C function is `mmap`.
    static func map(
        _ descriptor: FileDescriptor, length: Int, writable: Bool, at address: UnsafeMutableRawPointer?
    ) throws(Errno) -> UnsafeMutableRawPointer {
        let protection = writable ? PROT_READ | PROT_WRITE : PROT_READ
        let flags = MAP_SHARED | (address == nil ? 0 : fixedNoReplace)
        guard let mapped = mmap(address, length, protection, flags, descriptor.rawValue, 0),
              mapped != UnsafeMutableRawPointer(bitPattern: -1)
        else { throw Errno(rawValue: errno) }
        // A kernel older than 4.17 ignores the flag and takes the address as a hint.
        if let address, mapped != address {
            munmap(mapped, length)
            throw .fileExists
        }
        return mapped
    }

    /// Makes `length` bytes at `address` (page aligned) read-only.
    ///
    /// The corresponding C function is `mprotect` with `PROT_READ`.
    static func makeReadOnly(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        guard mprotect(address, length, PROT_READ) == 0 else { throw Errno(rawValue: errno) }
    }

    /// Unmaps a mapping made by `map`.
    ///
    /// The corresponding C function is `munmap`.
    static func unmap(_ address: UnsafeMutableRawPointer, length: Int) {
        _ = munmap(address, length)
    }
}

/// The page size of this system.
///
/// The corresponding C function is `sysconf(_SC_PAGESIZE)`.
var systemPageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }

/// Nanoseconds since the Unix epoch.
///
/// The corresponding C function is `clock_gettime(CLOCK_REALTIME)`.
func wallClockNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_REALTIME, &now)
    return UInt64(now.tv_sec) &* 1_000_000_000 &+ UInt64(now.tv_nsec)
}

