// The C face as a C user meets it: a program compiled with gcc against libshm_alloc.so and
// shm_alloc.h. `swift test` builds the library product next to the test bundle (the dynamic
// library is a product of this package, and SwiftPM builds every product for tests), so the test
// links against that copy; the README's command line is the same with `.build/release`.

import Foundation
import ShmAlloc
import ShmFormat
import ShmPathCache
import ShmTestSupport
import Testing

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
            [
                "gcc", "-Wall", "-Werror", source, "-I", include, "-L", BuiltProducts.directory, "-lshm_alloc",
                "-Wl,-rpath," + BuiltProducts.directory, "-o", executable,
            ],
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

/// The path cache's C face (`shm_path_insert`, `shm_path_search`) in a gcc-built program, and the
/// same file read and written by Swift's `PathCache` before and after it.
@Suite("the C library's path cache")
struct CLibraryPathCacheTests {
    /// 1 MiB: room for the tables and entries, small enough to fill for the ENOMEM case.
    static let geometry = try! Geometry(minSize: 32, maxSize: 1024, capacity: 1 << 20)

    /// Every rule of shm_alloc.h's path cache section, on the file named by its argument, which
    /// Swift wrote `/from/swift/exact` (ALLOW|0x80) and `/from/swift/tree` (DENY|PREFIX|0x40) into.
    static let program = #"""
        #include "shm_alloc.h"
        #include <errno.h>
        #include <signal.h>
        #include <stdlib.h>
        #include <string.h>

