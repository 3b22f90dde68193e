// The C library as it is deployed: libc only, preloaded into processes that never heard of it,
// started the way the original's users start it, and installed under a prefix with pkg-config.

import Foundation
import ShmAlloc
import ShmFormat
import ShmTestSupport
import Testing

@Suite("the C library, loaded and installed")
struct CLibraryLoadingTests {
    static let library = BuiltProducts.directory + "/libshm_alloc.so"
    static let include = BuiltProducts.packageRoot + "/Sources/CShmAlloc/include"

    /// Compiles `source` with gcc (`-Wall -Werror`) plus `flags`; returns the executable's path.
    static func compile(_ source: String, in scratch: ScratchDirectory, flags: [String]) throws -> String {
        let file = scratch.file("prog-\(UUID().uuidString).c")
        try source.write(toFile: file, atomically: true, encoding: .utf8)
        let executable = String(file.dropLast(2))
        let gcc = try runToEnd(
            "/usr/bin/env", ["gcc", "-Wall", "-Werror", file] + flags + ["-o", executable], in: scratch)
        try #require(gcc.termination == .exited(0), "gcc failed: \(gcc.outputTail)")
        return executable
    }

    /// Flags that link against the built library.
    static var linkFlags: [String] {
        ["-I", include, "-L", BuiltProducts.directory, "-lshm_alloc", "-Wl,-rpath," + BuiltProducts.directory]
    }

