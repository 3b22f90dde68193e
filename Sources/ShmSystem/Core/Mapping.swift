// Memory mappings of files.

import CShmSystem

/// Mapping files into memory, and the page size they are measured in.
public enum Mapping {
    /// `MAP_FIXED_NOREPLACE` (Linux 4.17), which this glibc's headers do not define.
    private static let fixedNoReplace: Int32 = 0x10_0000

    /// Maps `length` bytes of `descriptor` from its start, shared, read-write or read-only, at
    /// `address` when one is given. Nothing already mapped is ever replaced: an address range that
    /// is in use, even in part, fails with `EEXIST` (`MAP_FIXED_NOREPLACE`), so a caller that fails
    /// later can unmap what this mapped without leaving a hole where another mapping was.
    ///
    /// The C function is `mmap` with `MAP_SHARED`.
    public static func map(
        _ descriptor: FileDescriptor, length: Int, writable: Bool, at address: UnsafeMutableRawPointer? = nil
    ) throws(Errno) -> UnsafeMutableRawPointer {
        let protection = writable ? PROT_READ | PROT_WRITE : PROT_READ
        let flags = MAP_SHARED | (address == nil ? 0 : fixedNoReplace)
        guard let mapped = shm_map(address, length, protection, flags, descriptor.rawValue, 0) else { throw .current }
        // A kernel older than 4.17 ignores the flag and takes the address as a hint.
        if let address, mapped != address {
            try? unmap(mapped, length: length)
            throw .fileExists
        }
        return mapped
    }

    /// Maps `length` bytes of `descriptor` from `offset` (a multiple of the page size), shared and
    /// read-only: a reader of a file others write (the inspector), whose writes would fault.
    ///
    /// The C function is `mmap` with `MAP_SHARED` and `PROT_READ`.
    public static func mapReadOnly(_ descriptor: FileDescriptor, offset: Int, length: Int) throws(Errno)
        -> UnsafeMutableRawPointer
    {
        guard let mapped = shm_map(nil, length, PROT_READ, MAP_SHARED, descriptor.rawValue, off_t(offset)) else {
            throw .current
        }
        return mapped
    }

    /// Maps `length` bytes of `descriptor` from `offset` shared and read-only over `address`, a
    /// mapping of this caller's, replacing what is mapped there (pages of zeros a fault handler put
    /// in, say). On failure the old pages may be gone already (Linux unmaps them first).
    ///
    /// The C function is `mmap` with `MAP_SHARED | MAP_FIXED` and `PROT_READ`.
    public static func remapReadOnly(
        _ descriptor: FileDescriptor, offset: Int, length: Int, over address: UnsafeMutableRawPointer
    ) throws(Errno) {
        guard
            let mapped = shm_map(address, length, PROT_READ, MAP_SHARED | MAP_FIXED, descriptor.rawValue, off_t(offset))
        else {
            throw .current
        }
        // `MAP_FIXED` maps at `address` or fails; anything else would be a kernel bug.
        precondition(mapped == address, "MAP_FIXED mapped elsewhere")
    }

    /// Maps `length` bytes of zeroed memory private to this process. Pages cost nothing until they
    /// are first touched, so a large, sparsely used table is cheap to set up.
    ///
    /// The C function is `mmap` with `MAP_PRIVATE | MAP_ANONYMOUS`.
    public static func mapZeroed(length: Int) throws(Errno) -> UnsafeMutableRawPointer {
        guard let mapped = shm_map(nil, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) else {
            throw .current
        }
        return mapped
    }

    /// Makes `length` bytes at `address` (page aligned) read-only.
    ///
    /// The C function is `mprotect` with `PROT_READ`.
    public static func makeReadOnly(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        _ = try valueOrErrno(retryOnInterrupt: false) { mprotect(address, length, PROT_READ) }
    }

    /// Unmaps `length` bytes at `address`, a mapping made by ``map(_:length:writable:at:)``.
    ///
    /// The C function is `munmap`.
    public static func unmap(_ address: UnsafeMutableRawPointer, length: Int) throws(Errno) {
        _ = try valueOrErrno(retryOnInterrupt: false) { munmap(address, length) }
    }

    /// The page size of this system.
    ///
    /// The C function is `sysconf(_SC_PAGESIZE)`.
    public static var pageSize: Int { Int(sysconf(Int32(_SC_PAGESIZE))) }
}
