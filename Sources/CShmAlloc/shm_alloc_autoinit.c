// The original library mapped its file before main(). This keeps its drop-in behaviour when
// SHM_FILE is set, at no start-up cost: the load only notes the path (no system call but getpid),
// and the first call that needs the cache maps it. That mapping is implicit: an explicit shm_init
// replaces it (see shm_alloc.h). The fork handlers are installed whether SHM_FILE is set or not.
#include <stdlib.h>
#include "shm_alloc.h"

/// Installs the fork handlers and makes the mapping of `path` (NULL: none) pending
/// (ProcessCache.swift). Not in shm_alloc.h: only this initialiser calls it.
void shm_prepare_at_load(const char *path);

__attribute__((constructor)) static void shm_alloc_autoinit(void) {
    shm_prepare_at_load(getenv("SHM_FILE"));
}
