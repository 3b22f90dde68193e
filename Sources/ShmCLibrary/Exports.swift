// The C ABI (`shm_alloc.h`): the original library's functions over one process-wide SharedCache.
//
// This target is the runtime-free C library, `libshm_alloc.so`: Embedded Swift, compiled as one
// module from this file and the folders beside it, which are links to the allocator's own sources
// (ShmFormat, ShmSystem, ShmAlloc, ShmPathCache). The library needs nothing but libc, so it can be
// preloaded into any process at no start-up cost. It must not import anything but CShmSystem and the
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

/// The path cache of the installed cache: 0 = none (no cache installed, or its geometry cannot
/// hold a path cache), otherwise the address of a retained `PathCache`. Made where the cache is
/// installed, so `shm_path_insert` and `shm_path_search` never allocate; replaced and released
/// only by the thread holding `installing`. Published with release, read with acquire.
private let installedPathCache = Atomic<UInt>(0)

/// The object whose retained address `word` holds, unretained; `nil` for 0 (none) or `installing`.
@inline(__always)
private func installed<Object: AnyObject>(_ word: borrowing Atomic<UInt>, as _: Object.Type) -> Unmanaged<Object>? {
    let raw = word.load(ordering: .acquiring)
    guard raw > installing, let address = UnsafeRawPointer(bitPattern: raw) else { return nil }
    return .fromOpaque(address)
}

/// The installed cache, unretained; `nil` when there is none (or it is being replaced).
@inline(__always)
private func installed() -> Unmanaged<SharedCache>? { installed(installedCache, as: SharedCache.self) }

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

/// As `withInstalledCache`, with the installed cache's path cache (`errno = EINVAL` when none).
@inline(__always)
private func withInstalledPathCache<Result>(_ fallback: Result, _ body: (PathCache) -> Result) -> Result {
    guard let pathCache = installed(installedPathCache, as: PathCache.self) else {
        Errno.setCurrent(.invalidArgument)
        return fallback
    }
    return pathCache._withUnsafeGuaranteedRef(body)
}

/// The address of a +1 reference to `object`, as the `installed…` words hold it.
private func retainedAddress<Object: AnyObject>(_ object: Object) -> UInt {
    UInt(bitPattern: Unmanaged.passRetained(object).toOpaque())
}

/// Releases the reference whose address an `installed…` word held (nothing for 0).
private func releaseInstalled<Object: AnyObject>(_ raw: UInt, as _: Object.Type) {
    if let address = UnsafeRawPointer(bitPattern: raw) { Unmanaged<Object>.fromOpaque(address).release() }
}

/// Prints one line to standard error: a C caller gets `false` and `errno`, a person gets the reason.
private func report(_ message: String) {
    FileDescriptor.standardError.writeLine("shm_alloc: " + message)
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
        ).exchanged {
            break
        }
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
        let cache = try SharedCache(
            path: String(cString: cPath), policy: policy, address: address, creationTimeout: .seconds(5),
            registering: false)
        // The path cache is made here, not on first use, so its calls never allocate; a geometry
        // that cannot hold one leaves none (those calls then fail with EINVAL).
        let pathCache = try? PathCache(cache: cache)
        let previousPathCache = installedPathCache.exchange(
            pathCache.map(retainedAddress) ?? 0, ordering: .acquiringAndReleasing)
        installedExplicitly.store(explicit, ordering: .relaxed)
        installedCache.store(retainedAddress(cache), ordering: .releasing)
        // The load-time mapping an explicit call replaced: unmapped, as shm_alloc.h warns (its
        // path cache holds it, so it goes first).
        releaseInstalled(previousPathCache, as: PathCache.self)
        releaseInstalled(previous, as: SharedCache.self)
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
public func shmInitAtLoad() {
    _ = install(address: nil, path: nil, geometry: nil, explicit: false)
}

@_cdecl("shm_init")
public func shmInit(_ address: UnsafeMutableRawPointer?, _ path: UnsafePointer<CChar>?) -> Bool {
    install(address: address, path: path, geometry: nil, explicit: true)
}

