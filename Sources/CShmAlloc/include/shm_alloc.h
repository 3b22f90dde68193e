/*
 * shm_alloc.h — lock-free shared-memory allocator (the C face of shmtop's ShmAlloc).
 *
 * Many processes map one regular file (MAP_SHARED) and allocate in it. Allocations are named by
 * offsets from the user base, which mean the same in every process; SHM_NULL (0) is never
 * returned. Every allocation and free is one compare-and-swap on a block's 64-bit buddy word:
 * no locks, async-signal-safe, safe across processes.
 *
 * Build:  swift build -c release --product shm_alloc      (yields .build/release/libshm_alloc.so)
 * Use:    gcc prog.c -I Sources/CShmAlloc/include -L .build/release -lshm_alloc \
 *             -Wl,-rpath,$PWD/.build/release
 */
#ifndef SHM_ALLOC_H
#define SHM_ALLOC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An offset from the user base. Unsigned, and lock-free as _Atomic(shm_offt). */
typedef uint64_t shm_offt;

/* The offset that is never allocated; it points into a read-only page. */
#define SHM_NULL ((shm_offt)0)

/* Offset <-> address in this process's mapping. */
#define SHM_OFFT_TO_ADDR(off) ((void *)((char *)get_shm_user_base() + (off)))
#define SHM_ADDR_TO_OFFT(ptr) ((shm_offt)((char *)(ptr) - (char *)get_shm_user_base()))

/*
 * Opens or creates the cache file and maps it. `path` NULL means the environment variable
 * SHM_FILE. A new file gets the default geometry (32 B .. 1024 B, 512 MiB); an existing one is
 * used with the geometry in its header. `addr` non-NULL maps the file there (MAP_FIXED).
 * Returns true on success, and when already initialised (a no-op). On failure returns false,
 * sets errno and prints one line naming the path and the reason to stderr.
 * Safe to call from many threads and processes at once; children of fork inherit the mapping.
 */
bool shm_init(void *addr, const char *path);

/*
 * As shm_init, but a new file gets this geometry (sizes powers of two, max/min <= 32, capacity a
 * multiple of max_size) and an existing file must have exactly this geometry (else EINVAL).
 */
bool shm_init_with_geometry(void *addr, const char *path, size_t min_size, size_t max_size, size_t capacity);

/* Unmaps the cache. The file stays. Call only when no other thread is using the allocator. */
void shm_deinit(void);

/* Allocates n bytes; SHM_NULL with errno = ENOMEM when n exceeds the largest size or the cache
 * is full (errno = EINVAL when not initialised). */
shm_offt shm_malloc(size_t n);

/* Allocates count * n zeroed bytes; SHM_NULL with errno = ENOMEM on overflow or no room. */
shm_offt shm_calloc(size_t count, size_t n);

/* Frees an allocation; SHM_NULL is a no-op. A double, bogus or corrupted free changes nothing:
 * it sets errno = EINVAL and counts the refusal in the file's header. */
void shm_free(shm_offt off);

/* The same, with addresses in this process's mapping (NULL for SHM_NULL). */
void *ptr_malloc(size_t n);
void *ptr_calloc(size_t count, size_t n);
void ptr_free(void *ptr);

/* The address offsets are relative to (NULL when not initialised). */
void *get_shm_user_base(void);

/* Geometry of the mapped cache (0 when not initialised). */
size_t get_shm_max_allocatable_size(void); /* the largest n shm_malloc accepts */
size_t get_shm_min_allocatable_size(void); /* the smallest node's usable bytes */
size_t get_sizeof_block_header(void);      /* bytes in front of every allocation (8) */
size_t get_mapping_size_needed_by_shm(void); /* bytes mapped: the whole file */

#ifdef __cplusplus
}
#endif

#endif /* SHM_ALLOC_H */
