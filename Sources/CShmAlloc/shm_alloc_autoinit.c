// The original library mapped its file before main(). This keeps that drop-in behaviour, but only
// when SHM_FILE is set, so programs that call shm_init themselves choose the path and geometry.
#include <stdlib.h>
#include "shm_alloc.h"

__attribute__((constructor)) static void shm_alloc_autoinit(void) {
    if (getenv("SHM_FILE") != NULL) {
        (void)shm_init(NULL, NULL);
    }
}