@_cdecl("shm_init_with_geometry")
public func shmInitWithGeometry(
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
public func shmDeinit() {
    let raw = installedCache.load(ordering: .acquiring)
    guard raw > installing else { return }
    // Holding `installing` while the path cache goes, so a concurrent install cannot have its
    // own path cache taken away.
    let (taken, _) = installedCache.compareExchange(
        expected: raw, desired: installing, ordering: .acquiringAndReleasing)
    guard taken else { return }
    let pathCache = installedPathCache.exchange(0, ordering: .acquiringAndReleasing)
    installedExplicitly.store(false, ordering: .relaxed)
    installedCache.store(0, ordering: .releasing)
    releaseInstalled(pathCache, as: PathCache.self)
    releaseInstalled(raw, as: SharedCache.self)
}

// MARK: - Allocation

@_cdecl("shm_malloc")
public func shmMalloc(_ byteCount: Int) -> UInt64 {
    withInstalledCache(0) { cache in
        do throws(AllocationError) { return try cache.allocate(byteCount).rawValue } catch {
            Errno.setCurrent(.noMemory)
            return 0
        }
    }
}

@_cdecl("shm_calloc")
public func shmCalloc(_ count: Int, _ byteCount: Int) -> UInt64 {
    withInstalledCache(0) { cache in
        do throws(AllocationError) { return try cache.allocateZeroed(count: count, size: byteCount).rawValue } catch {
            Errno.setCurrent(.noMemory)
            return 0
        }
    }
}

@_cdecl("shm_free")
public func shmFree(_ offset: UInt64) {
    withInstalledCache(()) { cache in
        do throws(FreeError) { try cache.free(ShmOffset(rawValue: offset)) } catch {
            Errno.setCurrent(.invalidArgument)
        }
    }
}

@_cdecl("ptr_malloc")
public func ptrMalloc(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    withInstalledCache(nil) { cache in
        do throws(AllocationError) { return try cache.allocatePointer(byteCount) } catch {
            Errno.setCurrent(.noMemory)
            return nil
        }
    }
}

@_cdecl("ptr_calloc")
public func ptrCalloc(_ count: Int, _ byteCount: Int) -> UnsafeMutableRawPointer? {
    withInstalledCache(nil) { cache in
        do throws(AllocationError) { return try cache.allocateZeroedPointer(count: count, size: byteCount) } catch {
            Errno.setCurrent(.noMemory)
            return nil
        }
    }
}

@_cdecl("ptr_free")
public func ptrFree(_ pointer: UnsafeMutableRawPointer?) {
    withInstalledCache(()) { cache in
        do throws(FreeError) { try cache.free(pointer: pointer) } catch { Errno.setCurrent(.invalidArgument) }
    }
}

// MARK: - Path cache
// The hot paths of `PathCache`: no lock, no system call, no heap (its object was made when the
// cache was installed), so they may run in signal handlers.

/// The bytes of a C string, without its NUL; empty for NULL (which the path cache refuses as invalid).
@inline(__always)
private func pathBytes(_ path: UnsafePointer<CChar>?) -> UnsafeRawBufferPointer {
    guard let path else { return UnsafeRawBufferPointer(start: nil, count: 0) }
    return UnsafeRawBufferPointer(start: path, count: strlen(path))
}

@_cdecl("shm_path_insert")
public func shmPathInsert(_ path: UnsafePointer<CChar>?, _ flags: UInt8) -> Bool {
    withInstalledPathCache(false) { pathCache in
        do throws(PathCacheError) {
            try pathCache.insert(pathBytes(path), flags: PathFlags(rawValue: flags))
            return true
        } catch {
            Errno.setCurrent(error.errnoValue)
            return false
        }
    }
}

@_cdecl("shm_path_search")
public func shmPathSearch(_ path: UnsafePointer<CChar>?, _ flags: UnsafeMutablePointer<UInt8>?) -> Bool {
    withInstalledPathCache(false) { pathCache in
        do throws(PathCacheError) {
            guard let found = try pathCache.search(pathBytes(path)) else {
                Errno.setCurrent(.noSuchFileOrDirectory)
                return false
            }
            flags?.pointee = found.rawValue
            return true
        } catch {
            Errno.setCurrent(error.errnoValue)
            return false
        }
    }
}

// MARK: - Geometry
// Before `shm_init` the getters answer with the default geometry, the one `shm_init` gives a new
// file, as the original library (whose sizes were constants) did.

@_cdecl("get_shm_user_base")
public func getShmUserBase() -> UnsafeMutableRawPointer? {
    installed()?._withUnsafeGuaranteedRef { $0.base }
}

@_cdecl("get_shm_max_allocatable_size")
public func getShmMaxAllocatableSize() -> Int {
    installed()?._withUnsafeGuaranteedRef { $0.geometry.largestRequest } ?? Geometry.default.largestRequest
}

@_cdecl("get_shm_min_allocatable_size")
public func getShmMinAllocatableSize() -> Int {
    installed()?._withUnsafeGuaranteedRef { $0.geometry.minSize } ?? Geometry.default.minSize
}

@_cdecl("get_sizeof_block_header")
public func getSizeofBlockHeader() -> Int { AllocationHeader.size }

@_cdecl("get_mapping_size_needed_by_shm")
public func getMappingSizeNeededByShm() -> Int {
    if let size = installed()?._withUnsafeGuaranteedRef({ $0.layout.fileSize }) { return size }
    return (try? FileLayout(geometry: .default, pageSize: Mapping.pageSize))?.fileSize ?? 0
}
