// The process-wide cache behind the C ABI: the one word that says whether the process has a
// cache and which, how it is installed (explicitly by `shm_init`, or by the first call that needs
// the implicit mapping of `$SHM_FILE`), replaced, unmapped, and held across a `fork`. The calls
// of `shm_alloc.h` that use it are in Exports.swift.

import CShmSystem
import Synchronization

// MARK: - Process-wide cache

/// The process's cache, in one word so that whether there is one, and which, is one value:
/// `noCache`, `installing` (a thread holds the word to open, replace or unmap the cache, or
/// across a `fork`: see `claimInstalledCache`), `implicitMappingPending` (`$SHM_FILE` was set at
/// load and is mapped by the first call that needs a cache), otherwise the address of a retained
/// `SharedCache`. Published with release, read with acquire.
private let installedCache = Atomic<UInt>(0)
private let noCache: UInt = 0
private let installing: UInt = 1
private let implicitMappingPending: UInt = 2

/// `$SHM_FILE` as the process started (the environment's own string, which the process never
/// frees), or 0: what the implicit mapping maps. Written once, at load.
private let implicitPath = Atomic<UInt>(0)

/// True once an explicit `shm_init` chose the installed cache; false while it is the implicit
/// mapping of `$SHM_FILE` (or none), which an explicit call replaces. Written only by the thread
/// holding `installing`.
private let installedExplicitly = Atomic<Bool>(false)

/// The path cache of the installed cache: 0 = none (no cache installed, or its geometry cannot
/// hold a path cache), otherwise the address of a retained `PathCache`. Made where the cache is
/// installed, so `shm_path_insert` and `shm_path_search` never allocate; replaced and released
/// only by the thread holding `installing`. Published with release, read with acquire.
private let installedPathCache = Atomic<UInt>(0)

/// The object whose retained address `raw` is, unretained; `nil` for the states below addresses.
@inline(__always)
private func object<Object: AnyObject>(at raw: UInt, as _: Object.Type) -> Unmanaged<Object>? {
    guard raw > implicitMappingPending, let address = UnsafeRawPointer(bitPattern: raw) else { return nil }
    return .fromOpaque(address)
}

/// The installed cache, unretained, without mapping anything; `nil` when there is none yet.
@inline(__always)
private func installed() -> Unmanaged<SharedCache>? {
    object(at: installedCache.load(ordering: .acquiring), as: SharedCache.self)
}

/// The installed cache, unretained; when the implicit mapping of `$SHM_FILE` is pending (or
/// another thread is installing a cache), makes it or waits for it first, so the first call
/// that needs a cache pays for mapping it rather than every process's start-up. `nil` when there
/// is still none.
@inline(__always)
func installedOrMapped() -> Unmanaged<SharedCache>? {
    if let cache = installed() { return cache }
    return installedAfterWaiting()
}

/// The slow path of `installedOrMapped`. Out of line: it runs once per process.
@inline(never)
private func installedAfterWaiting() -> Unmanaged<SharedCache>? {
    let state = installedCache.load(ordering: .acquiring)
    guard state == implicitMappingPending || state == installing else { return nil }
    _ = install(address: nil, path: nil, geometry: nil, explicit: false)
    return installed()
}

/// Sets `errno` for a call that found no cache: `EAGAIN` in a signal handler that interrupted
/// its own thread's installing (it cannot wait for itself), `EINVAL` otherwise.
private func setNoCacheErrno() {
    Errno.setCurrent(shm_thread_is_initialising() ? .wouldBlock : .invalidArgument)
}

/// Runs `body` with the installed cache, without retain/release traffic (the hot path stays free
/// of reference counting). Sets `errno` (see `setNoCacheErrno`) and returns `fallback` when there
/// is none.
@inline(__always)
func withInstalledCache<Result>(_ fallback: Result, _ body: (SharedCache) -> Result) -> Result {
    guard let cache = installedOrMapped() else {
        setNoCacheErrno()
        return fallback
    }
    return cache._withUnsafeGuaranteedRef(body)
}

/// As `withInstalledCache`, with the installed cache's path cache (`errno = EINVAL` when none).
@inline(__always)
func withInstalledPathCache<Result>(_ fallback: Result, _ body: (PathCache) -> Result) -> Result {
    var pathCache = object(at: installedPathCache.load(ordering: .acquiring), as: PathCache.self)
    if pathCache == nil, installedOrMapped() != nil {
        pathCache = object(at: installedPathCache.load(ordering: .acquiring), as: PathCache.self)
    }
    guard let pathCache else {
        setNoCacheErrno()
        return fallback
    }
    return pathCache._withUnsafeGuaranteedRef(body)
}

/// The address of a +1 reference to `object`, as the `installed…` words hold it.
private func retainedAddress<Object: AnyObject>(_ object: Object) -> UInt {
    UInt(bitPattern: Unmanaged.passRetained(object).toOpaque())
}

/// Releases the reference whose address an `installed…` word held (nothing for the other states).
private func releaseInstalled<Object: AnyObject>(_ raw: UInt, as type: Object.Type) {
    object(at: raw, as: type)?.release()
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
    cache.path.utf8.elementsEqual(pathBytes(path))
        && (address == nil || address == cache.fileBase)
        && (geometry == nil || geometry == cache.geometry)
}

