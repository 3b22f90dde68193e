// What the allocator needs from C that Swift cannot express: thread-local storage that costs no
// call into the dynamic linker. Nothing here allocates or takes a lock; everything is
// async-signal-safe.
#ifndef SHM_SUPPORT_H
#define SHM_SUPPORT_H

#ifdef __cplusplus
extern "C" {
#endif

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

#ifdef __cplusplus
}
#endif

#endif
