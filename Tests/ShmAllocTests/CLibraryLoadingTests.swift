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

    /// Exits 0 when, at the start of main, the preloaded library has mapped the cache and nothing
    /// has taken memory from malloc (mallinfo2's arena is the heap obtained from the system).
    static let untouchedHeapProgram = #"""
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <malloc.h>

        int main(void) {
            size_t heap = mallinfo2().arena;
            void *(*user_base)(void) = (void *(*)(void))dlsym(RTLD_DEFAULT, "get_shm_user_base");
            if (user_base == NULL || user_base() == NULL) return 2;
            return heap == 0 ? 0 : 3;
        }
        """#

    @Test("the load-time mapping of a ready SHM_FILE leaves the process's malloc alone")
    func loadTimeMappingTouchesNoHeap() throws {
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

    @Test("preloaded with SHM_FILE set, short processes allocate in the file; one that never allocates leaves no trace")
    func preloadedProcessesAllocateInTheFile() throws {
        let scratch = try ScratchDirectory()
        let program = try Self.compile(Self.preloadedProgram, in: scratch, flags: ["-ldl"])
        let cachePath = scratch.file("preloaded.shm")
        let preload = ["LD_PRELOAD=" + Self.library, "SHM_FILE=" + cachePath]
        let idle = try runToEnd("/usr/bin/env", preload + ["/bin/true"], in: scratch)
        try #require(idle.termination == .exited(0), "\(idle.outputTail)")
        let created = try SharedCache(path: cachePath, policy: .attach)
        let tableBefore = OwnerRegistrationTests.identities(created).filter { $0 != 0 }
        #expect(tableBefore.map(OwnerTable.pid(ofIdentity:)) == [getpid()], "only this process, which just attached")

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

    /// The start-up rules of shm_alloc.h. `getters` runs before any mapping; `replace B C` runs
    /// with SHM_FILE set (mapped at load time), then maps B explicitly, then tries C. Includes
    /// nothing but shm_alloc.h, which must bring printf and PRIu_shm_offt with it.
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
            CHECK(argc == 4);
            void *loaded = get_shm_user_base();
            CHECK(loaded != NULL);                     /* $SHM_FILE, mapped before main */
            CHECK(shm_init(NULL, argv[2]));            /* explicit: replaces the load-time mapping */
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
        "getters answer before shm_init; an explicit shm_init replaces the load-time mapping, then refuses another file"
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
