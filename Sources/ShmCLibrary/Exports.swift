// The C ABI (`shm_alloc.h`): the original library's functions over one process-wide SharedCache.
//
// This target is the runtime-free C library, `libshm_alloc.so`: Embedded Swift, compiled as one
// module from this file and the folders beside it, which are links to the allocator's own sources
// (ShmFormat, ShmSystem, ShmAlloc, ShmPathCache). The library needs nothing but libc, so it can be
// preloaded into any process at no start-up cost. It must not import anything but CShmSystem and the
// standard library's embedded modules.

import CShmSystem
import Synchronization

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
func pathBytes(_ path: UnsafePointer<CChar>?) -> UnsafeRawBufferPointer {
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
// Before `shm_init` (and without `$SHM_FILE`) the getters answer with the default geometry, the
// one `shm_init` gives a new file, as the original library (whose sizes were constants) did; with
// the implicit mapping pending, they make it and answer for the mapped file.

@_cdecl("get_shm_user_base")
public func getShmUserBase() -> UnsafeMutableRawPointer? {
    installedOrMapped()?._withUnsafeGuaranteedRef { $0.base }
}

@_cdecl("get_shm_max_allocatable_size")
public func getShmMaxAllocatableSize() -> Int {
    installedOrMapped()?._withUnsafeGuaranteedRef { $0.geometry.largestRequest } ?? Geometry.default.largestRequest
}

@_cdecl("get_shm_min_allocatable_size")
public func getShmMinAllocatableSize() -> Int {
    installedOrMapped()?._withUnsafeGuaranteedRef { $0.geometry.minSize } ?? Geometry.default.minSize
}

@_cdecl("get_sizeof_block_header")
public func getSizeofBlockHeader() -> Int { AllocationHeader.size }

@_cdecl("get_mapping_size_needed_by_shm")
public func getMappingSizeNeededByShm() -> Int {
    if let size = installedOrMapped()?._withUnsafeGuaranteedRef({ $0.layout.fileSize }) { return size }
    return (try? FileLayout(geometry: .default, pageSize: Mapping.pageSize))?.fileSize ?? 0
}