/// Opens the process's cache, or keeps the one installed, under the rules of `shm_alloc.h`:
/// the implicit mapping of `$SHM_FILE` (`explicit` false) is tried once, by the first call that
/// needs it, and never replaces anything; an explicit call replaces the implicit mapping (made or
/// pending) with what it names, succeeds when the same cache is already installed, and fails
/// with `EEXIST` when another explicit call installed a different one. Concurrent callers wait
/// for the one installing, so two threads never map the same fixed address twice; a signal
/// handler that interrupted its own thread's install fails with `EAGAIN` instead of waiting.
private func install(
    address: UnsafeMutableRawPointer?, path: UnsafePointer<CChar>?, geometry: Geometry?, explicit: Bool
) -> Bool {
    guard !shm_thread_is_initialising() else {
        Errno.setCurrent(.wouldBlock)
        return false
    }
    shm_thread_set_initialising(true)
    defer { shm_thread_set_initialising(false) }
    // The implicit mapping is made once and never replaces anything: done (or failed) already
    // when the word holds anything but the pending state.
    guard let previous = claimInstalledCache(refusing: { !explicit && $0 != implicitMappingPending }) else {
        return installed() != nil
    }
    let requested = explicit ? (path ?? UnsafePointer(getenv("SHM_FILE"))) : implicitPathAtLoad()
    guard let cPath = requested else {
        installedCache.store(previous, ordering: .releasing)
        report("no path given and SHM_FILE is not set")
        Errno.setCurrent(.invalidArgument)
        return false
    }
    if let oldCache = object(at: previous, as: SharedCache.self) {
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
        // The implicit mapping an explicit call replaced: unmapped, as shm_alloc.h warns (its
        // path cache holds it, so it goes first).
        releaseInstalled(previousPathCache, as: PathCache.self)
        releaseInstalled(previous, as: SharedCache.self)
        return true
    } catch {
        // A failed implicit mapping is not tried again (every call would print this line); a
        // failed explicit call leaves what was there, a pending implicit mapping included.
        installedCache.store(explicit ? previous : noCache, ordering: .releasing)
        report(error.description)
        Errno.setCurrent(error.errnoValue)
        return false
    }
}

/// Waits while another thread holds the cache word, then holds it (stores `installing`) and
/// returns what it held; `nil`, holding nothing, when `refuse` refuses that value. The caller
/// marks its thread as initialising first (`shm_thread_set_initialising`), so that a signal
/// handler interrupting it while it holds the word fails instead of waiting for it for ever.
private func claimInstalledCache(refusing refuse: (UInt) -> Bool = { _ in false }) -> UInt? {
    while true {
        let previous = installedCache.load(ordering: .acquiring)
        if previous == installing {
            sched_yield()
            continue
        }
        if refuse(previous) { return nil }
        if installedCache.compareExchange(expected: previous, desired: installing, ordering: .acquiringAndReleasing)
            .exchanged
        {
            return previous
        }
    }
}

/// What the cache word held before the `fork` handler held it across a fork, or `notHeldForFork`
/// (the forking thread was itself initialising, in a signal handler, and holds it already or
/// must not wait).
private let heldAcrossFork = Atomic<UInt>(notHeldForFork)
private let notHeldForFork = UInt.max

/// `pthread_atfork`'s prepare handler: holds the cache word across the fork, so that neither
/// process inherits it held by a thread the child does not have.
private func holdCacheAcrossFork() {
    guard !shm_thread_is_initialising() else { return }
    shm_thread_set_initialising(true)
    heldAcrossFork.store(claimInstalledCache()!, ordering: .relaxed)
}

/// `pthread_atfork`'s parent and child handler: gives back what `holdCacheAcrossFork` held.
private func releaseCacheAfterFork() {
    let held = heldAcrossFork.exchange(notHeldForFork, ordering: .relaxed)
    guard held != notHeldForFork else { return }
    installedCache.store(held, ordering: .releasing)
    shm_thread_set_initialising(false)
}

/// `$SHM_FILE` as it was at load, if it was set.
private func implicitPathAtLoad() -> UnsafePointer<CChar>? {
    UnsafePointer(bitPattern: implicitPath.load(ordering: .relaxed))
}

/// The load-time initialiser's entry (see shm_alloc_autoinit.c), given `$SHM_FILE` (NULL when
/// unset): installs the `fork` handlers and, with a path, makes its mapping pending and caches the
/// pid. No system call but `getpid`; the first call that needs a cache maps it.
@_cdecl("shm_prepare_at_load")
public func shmPrepareAtLoad(_ path: UnsafePointer<CChar>?) {
    pthread_atfork({ holdCacheAcrossFork() }, { releaseCacheAfterFork() }, { releaseCacheAfterFork() })
    guard let path else { return }
    implicitPath.store(UInt(bitPattern: path), ordering: .relaxed)
    _ = installedCache.compareExchange(expected: noCache, desired: implicitMappingPending, ordering: .releasing)
    ProcessIdentity.prepare()
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
    // Holding the word while the path cache goes, so a concurrent install cannot have its own
    // path cache taken away. A pending implicit mapping is dropped: after shm_deinit, calls fail
    // until shm_init. (In a handler that interrupted this thread's install: nothing to undo.)
    guard !shm_thread_is_initialising() else { return }
    shm_thread_set_initialising(true)
    defer { shm_thread_set_initialising(false) }
    guard let raw = claimInstalledCache(refusing: { $0 == noCache }) else { return }
    let pathCache = installedPathCache.exchange(0, ordering: .acquiringAndReleasing)
    installedExplicitly.store(false, ordering: .relaxed)
    installedCache.store(noCache, ordering: .releasing)
    releaseInstalled(pathCache, as: PathCache.self)
    releaseInstalled(raw, as: SharedCache.self)
}
