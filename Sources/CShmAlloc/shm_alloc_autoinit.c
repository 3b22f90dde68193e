// The original library mapped its file before main(). This keeps that drop-in behaviour when
// SHM_FILE is set. The mapping is implicit: an explicit shm_init replaces it (see shm_alloc.h).
#include <stdlib.h>
#include "shm_alloc.h"

/// Maps $SHM_FILE unless a cache is already installed (Exports.swift). Not in shm_alloc.h: only
/// this initialiser calls it.
void shm_init_at_load(void);

__attribute__((constructor)) static void shm_alloc_autoinit(void) {
    if (getenv("SHM_FILE") != NULL) {
        shm_init_at_load();
    }
}
