// Per-thread state: slot numbers for the allocator's cursors, and the flag of a one-time
// initialisation in progress (see shm_system.h).
//
// Initial-exec TLS is fine for a library loaded at start-up or by LD_PRELOAD, and glibc keeps a
// surplus of static TLS for the few bytes a dlopen'ed one needs.
#include <stdatomic.h>
#include "shm_system.h"

__thread unsigned shm_thread_slot_plus_one __attribute__((tls_model("initial-exec")));
__thread unsigned char shm_thread_initialising_flag __attribute__((tls_model("initial-exec")));

/// The next slot to hand out, shared by the process's threads.
static atomic_uint next_slot;

unsigned shm_thread_slot_assign(void) {
    // Relaxed: the number only has to be unique, it publishes nothing.
    unsigned slot = atomic_fetch_add_explicit(&next_slot, 1, memory_order_relaxed);
    shm_thread_slot_plus_one = slot + 1;
    return slot;
}
