// The C ABI (`shm_alloc.h`): the original library's functions over one process-wide SharedCache.

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ShmAlloc
import ShmFormat
import Synchronization

// MARK: - Process-wide cache

/// The process's cache: 0 = none, 1 = being opened by some thread, otherwise the address of a
/// retained `SharedCache`. Published with release, read with acquire.
private let installedCache = Atomic<UInt>(0)
private let installing: UInt = 1

/// Runs `body` with the installed cache, without retain/release traffic (the hot path stays free
/// of reference counting). Sets `errno = EINVAL` and returns `fallback` when there is none.
@inline(__always)
private func withInstalledCache<Result>(_ fallback: Result, _ body: (SharedCache) -> Result) -> Result {
    let raw = installedCache.load(ordering: .acquiring)
    guard raw > installing, let address = UnsafeRawPointer(bitPattern: raw) else {
        errno = EINVAL
        return fallback
    }
    return Unmanaged<SharedCache>.fromOpaque(address)._withUnsafeGuaranteedRef(body)
}

/// Prints one line to standard error: a C caller gets `false` and `errno`, a person gets the reason.
private func report(_ message: String) {
    let line = "shm_alloc: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
}

/// Opens the cache once per process. Concurrent callers wait for the first one to finish, so two
/// threads never map the same fixed address twice.
private func install(address: UnsafeMutableRawPointer?, path: UnsafePointer<CChar>?, policy: SharedCache.OpenPolicy) -> Bool {
    while true {
        let (claimed, current) = installedCache.compareExchange(
            expected: 0, desired: installing, ordering: .acquiringAndReleasing)
        if claimed { break }
        if current > installing { return true }
        sched_yield()
    }
    guard let cPath = path ?? UnsafePointer(getenv("SHM_FILE")) else {
        installedCache.store(0, ordering: .releasing)
        report("no path given and SHM_FILE is not set")
        errno = EINVAL
        return false
    }
    do {
        let cache = try SharedCache(path: String(cString: cPath), policy: policy, address: address)
        installedCache.store(UInt(bitPattern: Unmanaged.passRetained(cache).toOpaque()), ordering: .releasing)
        return true
    } catch {
        installedCache.store(0, ordering: .releasing)
        report("\(error)")
        errno = error.errnoValue.rawValue
        return false
    }
}

@_cdecl("shm_init")
public func shm_init(_ address: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?) -> Bool {
    install(address: address, path: path, policy: .createIfNeeded(.default))
}

@_cdecl("shm_init_with_geometry")
public func shm_init_with_geometry(
    _ address: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ minSize: Int, _ maxSize: Int, _ capacity: Int
) -> Bool {
    do {
        let geometry = try Geometry(minSize: minSize, maxSize: maxSize, capacity: capacity)
        return install(address: address, path: path, policy: .require(geometry))
    } catch {
        report("\(error)")
        errno = EINVAL
        return false
    }
}

@_cdecl("shm_deinit")
public func shm_deinit() {
    let raw = installedCache.load(ordering: .acquiring)
    guard raw > installing else { return }
    let (released, _) = installedCache.compareExchange(expected: raw, desired: 0, ordering: .acquiringAndReleasing)
    if released, let address = UnsafeRawPointer(bitPattern: raw) {
        Unmanaged<SharedCache>.fromOpaque(address).release()
    }
}

// MARK: - Allocation

@_cdecl("shm_malloc")
public func shm_malloc(_ byteCount: Int) -> UInt64 {
    withInstalledCache(0) { cache in
        do { return try cache.allocate(byteCount).rawValue } catch { errno = ENOMEM; return 0 }
    }
}

@_cdecl("shm_calloc")
public func shm_calloc(_ count: Int, _ byteCount: Int) -> UInt64 {
    withInstalledCache(0) { cache in
        do { return try cache.allocateZeroed(count: count, size: byteCount).rawValue } catch { errno = ENOMEM; return 0 }
    }
}

@_cdecl("shm_free")
public func shm_free(_ offset: UInt64) {
    withInstalledCache(()) { cache in
        do { try cache.free(ShmOffset(rawValue: offset)) } catch { errno = EINVAL }
    }
}

@_cdecl("ptr_malloc")
public func ptr_malloc(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    withInstalledCache(nil) { cache in
        do { return try cache.allocatePointer(byteCount) } catch { errno = ENOMEM; return nil }
    }
}

@_cdecl("ptr_calloc")
public func ptr_calloc(_ count: Int, _ byteCount: Int) -> UnsafeMutableRawPointer? {
    withInstalledCache(nil) { cache in
        do { return try cache.allocateZeroedPointer(count: count, size: byteCount) } catch { errno = ENOMEM; return nil }
    }
}

@_cdecl("ptr_free")
public func ptr_free(_ pointer: UnsafeMutableRawPointer?) {
    withInstalledCache(()) { cache in
        do { try cache.free(pointer: pointer) } catch { errno = EINVAL }
    }
}

// MARK: - Geometry

@_cdecl("get_shm_user_base")
public func get_shm_user_base() -> UnsafeMutableRawPointer? {
    withInstalledCache(nil) { $0.base }
}

@_cdecl("get_shm_max_allocatable_size")
public func get_shm_max_allocatable_size() -> Int {
    withInstalledCache(0) { $0.geometry.largestRequest }
}

@_cdecl("get_shm_min_allocatable_size")
public func get_shm_min_allocatable_size() -> Int {
    withInstalledCache(0) { $0.geometry.minSize - AllocationHeader.size }
}

@_cdecl("get_sizeof_block_header")
public func get_sizeof_block_header() -> Int { AllocationHeader.size }

@_cdecl("get_mapping_size_needed_by_shm")
public func get_mapping_size_needed_by_shm() -> Int {
    withInstalledCache(0) { $0.layout.fileSize }
}