    @Test("libshm_alloc.so needs libc alone, and every symbol it uses resolves")
    func dependsOnLibcOnly() throws {
        let scratch = try ScratchDirectory()
        let ldd = try runToEnd("/usr/bin/env", ["ldd", "-r", Self.library], in: scratch)
        #expect(ldd.termination == .exited(0), "\(ldd.outputTail)")
        let needed = ldd.output.split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) }
        #expect(!needed.isEmpty)
        for line in needed {
            let name = line.split(separator: " ").first.map(String.init) ?? ""
            #expect(
                name.hasPrefix("linux-vdso.so") || name == "libc.so.6" || name.hasPrefix("/lib64/ld-linux"),
                "libshm_alloc.so needs \(line)")
        }
    }

    @Test("the library's memory comes through posix_memalign, malloc and free alone, which its arena wraps")
    func importsNoOtherAllocator() throws {
        let scratch = try ScratchDirectory()
        let nm = try runToEnd("/usr/bin/env", ["nm", "-D", "--undefined-only", Self.library], in: scratch)
        try #require(nm.termination == .exited(0), "\(nm.outputTail)")
        let imported = Set(
            nm.output.split(separator: "\n").compactMap {
                $0.split(separator: " ").last?.split(separator: "@").first
            })
        #expect(imported.contains("free"))
        // Memory from anywhere else would reach the arena's free, or arena memory libc's realloc.
        #expect(
            imported.isDisjoint(with: ["calloc", "realloc", "reallocarray", "aligned_alloc", "memalign", "valloc"]))
    }

    /// Exits 0 when the preloaded library's first call has mapped the cache and nothing has taken
    /// memory from malloc (mallinfo2's arena is the heap obtained from the system).
    static let untouchedHeapProgram = #"""
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <malloc.h>

        int main(void) {
            void *(*user_base)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "get_shm_user_base");
            if (user_base == NULL || user_base() == NULL) return 2;
            return mallinfo2().arena == 0 ? 0 : 3;
        }
        """#

    @Test("the implicit mapping of a ready SHM_FILE leaves the process's malloc alone")
    func implicitMappingTouchesNoHeap() throws {
        let scratch = try ScratchDirectory()
        let program = try Self.compile(Self.untouchedHeapProgram, in: scratch, flags: ["-ldl"])
        // Ready beforehand: what every start but the file's first meets (creating it may use the heap).
        let cachePath = scratch.file("cache.shm")
        _ = try SharedCache(path: cachePath, policy: .createIfNeeded(.default))
        let run = try runToEnd(
            "/usr/bin/env", ["LD_PRELOAD=" + Self.library, "SHM_FILE=" + cachePath, program], in: scratch)
        #expect(run.termination == .exited(0), "exit 2: not mapped, 3: heap used; \(run.outputTail)")
    }

    /// Allocates its argument's bytes through functions found at run time (the program is not
    /// linked against the library: only a preload provides them) and prints the offset.
    static let preloadedProgram = #"""
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <inttypes.h>
        #include <stdio.h>
        #include <string.h>
        #include <unistd.h>

        int main(int argc, char **argv) {
            uint64_t (*shm_malloc)(size_t) = (uint64_t (*)(size_t))dlsym(RTLD_DEFAULT, "shm_malloc");
            void *(*user_base)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "get_shm_user_base");
            if (argc != 2 || shm_malloc == NULL || user_base == NULL) return 2;
            uint64_t offset = shm_malloc(strlen(argv[1]) + 1);
            if (offset == 0) return 3;
            strcpy((char *)user_base() + offset, argv[1]);
            printf("%" PRIu64 " %d\n", offset, (int)getpid());
            return 0;
        }
        """#

    @Test(
        "preloaded with SHM_FILE set, short processes allocate in the file; one that never calls the library never opens it"
    )
    func preloadedProcessesAllocateInTheFile() throws {
        let scratch = try ScratchDirectory()
        let program = try Self.compile(Self.preloadedProgram, in: scratch, flags: ["-ldl"])
        let cachePath = scratch.file("preloaded.shm")
        let preload = ["LD_PRELOAD=" + Self.library, "SHM_FILE=" + cachePath]
        // The mapping is made by the first call that needs it: a process that never calls the
        // library does not even open the file.
        let idle = try runToEnd("/usr/bin/env", preload + ["/bin/true"], in: scratch)
        try #require(idle.termination == .exited(0), "\(idle.outputTail)")
        #expect(!FileManager.default.fileExists(atPath: cachePath), "an idle preloaded process made the file")

        var written: [UInt64: String] = [:]
        var writers: [Int32] = []
        for process in 0..<12 {
            let message = "written by preloaded process \(process)"
            let run = try runToEnd("/usr/bin/env", preload + [program, message], in: scratch)
            try #require(run.termination == .exited(0), "\(run.termination): \(run.outputTail)")
            let fields = run.output.split(separator: " ").map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
            let offset = try #require(fields.first.flatMap { UInt64($0) })
            writers += fields.dropFirst().compactMap { Int32($0) }
            #expect(written[offset] == nil, "two processes got offset \(offset)")
            written[offset] = message
        }
        let cache = try SharedCache(path: cachePath, policy: .attach)
        let registered = Set(OwnerRegistrationTests.identities(cache).map(OwnerTable.pid(ofIdentity:)))
        #expect(writers.count == 12 && writers.allSatisfy(registered.contains), "each allocating process registered")
        for (offset, message) in written {
            let address = try #require(cache.pointer(to: ShmOffset(rawValue: offset)))
            #expect(String(cString: address.assumingMemoryBound(to: CChar.self)) == message)
        }
        #expect(cache.invalidBlocks == [])
    }

    /// The start-up rules of shm_alloc.h. `getters` runs without SHM_FILE; `replace B C` runs with
    /// SHM_FILE set (mapped by its first call), then maps B explicitly, then tries C;
    /// `explicit-first B` maps B before anything needed SHM_FILE's cache; `unusable` runs with a
    /// SHM_FILE that cannot be mapped. Includes nothing but shm_alloc.h, which must bring printf
    /// and PRIu_shm_offt with it.
    static let startupProgram = #"""
        #include "shm_alloc.h"
        #include <errno.h>
        #include <string.h>

        #define CHECK(condition) do { if (!(condition)) { \
            printf("FAIL line %d: %s (errno %d)\n", __LINE__, #condition, errno); return 1; } } while (0)

        int main(int argc, char **argv) {
            CHECK(argc >= 2);
            if (strcmp(argv[1], "getters") == 0) {
                CHECK(get_shm_user_base() == NULL);
                CHECK(get_shm_max_allocatable_size() == 1016);
                CHECK(get_shm_min_allocatable_size() == 32);
                CHECK(get_sizeof_block_header() == 8);
                CHECK(get_mapping_size_needed_by_shm() > (size_t)512 << 20);
                errno = 0;
                CHECK(shm_malloc(10) == SHM_NULL && errno == EINVAL);
                puts("ok");
                return 0;
            }
            if (strcmp(argv[1], "unusable") == 0) {    /* $SHM_FILE cannot be mapped: tried once */
                errno = 0;
                CHECK(shm_malloc(10) == SHM_NULL && errno != 0);
                errno = 0;
                CHECK(shm_malloc(10) == SHM_NULL && errno == EINVAL);
                CHECK(get_shm_user_base() == NULL && get_shm_max_allocatable_size() == 1016);
                puts("ok");
                return 0;
            }
            if (strcmp(argv[1], "explicit-first") == 0) {   /* $SHM_FILE is never opened */
                CHECK(argc == 3 && shm_init(NULL, argv[2]));
                CHECK(shm_malloc(10) != SHM_NULL);
                puts("ok");
                return 0;
            }
            CHECK(argc == 4);
            void *loaded = get_shm_user_base();
            CHECK(loaded != NULL);                     /* $SHM_FILE, mapped by this first call */
            CHECK(shm_init(NULL, argv[2]));            /* explicit: replaces the implicit mapping */
            CHECK(get_shm_user_base() != NULL);
            shm_offt offset = shm_malloc(16);
            CHECK(offset != SHM_NULL);
            strcpy(SHM_OFFT_TO_ADDR(offset), "explicit");
            CHECK(shm_init(NULL, argv[2]));            /* the same arguments again: fine */
            errno = 0;
            CHECK(!shm_init(NULL, argv[3]) && errno == EEXIST);   /* another file: refused */
            errno = 0;
            CHECK(!shm_init_with_geometry(NULL, argv[2], 64, 1024, 1 << 20) && errno == EEXIST);
            CHECK(strcmp(SHM_OFFT_TO_ADDR(offset), "explicit") == 0);
            printf("%" PRIu_shm_offt "\n", offset);
            return 0;
        }
        """#

    @Test(
        "getters answer before shm_init; an explicit shm_init replaces the implicit mapping, then refuses another file"
    )
    func startupRules() throws {
        let scratch = try ScratchDirectory()
        let program = try Self.compile(Self.startupProgram, in: scratch, flags: Self.linkFlags)

        let getters = try runToEnd("/usr/bin/env", ["-u", "SHM_FILE", program, "getters"], in: scratch)
        #expect(getters.termination == .exited(0), "\(getters.outputTail)")
        #expect(getters.output == "ok\n")

        let loaded = scratch.file("loaded.shm")
        let explicit = scratch.file("explicit.shm")
        let other = scratch.file("other.shm")
        let run = try runToEnd(
            "/usr/bin/env", ["SHM_FILE=" + loaded, program, "replace", explicit, other], in: scratch)
        try #require(run.termination == .exited(0), "\(run.outputTail)")
        let offset = try #require(UInt64(run.output.trimmingCharacters(in: .whitespacesAndNewlines)))

        // The allocation is in the file the explicit call named; the other file was never made.
        let cache = try SharedCache(path: explicit, policy: .attach)
        let address = try #require(cache.pointer(to: ShmOffset(rawValue: offset)))
        #expect(String(cString: address.assumingMemoryBound(to: CChar.self)) == "explicit")
        #expect(!FileManager.default.fileExists(atPath: other))
        let loadedCache = try SharedCache(path: loaded, policy: .attach)
        #expect(loadedCache.usedBlocks == [])

        // An explicit shm_init before any call leaves SHM_FILE's file alone: never made.
        let unopened = scratch.file("unopened.shm")
        let first = try runToEnd(
            "/usr/bin/env", ["SHM_FILE=" + unopened, program, "explicit-first", explicit], in: scratch)
        #expect(first.termination == .exited(0) && first.output == "ok\n", "\(first.outputTail)")
        #expect(!FileManager.default.fileExists(atPath: unopened))

        // A SHM_FILE that cannot be mapped: the first call says why, once; later calls fail quietly.
        let unusable = try runToEnd(
            "/usr/bin/env", ["SHM_FILE=" + scratch.file("missing/dir/cache.shm"), program, "unusable"], in: scratch)
        #expect(unusable.termination == .exited(0) && unusable.output == "ok\n", "\(unusable.outputTail)")
        let reasons = unusable.error.split(separator: "\n")
        #expect(reasons.count == 1 && reasons[0].contains("missing/dir/cache.shm"), "\(unusable.error)")
    }

    /// First calls with the implicit mapping of SHM_FILE pending: eight threads at once, after
    /// (with an argument) a first call from a signal handler. Every call gets the one cache.
    static let firstUseProgram = #"""
        #include "shm_alloc.h"
        #include <pthread.h>
        #include <signal.h>
        #include <string.h>

        enum { threads = 8 };
        static pthread_barrier_t start;
        static shm_offt offsets[threads + 1];
        static void *bases[threads + 1];

        static void *first_call(void *argument) {
            long index = (long)argument;
            pthread_barrier_wait(&start);
            offsets[index] = shm_malloc(24);
            bases[index] = get_shm_user_base();
            return NULL;
        }

        static void on_signal(int signal) {
            (void)signal;
            offsets[threads] = shm_malloc(24);
            bases[threads] = get_shm_user_base();
        }

        int main(int argc, char **argv) {
            (void)argv;
            int calls = threads;
            pthread_t workers[threads];
            pthread_barrier_init(&start, NULL, threads);
            for (long index = 1; index < threads; index++) pthread_create(&workers[index], NULL, first_call, (void *)index);
            if (argc > 1) {
                signal(SIGUSR1, on_signal);
                raise(SIGUSR1);                  /* runs the handler now, before main goes on */
                calls = threads + 1;
            }
            first_call((void *)0);
            for (long index = 1; index < threads; index++) pthread_join(workers[index], NULL);
            for (int index = 0; index < calls; index++) {
                if (offsets[index] == SHM_NULL || bases[index] != bases[0]) return 10 + index;
                for (int other = 0; other < index; other++) if (offsets[other] == offsets[index]) return 30 + index;
            }
            printf("%p\n", bases[0]);
            return 0;
        }
        """#

    @Test("threads making their first calls at once, or a signal handler first, all get the one implicit mapping")
    func concurrentFirstCalls() throws {
        let scratch = try ScratchDirectory()
        let program = try Self.compile(Self.firstUseProgram, in: scratch, flags: Self.linkFlags + ["-pthread"])
        let cachePath = scratch.file("first-use.shm")
        for round in 0..<20 {
            let arguments = round.isMultiple(of: 2) ? [] : ["handler-first"]
            let run = try runToEnd("/usr/bin/env", ["SHM_FILE=" + cachePath, program] + arguments, in: scratch)
            try #require(
                run.termination == .exited(0), "exit 10+i: call i failed, 30+i: shared offset; \(run.outputTail)")
        }
        let cache = try SharedCache(path: cachePath, policy: .attach)
        #expect(cache.invalidBlocks == [])
    }

    /// `shm_init` and `shm_deinit` over and over while a timer's handler on the same thread allocates and
    /// frees every 50 µs (it lands inside their hold of the cache word, where it must fail, not wait for
    /// ever) and a second thread forks children that map and allocate (a fork inside that hold must not
    /// leave the child a word held by a thread it does not have). Exits 0 when all ends; 6 when the
    /// handler ran on the forker, where it would race `shm_deinit` (see `main`).
    static let holdProgram = #"""
        #include "shm_alloc.h"
        #include <pthread.h>
        #include <signal.h>
        #include <sys/time.h>
        #include <sys/wait.h>
        #include <unistd.h>

        static const char *path;
        static volatile sig_atomic_t cycling = 1;
        static _Thread_local int on_main_thread;
        static volatile sig_atomic_t handled_elsewhere;

        static void on_alarm(int signal) {
            (void)signal;
            if (!on_main_thread) {
                handled_elsewhere = 1;
                return;
            }
            shm_offt offset = shm_malloc(16);
            if (offset != SHM_NULL) shm_free(offset);
        }

        static void *forker(void *unused) {
            (void)unused;
            while (cycling) {
                pid_t child = fork();
                if (child == 0) _exit(shm_init(NULL, path) && shm_malloc(8) != SHM_NULL ? 0 : 3);
                int status;
                if (waitpid(child, &status, 0) != child || !WIFEXITED(status) || WEXITSTATUS(status) != 0) return (void *)1;
            }
            return NULL;
        }

        int main(int argc, char **argv) {
            if (argc != 2) return 2;
            path = argv[1];
            on_main_thread = 1;
            struct sigaction action = {0};
            action.sa_handler = on_alarm;
            action.sa_flags = SA_RESTART;
            sigaction(SIGALRM, &action, NULL);
            struct itimerval timer = {{0, 50}, {0, 50}};
            setitimer(ITIMER_REAL, &timer, NULL);
            /* The handler must run on the main thread alone: on the forker it would use a cache that
               shm_deinit unmaps under it, which shm_alloc.h forbids. The timer's signal goes to any
               thread that does not block it when the main thread already has one pending, so the
               forker is created with SIGALRM blocked (it inherits the mask): blocking it in the forker
               itself left its first instructions open to the handler. */
            sigset_t alarm;
            sigemptyset(&alarm);
            sigaddset(&alarm, SIGALRM);
            pthread_sigmask(SIG_BLOCK, &alarm, NULL);
            pthread_t thread;
            pthread_create(&thread, NULL, forker, NULL);
            pthread_sigmask(SIG_UNBLOCK, &alarm, NULL);
            for (int round = 0; round < 1000; round++) {
                if (!shm_init(NULL, path)) return 4;
                shm_deinit();
            }
            cycling = 0;
            void *failed;
            pthread_join(thread, &failed);
            return failed != NULL ? 5 : handled_elsewhere ? 6 : 0;
        }
        """#

    @Test("a handler's calls during shm_init and shm_deinit fail instead of hanging; children forked meanwhile work")
    func holdOfTheCacheWord() throws {
        let scratch = try ScratchDirectory()
        let program = try Self.compile(Self.holdProgram, in: scratch, flags: Self.linkFlags + ["-pthread"])
        let cachePath = scratch.file("held.shm")
        _ = try SharedCache(path: cachePath, policy: .createIfNeeded(.default))
        let run = try runToEnd(
            "/usr/bin/env", ["-u", "SHM_FILE", program, cachePath], in: scratch, timeout: .seconds(120))
        #expect(
            run.termination == .exited(0),
            "4: shm_init failed, 5: a child failed, 6: the handler ran off the main thread; \(run.outputTail)")
    }

    @Test(
        "scripts/install.sh puts header, library and shm_alloc.pc under a prefix; gcc with pkg-config builds against them"
    )
    func installsWithPkgConfig() throws {
        let scratch = try ScratchDirectory()
        let prefix = scratch.file("prefix")
        let install = try runToEnd(
            BuiltProducts.packageRoot + "/scripts/install.sh", [prefix, BuiltProducts.directory], in: scratch)
        try #require(install.termination == .exited(0), "\(install.outputTail)")
        for installed in ["include/shm_alloc.h", "lib/libshm_alloc.so", "lib/pkgconfig/shm_alloc.pc"] {
            #expect(FileManager.default.fileExists(atPath: prefix + "/" + installed), "\(installed) missing")
        }

        let source = scratch.file("installed.c")
        try Self.startupProgram.write(toFile: source, atomically: true, encoding: .utf8)
        let executable = scratch.file("installed")
        let gcc = try runToEnd(
            "/usr/bin/env",
            [
                "PKG_CONFIG_PATH=" + prefix + "/lib/pkgconfig", "sh", "-c",
                "gcc -Wall -Werror \"$0\" $(pkg-config --cflags --libs shm_alloc) -o \"$1\"", source, executable,
            ],
            in: scratch)
        try #require(gcc.termination == .exited(0), "\(gcc.outputTail)")
        let run = try runToEnd(
            "/usr/bin/env", ["-u", "SHM_FILE", "LD_LIBRARY_PATH=" + prefix + "/lib", executable, "getters"], in: scratch
        )
        #expect(run.termination == .exited(0), "\(run.outputTail)")
        #expect(run.output == "ok\n")
    }
}
