// swift-tools-version: 6.1
import PackageDescription

/// The package's folder: the C library's linker flags name a file in it.
let packageRoot = String(#filePath.dropLast("Package.swift".count))

let package = Package(
    name: "shmtop",
    products: [
        /// The Swift library: create, attach and allocate in a shared cache file.
        .library(name: "ShmAlloc", targets: ["ShmAlloc"]),
        /// The C face: `libshm_alloc.so` with `shm_alloc.h`.
        .library(name: "shm_alloc", type: .dynamic, targets: ["ShmCLibrary"]),
        /// The inspector and its command line.
        .executable(name: "shmtop", targets: ["shmtop"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
    ],
    targets: [
        // File format and buddy-tree math: pure, no I/O. Shared by the allocator and the inspector.
        .target(name: "ShmFormat", exclude: ["README.md"]),
        // What the system layer needs from C: wrappers for what Swift cannot import (variadic
        // `open`, `errno`, `MAP_FAILED`), initial-exec thread-local slots, and the prefetch hint the
        // inspector's owner ledger uses.
        .target(name: "CShmSystem"),
        // The one system layer: typed wrappers over system calls (files, mappings, clocks). Compiles
        // in Embedded Swift too (the C library), so it uses nothing but CShmSystem.
        .target(name: "ShmSystem", dependencies: ["CShmSystem"], exclude: ["README.md"]),
        // The read-write side: creating, mapping and allocating in a cache file. Debug builds (the
        // test build) carry crash points, see CrashPoints.swift; release builds do not.
        .target(
            name: "ShmAlloc",
            dependencies: ["ShmFormat", "ShmSystem", "CShmSystem"],
            exclude: ["README.md"],
            swiftSettings: [.define("SHM_CRASH_POINTS", .when(configuration: .debug))]
        ),
        // The shared path cache: paths and their verdicts in a cache file, lock-free, built on the
        // allocator (see its PathCache.swift). Debug builds carry crash points, as ShmAlloc's do.
        .target(
            name: "ShmPathCache",
            dependencies: ["ShmAlloc", "ShmFormat", "ShmSystem", "CShmSystem"],
            swiftSettings: [.define("SHM_CRASH_POINTS", .when(configuration: .debug))]
        ),
        // `shm_alloc.h` (and the load-time initialiser of the C library).
        .target(name: "CShmAlloc"),
        // The runtime-free C library: `@_cdecl` exports over the allocator, compiled in Embedded
        // Swift together with the allocator's own sources (its folder links to ShmFormat, ShmSystem,
        // ShmAlloc and ShmPathCache), so `libshm_alloc.so` needs nothing but libc. See its Exports.swift.
        .target(
            name: "ShmCLibrary",
            dependencies: ["CShmSystem", "CShmAlloc"],
            exclude: ["exports.map", "README.md", "ShmFormat/README.md", "ShmAlloc/README.md"],
            swiftSettings: [
                .enableExperimentalFeature("Embedded"),
                .unsafeFlags(["-wmo", "-Osize", "-Xfrontend", "-function-sections"]),
            ],
            linkerSettings: [
                // Only shm_alloc.h's functions are exported, and what they do not reach is dropped.
                .unsafeFlags([
                    "-Xlinker", "--version-script=\(packageRoot)Sources/ShmCLibrary/exports.map",
                    "-Xlinker", "--gc-sections",
                    // The library's own objects come from a static arena, not the process's malloc
                    // (see CShmAlloc/shm_runtime_arena.c).
                    "-Xlinker", "--wrap=posix_memalign", "-Xlinker", "--wrap=malloc", "-Xlinker", "--wrap=free",
                ]),
            ]
        ),
        // The read-only inspector: snapshots, statistics, text and JSON reports. Never writes a file.
        .target(
            name: "ShmInspect",
            dependencies: ["ShmFormat", "ShmSystem", "CShmSystem"],
            exclude: ["README.md"]
        ),
        // Workloads and their plumbing, for `shmtop load/demo`, the benchmarks and the tests (not a
        // product): the seedable generator, realistic path names, the load writers and their path
        // checks, stop signals.
        .target(name: "ShmWorkloads", dependencies: ["ShmAlloc", "ShmPathCache", "ShmSystem"], exclude: ["README.md"]),
        // ncursesw (wide characters) with shims for what Swift cannot import; see its shim.h.
        .systemLibrary(name: "CNcurses"),
        // `shmtop watch`: the live ncurses view. Renders what ShmInspect computes; never reads the format itself,
        // so it does not depend on ShmFormat, and MemberImportVisibility keeps it from reading even a member of
        // a format type that ShmInspect hands over.
        .target(
            name: "ShmTUI", dependencies: ["CNcurses", "ShmInspect", "ShmSystem"], exclude: ["README.md"],
            swiftSettings: [.enableUpcomingFeature("MemberImportVisibility")]
        ),
        .executableTarget(
            name: "shmtop",
            dependencies: [
                "ShmFormat", "ShmAlloc", "ShmPathCache", "ShmInspect", "ShmTUI", "ShmSystem", "ShmWorkloads",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["README.md"]
        ),
        // The benchmark suite: `swift run -c release shmbench`.
        .executableTarget(
            name: "shmbench",
            dependencies: [
                "ShmFormat", "ShmAlloc", "ShmInspect", "ShmWorkloads", "ShmPathCache", "ShmSystem",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["README.md"]
        ),
        // Worker processes for the multi-process tests (stress, creation races, signals, heap
        // counting, crash points) and the crash soak.
        .executableTarget(
            name: "shm-test-helper",
            dependencies: [
                "ShmFormat", "ShmAlloc", "ShmInspect", "ShmSystem", "ShmWorkloads", "ShmPathCache",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            exclude: ["README.md"],
            swiftSettings: [.define("SHM_CRASH_POINTS", .when(configuration: .debug))]
        ),
        // The fuzz target (scripts/fuzz.sh builds it with libFuzzer; a plain build replays inputs).
        .executableTarget(name: "shm-fuzz", dependencies: ["ShmFormat", "ShmInspect"], exclude: ["README.md"]),
        // What the test targets share: scratch files, the built products, child processes.
        .target(name: "ShmTestSupport", dependencies: ["ShmAlloc", "ShmFormat", "ShmSystem"], path: "Tests/ShmTestSupport"),
        .testTarget(name: "ShmFormatTests", dependencies: ["ShmFormat", "ShmWorkloads"]),
        // Allocates a given sequence in a cache and exits without freeing: fixtures for the inspector tests.
        .executableTarget(
            name: "shm-inspect-fixture", dependencies: ["ShmFormat", "ShmAlloc", "ShmPathCache", "ShmWorkloads"],
            exclude: ["README.md"]
        ),
        .testTarget(
            name: "ShmInspectTests",
            dependencies: [
                "ShmFormat", "ShmInspect", "ShmAlloc", "ShmPathCache", "ShmSystem", "ShmWorkloads", "ShmTestSupport",
                "shmtop", "shm-inspect-fixture",
            ]
        ),
        // The live view: pure rendering, and `shmtop watch` driven in tmux.
        .testTarget(name: "ShmTUITests", dependencies: ["ShmTUI", "ShmInspect", "ShmFormat", "ShmSystem", "ShmTestSupport", "shmtop", "shm-inspect-fixture"]),
        .testTarget(name: "ShmAllocTests", dependencies: [
            "ShmFormat", "ShmAlloc", "ShmInspect", "ShmSystem", "ShmWorkloads", "ShmPathCache", "ShmTestSupport",
            "shm-test-helper", "shmtop",
        ]),
    ]
)
