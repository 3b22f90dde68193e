// What the system layer needs from C that Swift cannot express, in both of the builds that share
// it: the Swift library and the runtime-free C library (Embedded Swift, where `Glibc` does not
// import). Variadic functions (`open`), `errno` and macros such as `MAP_FAILED` do not import into
// Swift, so each gets a `static inline` wrapper here; plain functions and integer macros of the
// headers below import as they are. Nothing here allocates or takes a lock.
#ifndef SHM_SYSTEM_H
#define SHM_SYSTEM_H

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - errno

/// The calling thread's `errno`.
static inline int shm_errno(void) { return errno; }

/// Sets the calling thread's `errno` (what a C caller of the library reads after a failure).
static inline void shm_set_errno(int value) { errno = value; }

// MARK: - Files

/// `open(path, flags, mode)`: the variadic C function with its mode always passed.
static inline int shm_open_file(const char *path, int flags, unsigned mode) { return open(path, flags, (mode_t)mode); }

/// True when `mode` (a `st_mode`) is a regular file: `S_ISREG`, a function-like macro.
static inline int shm_is_regular(unsigned mode) { return S_ISREG(mode); }

/// True when `mode` (a `st_mode`) is a directory: `S_ISDIR`, a function-like macro.
static inline int shm_is_directory(unsigned mode) { return S_ISDIR(mode); }

// MARK: - Mappings

/// `mmap`, answering NULL where it answers `MAP_FAILED` (a macro Swift does not import).
static inline void *shm_map(void *address, size_t length, int protection, int flags, int descriptor, off_t offset) {
    void *mapped = mmap(address, length, protection, flags, descriptor, offset);
    return mapped == MAP_FAILED ? NULL : mapped;
}

// MARK: - Caches

/// Asks the processor to bring the cache line holding `address` into its caches for reading
/// (`__builtin_prefetch`, which Swift lacks): a hint, which never faults, even for an address
/// that is not mapped or whose file page is gone.
static inline __attribute__((always_inline)) void shm_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

// MARK: - Thread slots

/// This thread's slot plus one; 0 until the thread first asks. Initial-exec TLS: a plain
/// %fs-relative load, never a call to __tls_get_addr (which may allocate on a thread's first
/// access in a dlopen'ed library and is not async-signal-safe). Use `shm_thread_slot()`.
extern __thread unsigned shm_thread_slot_plus_one __attribute__((tls_model("initial-exec")));

/// Hands the calling thread the next slot number and returns it (the slow path of
/// `shm_thread_slot`).
unsigned shm_thread_slot_assign(void);

/// This thread's slot number: 0 for the first thread of the process that asks, 1 for the next,
/// and so on; a thread keeps its number for life. Numbers are not reused when threads exit (the
/// allocator reduces them modulo its slot count, so reuse would buy nothing). A child of `fork`
/// keeps the numbers its parent's forking thread had.
static inline __attribute__((always_inline)) unsigned shm_thread_slot(void) {
    unsigned slot = shm_thread_slot_plus_one;
    return __builtin_expect(slot != 0, 1) ? slot - 1 : shm_thread_slot_assign();
}

// MARK: - One-time initialisation in progress

/// Nonzero while the calling thread runs a one-time initialisation that other threads wait for
/// (the C library's mapping of its cache). Initial-exec TLS, as above. Use the functions below.
extern __thread unsigned char shm_thread_initialising_flag __attribute__((tls_model("initial-exec")));

/// Whether the calling thread is inside such an initialisation: true in a signal handler that
/// interrupted it, which must not wait for the initialisation it interrupted.
static inline __attribute__((always_inline)) bool shm_thread_is_initialising(void) {
    return shm_thread_initialising_flag != 0;
}

/// Marks the start (true) or the end (false) of the calling thread's initialisation.
static inline __attribute__((always_inline)) void shm_thread_set_initialising(bool initialising) {
    // A compiler barrier on each side: a signal handler on this thread must see the flag set
    // before the first shared write of the initialisation, and set until after the last.
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    shm_thread_initialising_flag = initialising;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
}

#ifdef __cplusplus
}
#endif

#endif
