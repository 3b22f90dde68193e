// The guard that lets the inspector map the words of a file another process may truncate: a
// fault inside a guarded range is reported, not fatal; any other SIGBUS is left as fatal as it was.

import ShmSystem
import ShmTestSupport
import Testing

@testable import ShmInspect

#if canImport(Glibc)
    import Glibc
#endif

@Suite("Guarded mappings")
struct GuardedMappingTests {
    /// A file of `pages` pages whose word i holds i + 1, opened read-only.
    static func numberedFile(_ file: TemporaryFile, pages: Int) throws -> FileDescriptor {
        let words = pages * GuardTable.pageSize / 8
        let writer = try FileDescriptor.open(file.path, .writeOnly, options: [.create, .truncate], permissions: 0o600)
        defer { try? writer.close() }
        let numbers = (1...UInt64(words)).map { $0.littleEndian }
        try numbers.withUnsafeBytes { try writer.write(at: 0, from: $0) }
        return try FileDescriptor.open(file.path, .readOnly)
    }

    /// Sums the mapped words of `descriptor`'s file, each loaded once.
    static func sum(_ mapping: GuardedMapping, _ descriptor: FileDescriptor) -> UInt64? {
        mapping.read(descriptor) { words in (0..<mapping.count).reduce(0) { $0 &+ words.word(at: $1) } }
    }

    @Test(
        "reads the file's words; a truncation under the range is reported with the faulting page until the file is mapped afresh"
    )
    func truncationIsReported() throws {
        let file = TemporaryFile("guarded")
        defer { file.remove() }
        let page = GuardTable.pageSize
        let descriptor = try Self.numberedFile(file, pages: 4)
        defer { try? descriptor.close() }
        // Pages 1 ..< 4, as the inspector maps the words after the header page.
        let mapping = try GuardedMapping(descriptor, offset: page, count: 3 * page / 8)
        let first = UInt64(page / 8) + 1
        let count = UInt64(3 * page / 8)
        let whole = count * first + count * (count - 1) / 2
        #expect(Self.sum(mapping, descriptor) == whole)
        #expect(mapping.faultedFileOffset == nil)

        // Cut inside page 2: page 2 reads zeros past the end, page 3 faults.
        #expect(truncate(file.path, off_t(2 * page + 96)) == 0)
        #expect(Self.sum(mapping, descriptor) == nil)
        #expect(mapping.faultedFileOffset == 3 * page)
        // The file grows back: reads still fail, for page 3 of the mapping is a page of zeros ...
        #expect(truncate(file.path, off_t(4 * page)) == 0)
        #expect(Self.sum(mapping, descriptor) == nil)
        // ... until the file is mapped afresh: then it reads the file as it is now (zeros past the cut).
        #expect(mapping.restore(descriptor))
        let kept = UInt64((2 * page + 96) / 8) - UInt64(page / 8)
        #expect(Self.sum(mapping, descriptor) == kept * first + kept * (kept - 1) / 2)

        // Restored while the file is still short, the next read faults and fails again; the
        // lowest faulting page bounds the file's length.
        #expect(truncate(file.path, off_t(page)) == 0)
        mapping.restore(descriptor)
        #expect(Self.sum(mapping, descriptor) == nil)
        #expect(mapping.faultedFileOffset == page)
    }

    @Test("a failed restore abandons the range: reads copy the words from the file and still report a truncation")
    func failedRestore() throws {
        let file = TemporaryFile("guarded-restore")
        defer { file.remove() }
        let page = GuardTable.pageSize
        let descriptor = try Self.numberedFile(file, pages: 2)
        defer { try? descriptor.close() }
        let mapping = try GuardedMapping(descriptor, offset: page, count: page / 8)
        let whole = try #require(Self.sum(mapping, descriptor))
        // A descriptor open for writing only cannot be mapped for reading: `mmap` fails (EACCES).
        let writeOnly = try FileDescriptor.open(file.path, .writeOnly)
        defer { try? writeOnly.close() }
        #expect(!mapping.restore(writeOnly))
        // The range may be unmapped now, so it is never touched again: not even a good descriptor
        // remaps it, and reads go through `pread`.
        #expect(!mapping.restore(descriptor))
        #expect(Self.sum(mapping, descriptor) == whole)
        #expect(mapping.faultedFileOffset == nil)
        #expect(truncate(file.path, off_t(page + 96)) == 0)
        #expect(Self.sum(mapping, descriptor) == nil)
        #expect(truncate(file.path, off_t(2 * page)) == 0)
        // The 12 words before the cut are back (the range starts at word page / 8, which holds
        // page / 8 + 1), zeros after them.
        let first = UInt64(page / 8) + 1
        #expect(Self.sum(mapping, descriptor) == 12 * first + 12 * 11 / 2)
    }

