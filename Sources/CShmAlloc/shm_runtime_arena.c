// The memory of the library's own objects: its Swift runtime allocates through posix_memalign (and
// malloc, in a debug build) and frees through free, which the linker redirects here (--wrap, see
// Package.swift; a test checks that the library imports no other allocation function). They come from
// a static arena, so mapping a cache never initialises the process's malloc (no getrandom, no brk,
// no heap page touched: about 8 us), and a first call from a signal handler, which maps the cache
// when SHM_FILE is set, takes no lock that the code it interrupted may hold. What the
// library keeps for a cache (its SharedCache, PathCache, path and owner slots) fits in the arena;
// anything beyond it comes from malloc as before. Arena memory is never reused: what is freed
// there (objects of a cache that an explicit shm_init replaced, decoding temporaries) is lost,
// at most the arena's size over the life of the process.
#include <stdalign.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int __real_posix_memalign(void **memory, size_t alignment, size_t size);
void *__real_malloc(size_t size);
void __real_free(void *memory);

/// Bytes served from the arena so far; only grows.
static _Atomic size_t arena_used;
/// The arena's alignment: the largest a request may ask for and still be served from it.
enum { arena_alignment = 64 };
/// 2 KiB: opening a cache takes about 1.1 KiB of it; small enough for the library's zeroed data to
/// fit in the page its initialised data ends in, so the loader maps no extra page for it.
static alignas(arena_alignment) unsigned char arena[2048];

static bool in_arena(const void *memory) {
    return (const unsigned char *)memory >= arena && (const unsigned char *)memory < arena + sizeof arena;
}

int __wrap_posix_memalign(void **memory, size_t alignment, size_t size) {
    size_t used = atomic_load_explicit(&arena_used, memory_order_relaxed);
    while (alignment <= arena_alignment) {
        size_t start = (used + alignment - 1) & ~(alignment - 1);
        if (start > sizeof arena || sizeof arena - start < size) break;
        if (atomic_compare_exchange_weak_explicit(&arena_used, &used, start + size, memory_order_relaxed,
                                                  memory_order_relaxed)) {
            *memory = arena + start;
            return 0;
        }
    }
    return __real_posix_memalign(memory, alignment, size);
}

void *__wrap_malloc(size_t size) {
    void *memory = NULL;
    if (__wrap_posix_memalign(&memory, alignof(max_align_t), size) != 0) return NULL;
    return memory;
}

void __wrap_free(void *memory) {
    if (!in_arena(memory)) __real_free(memory);
}
