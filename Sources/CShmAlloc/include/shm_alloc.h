/*
 * shm_alloc.h — lock-free shared-memory allocator (the C face of shmtop's ShmAlloc).
 *
 * Many processes map one regular file (MAP_SHARED) and allocate in it. Allocations are named by
 * offsets from the user base, which mean the same in every process; SHM_NULL (0) is never
 * returned. Every allocation and free is one compare-and-swap on a block's 64-bit buddy word:
 * no locks, async-signal-safe, safe across processes.
 *
 * The library needs nothing but libc (it is Embedded Swift, without the Swift runtime), so it can be
 * linked into or preloaded (LD_PRELOAD) into any process.
 * Build:   swift build -c release --product shm_alloc      (yields .build/release/libshm_alloc.so)
 * Install: scripts/install.sh PREFIX                       (header, library, pkg-config file)
 * Use:     gcc prog.c $(pkg-config --cflags --libs shm_alloc)
 *
 * This header stands alone, as the original's did: it brings <stdio.h> and <stdatomic.h> with it.
 */
#ifndef SHM_ALLOC_H
#define SHM_ALLOC_H

#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An offset from the user base. Unsigned, and lock-free as _Atomic(shm_offt). */
typedef uint64_t shm_offt;

/* The printf conversion of a shm_offt: printf("%" PRIu_shm_offt "\n", off). */
#define PRIu_shm_offt PRIu64

/* The offset that is never allocated; it points into a read-only page. */
#define SHM_NULL ((shm_offt)0)

/* Offset <-> address in this process's mapping. */
#define SHM_OFFT_TO_ADDR(off) ((void *)((char *)get_shm_user_base() + (off)))
#define SHM_ADDR_TO_OFFT(ptr) ((shm_offt)((char *)(ptr) - (char *)get_shm_user_base()))

/*
 * Opens or creates the cache file and maps it. `path` NULL means the environment variable
 * SHM_FILE. A new file gets the default geometry (32 B .. 1024 B, 512 MiB); an existing one is
 * used with the geometry in its header. `addr` non-NULL maps the file there (never replacing a
 * mapping that is already there: EEXIST).
 *
 * When SHM_FILE is set as the process starts, no call to shm_init is needed, as with the original:
 * the first call that needs the cache (any function below but get_sizeof_block_header) opens and
 * maps that file, so loading the library costs a process nothing, and one that never calls it
 * never opens the file. That mapping is implicit: an explicit shm_init replaces it with what it
 * names (when it was already made, it is unmapped, so call shm_init before allocating through
 * it). It is tried once: if it fails, that first call prints why and it and later calls fail
 * (EINVAL) until an explicit shm_init. A signal handler whose call interrupted its own thread's
 * first call fails with EAGAIN rather than wait for itself.
 * A second explicit call succeeds when it names the cache already mapped (same path; the same
 * addr when one is given) and fails with EEXIST when it names another.
 *
 * Returns true on success. On failure returns false, sets errno and prints one line naming the
 * path and the reason to stderr. Safe to call from many threads and processes at once; children
 * of fork inherit the mapping.
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

/*
 * Geometry. Before shm_init these answer with the default geometry, the one shm_init gives a new
 * file, as the original's constants did; after it, with the mapped file's.
 */
size_t get_shm_max_allocatable_size(void);   /* the largest n shm_malloc accepts: the block size less the header (1016) */
size_t get_shm_min_allocatable_size(void);   /* the least memory an allocation takes: the smallest node (32), header included */
size_t get_sizeof_block_header(void);        /* bytes in front of every allocation, inside its node (8) */
size_t get_mapping_size_needed_by_shm(void); /* bytes mapped: the whole file (header, words, index, data) */

/*
 * The shared path cache: paths and a verdict byte for each, kept in the mapped cache file for every
 * process and thread that maps it (the same cache as Swift's ShmPathCache.PathCache on that file).
 * Paths are absolute byte strings, not normalised ("/a//b" and "/a/b" are two paths). Entries stay
 * for the life of the file.
 *
 * Both calls are lock-free and async-signal-safe: no lock, no heap, and no system call but a
 * process's one-time work, which its first call may do: mapping SHM_FILE (see shm_init) and
 * registering the process in the owner table (reading /proc/self/stat), where its searches, hits
 * and inserts are counted. They may run in any thread, any process, and in signal handlers.
 */

/* Flags bits with a meaning to the cache; the other five bits (0xf8) are the caller's, kept as given. */
#define SHM_PATH_ALLOW  0x1  /* the path may be accessed */
#define SHM_PATH_DENY   0x2  /* the path may not be accessed */
#define SHM_PATH_PREFIX 0x4  /* the entry answers for every path below it at a '/' boundary */

/*
 * Caches `flags` for `path` (NUL-terminated), or replaces the flags cached for it: the last
 * writer wins. Returns true on success; on failure returns false, sets errno and changes nothing:
 *   EINVAL        path NULL, empty or relative; or no cache mapped (as shm_malloc), or the mapped
 *                 file's geometry cannot hold a path cache (its largest size below 64 B, or more
 *                 than 2^32 smallest nodes)
 *   ENAMETOOLONG  path longer than one allocation holds (1000 bytes at the default geometry)
 *   ENOMEM        no room in the cache for a new entry or table
 */
bool shm_path_insert(const char *path, uint8_t flags);

/*
 * Looks `path` up. A hit returns true and stores the flags in *flags (when flags is not NULL):
 * those of path's own entry, else those of its longest ancestor at a '/' boundary that carries
 * SHM_PATH_PREFIX ("/usr/local" with PREFIX answers for "/usr/local/bin/cc", not for
 * "/usr/localx"; "/" with PREFIX answers for every path). An exact entry beats every prefix, even
 * one without SHM_PATH_PREFIX itself.
 * A miss returns false with errno = ENOENT and leaves *flags alone. Errors return false with
 * errno = EINVAL (path NULL, empty or relative; no cache mapped; a geometry without a path cache).
 * A path too long to be inserted can still be answered by a prefix entry (else it is a miss).
 */
bool shm_path_search(const char *path, uint8_t *flags);

#ifdef __cplusplus
}
#endif

#endif /* SHM_ALLOC_H */