    @Test(
        "a SIGBUS handler installed after the guard: reads copy the words from the file and still report a truncation")
    func laterHandler() async {
        await #expect(processExitsWith: .success) {
            let file = TemporaryFile("guarded-later")
            defer { file.remove() }
            let page = GuardTable.pageSize
            let descriptor = try Self.numberedFile(file, pages: 2)
            let mapping = try GuardedMapping(descriptor, offset: 0, count: 2 * page / 8)
            let whole = try #require(Self.sum(mapping, descriptor))
            #expect(GuardTable.isHandlerInstalled)
            var action = sigaction()
            // A fault reaching this handler means the mapping was read without its guard.
            action.__sigaction_handler.sa_sigaction = { _, _, _ in _exit(43) }
            action.sa_flags = SA_SIGINFO
            sigemptyset(&action.sa_mask)
            sigaction(SIGBUS, &action, nil)
            #expect(!GuardTable.isHandlerInstalled)
            guard Self.sum(mapping, descriptor) == whole else { exit(44) }
            #expect(truncate(file.path, off_t(page)) == 0)
            guard Self.sum(mapping, descriptor) == nil else { exit(45) }
        }
    }

    @Test("a fault in one mapping leaves another mapping's reads alone")
    func faultsStayInTheirRange() throws {
        let cut = TemporaryFile("guarded-cut")
        let kept = TemporaryFile("guarded-kept")
        defer {
            cut.remove()
            kept.remove()
        }
        let page = GuardTable.pageSize
        let cutDescriptor = try Self.numberedFile(cut, pages: 2)
        let keptDescriptor = try Self.numberedFile(kept, pages: 2)
        defer {
            try? cutDescriptor.close()
            try? keptDescriptor.close()
        }
        let cutMapping = try GuardedMapping(cutDescriptor, offset: 0, count: 2 * page / 8)
        let keptMapping = try GuardedMapping(keptDescriptor, offset: 0, count: 2 * page / 8)
        let keptSum = Self.sum(keptMapping, keptDescriptor)
        #expect(truncate(cut.path, 0) == 0)
        #expect(Self.sum(cutMapping, cutDescriptor) == nil)
        #expect(Self.sum(keptMapping, keptDescriptor) == keptSum && keptSum != nil)
        #expect(keptMapping.faultedFileOffset == nil)
    }

    /// Whether a child ended as a death by SIGBUS: the signal itself or, under a sanitizer (whose
    /// handler was installed before ours and reports deadly signals), its exit code (1 for
    /// AddressSanitizer, 66 for ThreadSanitizer) after a report that names the signal.
    static func isBusErrorDeath(_ result: ExitTest.Result?) -> Bool {
        guard let result else { return false }
        func linked(_ symbol: String) -> Bool { dlsym(UnsafeMutableRawPointer(bitPattern: 0), symbol) != nil }
        let sanitizerExitCode: Int32? = linked("__asan_init") ? 1 : linked("__tsan_init") ? 66 : nil
        if let sanitizerExitCode, result.exitStatus == .exitCode(sanitizerExitCode) {
            return String(decoding: result.standardErrorContent, as: UTF8.self).contains("BUS")
        }
        return result.exitStatus == .signal(SIGBUS)
    }

    /// Installs the guard over one range of a file, then reads a page of an unguarded mapping of
    /// the same file after cutting it: a SIGBUS the guard must leave alone.
    static func faultOutsideTheGuard() throws {
        let file = TemporaryFile("unguarded")
        let page = GuardTable.pageSize
        let descriptor = try numberedFile(file, pages: 2)
        let guarded = try GuardedMapping(descriptor, offset: 0, count: page / 8)
        _ = sum(guarded, descriptor)
        let unguarded = mmap(nil, 2 * page, PROT_READ, MAP_SHARED, descriptor.rawValue, 0)!
        #expect(truncate(file.path, 0) == 0)
        file.remove()
        print(unguarded.load(fromByteOffset: page, as: UInt64.self))
    }

    @Test("a SIGBUS outside every guarded range still ends the process")
    func unguardedFaultStillFatal() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.exitStatus, \.standardErrorContent]) {
            try Self.faultOutsideTheGuard()
        }
        #expect(Self.isBusErrorDeath(result), "\(String(describing: result?.exitStatus))")
    }

    @Test("a SIGBUS handler installed before the guard still gets the faults that are not the guard's")
    func previousHandlerCalled() async {
        await #expect(processExitsWith: .exitCode(42)) {
            var action = sigaction()
            action.__sigaction_handler.sa_sigaction = { _, info, _ in
                // Only a fault (not a signal sent) with an address is what this test makes.
                _exit(info.map { $0.pointee.si_code > 0 } == true ? 42 : 43)
            }
            action.sa_flags = SA_SIGINFO
            sigemptyset(&action.sa_mask)
            sigaction(SIGBUS, &action, nil)
            try Self.faultOutsideTheGuard()
        }
    }

    @Test("a SIGBUS sent by a process still ends it, even with a fault address inside a guarded range")
    func sentSignalStillFatal() async {
        let result = await #expect(processExitsWith: .failure, observing: [\.exitStatus, \.standardErrorContent]) {
            let file = TemporaryFile("sent")
            let descriptor = try Self.numberedFile(file, pages: 1)
            file.remove()
            let guarded = try GuardedMapping(descriptor, offset: 0, count: GuardTable.pageSize / 8)
            _ = Self.sum(guarded, descriptor)
            kill(getpid(), SIGBUS)
            // The signal is delivered before `kill` returns; staying alive means it was swallowed.
            sleep(5)
        }
        #expect(Self.isBusErrorDeath(result), "\(String(describing: result?.exitStatus))")
    }
}
