// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "shmtop",
    products: [
        /// The Swift library: create, attach and allocate in a shared cache file.
        .library(name: "ShmAlloc", targets: ["ShmAlloc"]),
        /// The C face: `libshm_alloc.so` with `shm_alloc.h`.
        .library(name: "shm_alloc", type: .dynamic, targets: ["ShmAllocC"]),
        /// The inspector and its command line.
        .executable(name: "shmtop", targets: ["shmtop"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-system", from: "1.8.1"),
        .package(url: "https://github.com/ordo-one/malloc-interposer", from: "1.6.1"),
    ],
    targets: [
        // File format and buddy-tree math: pure, no I/O. Shared by the allocator and the inspector.
        .target(name: "ShmFormat"),
        // What the allocator needs from C: initial-exec thread-local slots.
        .target(name: "CShmSupport"),
        // The read-write side: creating, mapping and allocating in a cache file. Debug builds (the
        // test build) carry crash points, see CrashPoints.swift; release builds do not.
        .target(
            name: "ShmAlloc",
            dependencies: ["ShmFormat", "CShmSupport", .product(name: "SystemPackage", package: "swift-system")],
            swiftSettings: [.define("SHM_CRASH_POINTS", .when(configuration: .debug))]
        ),
        // `shm_alloc.h` (and the load-time initialiser of the C library).
        .target(name: "CShmAlloc"),
        // `@_cdecl` exports: the C ABI over `ShmAlloc`.
        .target(name: "ShmAllocC", dependencies: ["ShmAlloc", "CShmAlloc"]),
        // The read-only inspector: snapshots, statistics, text and JSON reports. Never writes a file.
        .target(
            name: "ShmInspect",
            dependencies: ["ShmFormat", .product(name: "SystemPackage", package: "swift-system")]
        ),
        // ncursesw (wide characters) with shims for what Swift cannot import; see its shim.h.
        .systemLibrary(name: "CNcurses"),
        // `shmtop watch`: the live ncurses view. Renders what ShmInspect computes; never reads the format itself.
        .target(name: "ShmTUI", dependencies: ["CNcurses", "ShmFormat", "ShmInspect"]),
        .executableTarget(
            name: "shmtop",
            dependencies: [
                "ShmFormat", "ShmAlloc", "ShmInspect", "ShmTUI",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // The benchmark suite: `swift run -c release shmbench`.
        .executableTarget(
            name: "shmbench",
            dependencies: [
                "ShmFormat", "ShmAlloc", "ShmInspect",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ]
        ),
        // Worker processes for the multi-process tests (stress, creation races, signals, heap counting).
        .executableTarget(
            name: "shm-test-helper",
            dependencies: [
                "ShmFormat", "ShmAlloc",
                .product(name: "MallocInterposerSwift", package: "malloc-interposer"),
            ],
            swiftSettings: [.define("SHM_CRASH_POINTS", .when(configuration: .debug))]
        ),
        // The fuzz target (scripts/fuzz.sh builds it with libFuzzer; a plain build replays inputs).
        .executableTarget(name: "shm-fuzz", dependencies: ["ShmFormat", "ShmInspect"]),
        .testTarget(name: "ShmFormatTests", dependencies: ["ShmFormat"]),
        // Allocates a given sequence in a cache and exits without freeing: fixtures for the inspector tests.
        .executableTarget(name: "shm-inspect-fixture", dependencies: ["ShmFormat", "ShmAlloc"]),
        .testTarget(
            name: "ShmInspectTests",
            dependencies: ["ShmFormat", "ShmInspect", "ShmAlloc", "shmtop", "shm-inspect-fixture"]
        ),
        // The live view: pure rendering, and `shmtop watch` driven in tmux.
        .testTarget(name: "ShmTUITests", dependencies: ["ShmTUI", "ShmInspect", "ShmFormat", "shmtop", "shm-inspect-fixture"]),
        .testTarget(name: "ShmAllocTests", dependencies: ["ShmFormat", "ShmAlloc", "ShmInspect", "shm-test-helper", "shmtop"]),
    ]
)
