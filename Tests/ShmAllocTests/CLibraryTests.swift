// The C face as a C user meets it: a program compiled with gcc against libshm_alloc.so and
// shm_alloc.h. `swift test` builds the library product next to the test bundle (the dynamic
// library is a product of this package, and SwiftPM builds every product for tests), so the test
// links against that copy; the README's command line is the same with `.build/release`.

import Foundation
import ShmAlloc
import Testing
import ShmTestSupport

extension MultiProcessTests {
    /// Allocates and writes in the parent, forks, reads and frees in the child, then checks in the
    /// parent that the free happened; also the errno contract of bad calls.
    static let program = #"""
        #include "shm_alloc.h"
        #include <errno.h>
        #include <stdint.h>
        #include <stdio.h>
        #include <string.h>
        #include <sys/wait.h>
        #include <unistd.h>

        #define CHECK(condition) do { if (!(condition)) { \
            fprintf(stderr, "FAIL line %d: %s (errno %d)\n", __LINE__, #condition, errno); return 1; } } while (0)

        static const char message[] = "written by the parent";

        int main(int argc, char **argv) {
            CHECK(argc == 2);
            CHECK(shm_init_with_geometry(NULL, argv[1], 32, 1024, 1 << 20));
            CHECK(shm_init(NULL, argv[1]));   /* already initialised: a no-op that succeeds */
            CHECK(get_shm_max_allocatable_size() == 1016);
            CHECK(get_shm_min_allocatable_size() == 32);
            CHECK(get_sizeof_block_header() == 8);
            CHECK(get_mapping_size_needed_by_shm() > (1 << 20));

            shm_offt offset = shm_malloc(sizeof message);
            CHECK(offset != SHM_NULL);
            memcpy(SHM_OFFT_TO_ADDR(offset), message, sizeof message);
            CHECK(SHM_ADDR_TO_OFFT(SHM_OFFT_TO_ADDR(offset)) == offset);

            pid_t child = fork();
            CHECK(child >= 0);
            if (child == 0) {
                /* The child inherits the mapping: it reads the parent's bytes and frees them. */
                if (memcmp(SHM_OFFT_TO_ADDR(offset), message, sizeof message) != 0) _exit(2);
                errno = 0;
                shm_free(offset);
                _exit(errno == 0 ? 0 : 3);
            }
            int status = 0;
            CHECK(waitpid(child, &status, 0) == child);
            CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);

            /* The child's free is visible here: freeing again is a refused double free. */
            errno = 0;
            shm_free(offset);
            CHECK(errno == EINVAL);
            errno = 0;
            shm_free(offset + 1);
            CHECK(errno == EINVAL);
            errno = 0;
            shm_free(SHM_NULL);
            CHECK(errno == 0);

            errno = 0;
            CHECK(shm_malloc(SIZE_MAX) == SHM_NULL && errno == ENOMEM);
            errno = 0;
            CHECK(shm_malloc(1017) == SHM_NULL && errno == ENOMEM);
            errno = 0;
            CHECK(shm_calloc(SIZE_MAX / 2, 3) == SHM_NULL && errno == ENOMEM);

            shm_offt zeroed = shm_calloc(10, 100);
            CHECK(zeroed != SHM_NULL);
            for (int i = 0; i < 1000; i++) CHECK(((unsigned char *)SHM_OFFT_TO_ADDR(zeroed))[i] == 0);
            shm_free(zeroed);

            char *pointer = ptr_malloc(100);
            CHECK(pointer != NULL && SHM_ADDR_TO_OFFT(pointer) != SHM_NULL);
            strcpy(pointer, "pointer");
            errno = 0;
            ptr_free(pointer);
            CHECK(errno == 0);
            ptr_free(pointer);
            CHECK(errno == EINVAL);
            CHECK(ptr_calloc(SIZE_MAX, SIZE_MAX) == NULL && errno == ENOMEM);

            shm_deinit();
            CHECK(get_shm_user_base() == NULL);
            puts("ok");
            return 0;
        }
        """#

    @Test("a C program built with gcc: parent allocates, forked child reads and frees, errno contract")
    func cProgram() throws {
        let library = BuiltProducts.directory + "/libshm_alloc.so"
        try #require(FileManager.default.fileExists(atPath: library), "swift test did not build \(library)")
        let scratch = try ScratchDirectory()
        let source = scratch.file("prog.c")
        try Self.program.write(toFile: source, atomically: true, encoding: .utf8)
        let executable = scratch.file("prog")
        let include = BuiltProducts.packageRoot + "/Sources/CShmAlloc/include"
        let compile = try runToEnd(
            "/usr/bin/env",
            ["gcc", "-Wall", "-Werror", source, "-I", include, "-L", BuiltProducts.directory, "-lshm_alloc",
             "-Wl,-rpath," + BuiltProducts.directory, "-o", executable],
            in: scratch)
        try #require(compile.termination == .exited(0), "gcc failed: \(compile.outputTail)")

        let cachePath = scratch.file("c.shm")
        let run = try runToEnd(executable, [cachePath], in: scratch, timeout: .seconds(30))
        #expect(run.termination == .exited(0), "\(run.outputTail)")
        #expect(run.output == "ok\n")

        // What the program left: everything freed, and its three refused frees counted in the header.
        let cache = try SharedCache(path: cachePath, policy: .attach)
        #expect(cache.invalidFrees == 3)
        #expect(cache.usedBlocks == [])
        #expect(cache.invalidBlocks == [])
    }
}
