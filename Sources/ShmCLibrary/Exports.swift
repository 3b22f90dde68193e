// The C ABI (`shm_alloc.h`): the original library's functions over one process-wide SharedCache.
//
// This target is the runtime-free C library, `libshm_alloc.so`: Embedded Swift, compiled as one
// module from this file and the folders beside it, which are links to the allocator's own sources
// (ShmFormat, ShmSystem, ShmAlloc). The library needs nothing but libc, so it can be preloaded
// into any process at no start-up cost. It must not import anything but CShmSystem and the
// standard library's embedded modules.

import CShmSystem
import Synchronization

// MARK: - Process-wide cache

/// The process's cache: 0 = none, 1 = being opened or replaced by some thread, otherwise the
/// address of a retained `SharedCache`. Published with release, read with acquire.
private let installedCache = Atomic<UInt>(0)
private let installing: UInt = 1

/// True once an explicit `shm_init` chose the installed cache; false while it is the load-time
/// mapping of `$SHM_FILE` (or none), which an explicit call replaces. Written only by the thread
/// holding `installing`.
private let installedExplicitly = Atomic<Bool>(false)

/// The installed cache, unretained; `nil` when there is none (or it is being replaced).
@inline(__always)
private func installed() -> Unmanaged<SharedCache>? {
    let raw = installedCache.load(ordering: .acquiring)
    guard raw > installing, let address = UnsafeRawPointer(bitPattern: raw) else { return nil }
    return .fromOpaque(address)
}

/// Runs `body` with the installed cache, without retain/release traffic (the hot path stays free
/// of reference counting). Sets `errno = EINVAL` and returns `fallback` when there is none.
@inline(__always)
private func withInstalledCache<Result>(_ fallback: Result, _ body: (SharedCache) -> Result) -> Result {
    guard let cache = installed() else {
        Errno.setCurrent(.invalidArgument)
        return fallback
    }
    return cache._withUnsafeGuaranteedRef(body)
}

/// Prints one line to standard error: a C caller gets `false` and `errno`, a person gets the reason.
private func report(_ message: String) {
    var line = "shm_alloc: " + message + "\n"
    line.withUTF8 { bytes in _ = write(STDERR_FILENO, bytes.baseAddress, bytes.count) }
}

/// Whether an installed cache is what a call to `shm_init` with these arguments would open: the
/// same path, the same address when one is asked for, the same geometry when one is required.
private func isSameCache(
    _ cache: SharedCache, path: UnsafePointer<CChar>, address: UnsafeMutableRawPointer?, geometry: Geometry?
) -> Bool {
    let pathBytes = UnsafeBufferPointer(start: path, count: strlen(path)).lazy.map { UInt8(bitPattern: $0) }
    return cache.path.utf8.elementsEqual(pathBytes)
        && (address == nil || address == cache.fileBase)
        && (geometry == nil || geometry == cache.geometry)
}

/// Opens the process's cache, or keeps the one installed, under the rules of `shm_alloc.h`:
/// the load-time mapping of `$SHM_FILE` (`explicit` false) happens once and never replaces
/// anything; an explicit call replaces the load-time mapping with what it names, succeeds when
/// the same cache is already installed, and fails with `EEXIST` when another explicit call
/// installed a different one. Concurrent callers wait for the one installing, so two threads never
/// map the same fixed address twice.
private func install(
    address: UnsafeMutableRawPointer?, path: UnsafePointer<CChar>?, geometry: Geometry?, explicit: Bool
) -> Bool {
    var previous: UInt
    while true {
        previous = installedCache.load(ordering: .acquiring)
        if previous == installing {
            sched_yield()
            continue
        }
        if previous != 0 && !explicit { return true }  // the load-time call never replaces anything
        if installedCache.compareExchange(
            expected: previous, desired: installing, ordering: .acquiringAndReleasing
        ).exchanged { break }
    }
    guard let cPath = path ?? UnsafePointer(getenv("SHM_FILE")) else {
        installedCache.store(previous, ordering: .releasing)
        report("no path given and SHM_FILE is not set")
        Errno.setCurrent(.invalidArgument)
        return false
    }
    if let old = UnsafeRawPointer(bitPattern: previous) {
        let oldCache = Unmanaged<SharedCache>.fromOpaque(old)
        let same = oldCache._withUnsafeGuaranteedRef {
            isSameCache($0, path: cPath, address: address, geometry: geometry)
        }
        if same || installedExplicitly.load(ordering: .relaxed) {
            if same { installedExplicitly.store(true, ordering: .relaxed) }
            installedCache.store(previous, ordering: .releasing)
            if same { return true }
            Errno.setCurrent(.fileExists)
            return false
        }
    }
    let policy: SharedCache.OpenPolicy = geometry.map { .require($0) } ?? .createIfNeeded(.default)
    do throws(CacheError) {
        let cache = try SharedCache(path: String(cString: cPath), policy: policy, address: address)
        installedExplicitly.store(explicit, ordering: .relaxed)
        installedCache.store(UInt(bitPattern: Unmanaged.passRetained(cache).toOpaque()), ordering: .releasing)
        // The load-time mapping an explicit call replaced: unmapped, as shm_alloc.h warns.
        if let old = UnsafeRawPointer(bitPattern: previous) { Unmanaged<SharedCache>.fromOpaque(old).release() }
        return true
    } catch {
        installedCache.store(previous, ordering: .releasing)
        report(error.description)
        Errno.setCurrent(error.errnoValue)
        return false
    }
}