        #define CHECK(condition) do { if (!(condition)) { \
            fprintf(stderr, "FAIL line %d: %s (errno %d)\n", __LINE__, #condition, errno); return 1; } } while (0)

        /* A hit with exactly these flags. */
        static bool found(const char *path, uint8_t expected) {
            uint8_t flags = 0;
            return shm_path_search(path, &flags) && flags == expected;
        }

        /* A miss: false, errno ENOENT, *flags untouched. */
        static bool missing(const char *path) {
            uint8_t flags = 0xee;
            errno = 0;
            return !shm_path_search(path, &flags) && errno == ENOENT && flags == 0xee;
        }

        static bool refused(bool result, int expected) { return !result && errno == expected; }

        static volatile sig_atomic_t handlerInserted;

        static void insertInHandler(int signal) {
            (void)signal;
            handlerInserted = shm_path_insert("/from/signal", SHM_PATH_ALLOW | 0x08);
        }

        int main(int argc, char **argv) {
            CHECK(argc == 2);
            uint8_t flags = 0;

            /* Before any cache is mapped: EINVAL, as the allocation calls. */
            errno = 0;
            CHECK(refused(shm_path_search("/usr", &flags), EINVAL));
            errno = 0;
            CHECK(refused(shm_path_insert("/usr", SHM_PATH_ALLOW), EINVAL));

            CHECK(shm_init(NULL, argv[1]));

            /* What Swift inserted, with its flags (the caller's bits too). */
            CHECK(found("/from/swift/exact", SHM_PATH_ALLOW | 0x80));
            CHECK(found("/from/swift/tree/deeper/file", SHM_PATH_DENY | SHM_PATH_PREFIX | 0x40));
            CHECK(missing("/from/swift/treex"));
            CHECK(missing("/from/swift/exact/below"));

            /* Bad paths: NULL, empty, relative. */
            errno = 0;
            CHECK(refused(shm_path_insert(NULL, SHM_PATH_ALLOW), EINVAL));
            errno = 0;
            CHECK(refused(shm_path_insert("", SHM_PATH_ALLOW), EINVAL));
            errno = 0;
            CHECK(refused(shm_path_insert("usr/lib", SHM_PATH_ALLOW), EINVAL));
            errno = 0;
            CHECK(refused(shm_path_search(NULL, &flags), EINVAL));
            errno = 0;
            CHECK(refused(shm_path_search("", &flags), EINVAL));
            errno = 0;
            CHECK(refused(shm_path_search("usr/lib", &flags), EINVAL));

            /* A prefix answers below it at '/' boundaries only, and for itself. */
            CHECK(missing("/usr/local/bin/cc"));
            CHECK(shm_path_insert("/usr/local", SHM_PATH_DENY | SHM_PATH_PREFIX));
            CHECK(found("/usr/local/bin/cc", SHM_PATH_DENY | SHM_PATH_PREFIX));
            CHECK(found("/usr/local/", SHM_PATH_DENY | SHM_PATH_PREFIX));
            CHECK(found("/usr/local", SHM_PATH_DENY | SHM_PATH_PREFIX));
            CHECK(missing("/usr/localx"));
            CHECK(missing("/usr/localx/bin"));
            CHECK(missing("/usr"));

            /* The longest prefix wins. */
            CHECK(shm_path_insert("/usr", SHM_PATH_ALLOW | SHM_PATH_PREFIX));
            CHECK(found("/usr/local/bin/cc", SHM_PATH_DENY | SHM_PATH_PREFIX));
            CHECK(found("/usr/lib/libc.so", SHM_PATH_ALLOW | SHM_PATH_PREFIX));

            /* An exact entry beats every prefix, and answers for itself alone. */
            CHECK(shm_path_insert("/usr/local/bin/cc", SHM_PATH_ALLOW));
            CHECK(found("/usr/local/bin/cc", SHM_PATH_ALLOW));
            CHECK(found("/usr/local/bin/cc/below", SHM_PATH_DENY | SHM_PATH_PREFIX));

            /* Inserting again replaces the flags: the prefix flag can come and go. */
            CHECK(shm_path_insert("/usr/local", SHM_PATH_ALLOW | SHM_PATH_PREFIX | 0x80));
            CHECK(found("/usr/local/bin/ld", SHM_PATH_ALLOW | SHM_PATH_PREFIX | 0x80));
            CHECK(shm_path_insert("/usr/local", SHM_PATH_DENY));
            CHECK(found("/usr/local", SHM_PATH_DENY));
            CHECK(found("/usr/local/bin/ld", SHM_PATH_ALLOW | SHM_PATH_PREFIX));

            /* flags may be NULL when only the answer matters. */
            errno = 0;
            CHECK(shm_path_search("/usr/local", NULL) && errno == 0);

            /* Too long for an entry: ENAMETOOLONG (1000 bytes fit at this geometry), though a
               prefix still answers for such a path. */
            char path[1501];
            memset(path, 'a', sizeof path - 1);
            path[0] = '/';
            path[1000] = '\0';
            CHECK(shm_path_insert(path, SHM_PATH_ALLOW));
            CHECK(found(path, SHM_PATH_ALLOW));
            path[1000] = 'a';
            path[1001] = '\0';
            errno = 0;
            CHECK(refused(shm_path_insert(path, SHM_PATH_ALLOW), ENAMETOOLONG));
            CHECK(missing(path));
            memcpy(path, "/usr/", 5);
            path[1500] = '\0';
            CHECK(found(path, SHM_PATH_ALLOW | SHM_PATH_PREFIX));

            /* In a signal handler. */
            signal(SIGUSR1, insertInHandler);
            CHECK(raise(SIGUSR1) == 0 && handlerInserted);
            CHECK(found("/from/signal", SHM_PATH_ALLOW | 0x08));

            /* Out of space: ENOMEM, and the cache as it was (an update needs no room). */
            size_t capacity = 1 << 16, count = 0;
            shm_offt *fillers = malloc(capacity * sizeof *fillers);
            CHECK(fillers != NULL);
            for (size_t node = 1024; node >= 32; node /= 2) {  /* every node size, largest first */
                shm_offt offset;
                while (count < capacity && (offset = shm_malloc(node - get_sizeof_block_header())) != SHM_NULL) {
                    fillers[count++] = offset;
                }
            }
            CHECK(count < capacity);
            errno = 0;
            CHECK(refused(shm_path_insert("/brand/new", SHM_PATH_ALLOW), ENOMEM));
            CHECK(missing("/brand/new"));
            CHECK(found("/usr/local/bin/cc", SHM_PATH_ALLOW));
            CHECK(shm_path_insert("/usr/local/bin/cc", SHM_PATH_ALLOW | SHM_PATH_DENY));
            CHECK(found("/usr/local/bin/cc", SHM_PATH_ALLOW | SHM_PATH_DENY));
            while (count > 0) shm_free(fillers[--count]);
            free(fillers);
            CHECK(shm_path_insert("/brand/new", SHM_PATH_ALLOW));

            /* For Swift to find. "/" with the prefix flag answers for every path. */
            CHECK(shm_path_insert("/from/c/exact", SHM_PATH_ALLOW | 0x20));
            CHECK(shm_path_insert("/from/c/tree", SHM_PATH_DENY | SHM_PATH_PREFIX | 0x10));
            CHECK(shm_path_insert("/", SHM_PATH_DENY | SHM_PATH_PREFIX));
            CHECK(found("/nowhere/at/all", SHM_PATH_DENY | SHM_PATH_PREFIX));

            /* After shm_deinit no cache is mapped again. */
            shm_deinit();
            errno = 0;
            CHECK(refused(shm_path_search("/usr", &flags), EINVAL));
            puts("ok");
            return 0;
        }
        """#

    @Test("a C program built with gcc follows every path cache rule; C and Swift find each other's entries")
    func cProgramAndSwift() throws {
        let scratch = try ScratchDirectory()
        let cachePath = scratch.file("paths.shm")
        do {
            let paths = try PathCache(cache: makeCache(at: cachePath, geometry: Self.geometry))
            try paths.insert("/from/swift/exact", flags: PathFlags.allow.union(PathFlags(rawValue: 0x80)))
            try paths.insert("/from/swift/tree", flags: PathFlags.deny.union(.prefix).union(PathFlags(rawValue: 0x40)))
        }
        let program = try CLibraryLoadingTests.compile(Self.program, in: scratch, flags: CLibraryLoadingTests.linkFlags)
        let run = try runToEnd(
            "/usr/bin/env", ["-u", "SHM_FILE", program, cachePath], in: scratch, timeout: .seconds(30))
        #expect(run.termination == .exited(0), "\(run.outputTail)")
        #expect(run.output == "ok\n")

        let paths = try PathCache(cache: SharedCache(path: cachePath, policy: .attach))
        #expect(try paths.search("/from/c/exact") == PathFlags.allow.union(PathFlags(rawValue: 0x20)))
        #expect(
            try paths.search("/from/c/tree/deeper") == PathFlags.deny.union(.prefix).union(PathFlags(rawValue: 0x10)))
        #expect(try paths.search("/from/signal") == PathFlags.allow.union(PathFlags(rawValue: 0x08)))
        #expect(try paths.search("/usr/local/bin/cc") == PathFlags.allow.union(.deny))
        #expect(try paths.search("/brand/new") == .allow)
        #expect(try paths.search("/elsewhere") == PathFlags.deny.union(.prefix), "C's \"/\" prefix answers")
        // Every filler was freed: what stays allocated is the path cache's own tables and entries.
        #expect(paths.cache.invalidBlocks == [])
        #expect(paths.census().entries == 11, "Swift's 2 and C's 9")
    }
}