/// The load-time initialiser's entry (see shm_alloc_autoinit.c): maps `$SHM_FILE`, implicitly.
@_cdecl("shm_init_at_load")
public func shm_init_at_load() {
    _ = install(address: nil, path: nil, geometry: nil, explicit: false)
}

@_cdecl("shm_init")
public func shm_init(_ address: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?) -> Bool {
    install(address: address, path: path, geometry: nil, explicit: true)
}

@_cdecl("shm_init_with_geometry")
public func shm_init_with_geometry(
    _ address: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?, _ minSize: Int, _ maxSize: Int, _ capacity: Int
) -> Bool {
    do throws(GeometryError) {
        let geometry = try Geometry(minSize: minSize, maxSize: maxSize, capacity: capacity)
        return install(address: address, path: path, geometry: geometry, explicit: true)
    } catch {
        report(error.description)
        Errno.setCurrent(.invalidArgument)
        return false
    }
}

@_cdecl("shm_deinit")
public func shm_deinit() {
    let raw = installedCache.load(ordering: .acquiring)
    guard raw > installing else { return }
    let (released, _) = installedCache.compareExchange(expected: raw, desired: 0, ordering: .acquiringAndReleasing)
    if released, let address = UnsafeRawPointer(bitPattern: raw) {
        installedExplicitly.store(false, ordering: .relaxed)
        Unmanaged<SharedCache>.fromOpaque(address).release()
    }
}

// MARK: - Allocation

@_cdecl("shm_malloc")
public func shm_malloc(_ byteCount: Int) -> UInt64 {
    withInstalledCache(0) { cache in
        do throws(AllocationError) { return try cache.allocate(byteCount).rawValue } catch { Errno.setCurrent(.noMemory); return 0 }
    }
}

@_cdecl("shm_calloc")
public func shm_calloc(_ count: Int, _ byteCount: Int) -> UInt64 {
    withInstalledCache(0) { cache in
        do throws(AllocationError) { return try cache.allocateZeroed(count: count, size: byteCount).rawValue } catch {
            Errno.setCurrent(.noMemory)
            return 0
        }
    }
}

@_cdecl("shm_free")
public func shm_free(_ offset: UInt64) {
    withInstalledCache(()) { cache in
        do throws(FreeError) { try cache.free(ShmOffset(rawValue: offset)) } catch { Errno.setCurrent(.invalidArgument) }
    }
}

@_cdecl("ptr_malloc")
public func ptr_malloc(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    withInstalledCache(nil) { cache in
        do throws(AllocationError) { return try cache.allocatePointer(byteCount) } catch { Errno.setCurrent(.noMemory); return nil }
    }
}

@_cdecl("ptr_calloc")
public func ptr_calloc(_ count: Int, _ byteCount: Int) -> UnsafeMutableRawPointer? {
    withInstalledCache(nil) { cache in
        do throws(AllocationError) { return try cache.allocateZeroedPointer(count: count, size: byteCount) } catch {
            Errno.setCurrent(.noMemory)
            return nil
        }
    }
}

@_cdecl("ptr_free")
public func ptr_free(_ pointer: UnsafeMutableRawPointer?) {
    withInstalledCache(()) { cache in
        do throws(FreeError) { try cache.free(pointer: pointer) } catch { Errno.setCurrent(.invalidArgument) }
    }
}

// MARK: - Geometry
// Before `shm_init` the getters answer with the default geometry, the one `shm_init` gives a new
// file, as the original library (whose sizes were constants) did.

@_cdecl("get_shm_user_base")
public func get_shm_user_base() -> UnsafeMutableRawPointer? {
    installed()?._withUnsafeGuaranteedRef { $0.base }
}

@_cdecl("get_shm_max_allocatable_size")
public func get_shm_max_allocatable_size() -> Int {
    installed()?._withUnsafeGuaranteedRef { $0.geometry.largestRequest } ?? Geometry.default.largestRequest
}

@_cdecl("get_shm_min_allocatable_size")
public func get_shm_min_allocatable_size() -> Int {
    installed()?._withUnsafeGuaranteedRef { $0.geometry.minSize } ?? Geometry.default.minSize
}

@_cdecl("get_sizeof_block_header")
public func get_sizeof_block_header() -> Int { AllocationHeader.size }

@_cdecl("get_mapping_size_needed_by_shm")
public func get_mapping_size_needed_by_shm() -> Int {
    if let size = installed()?._withUnsafeGuaranteedRef({ $0.layout.fileSize }) { return size }
    return (try? FileLayout(geometry: .default, pageSize: Mapping.pageSize))?.fileSize ?? 0
}
