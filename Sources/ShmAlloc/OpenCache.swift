// Opening a cache file: attach to a ready one, or create it, race-free across processes.
//
// Creation protocol. Any number of processes may open the same path at once:
// 1. Everyone opens the path (creating an empty file if missing) and reads the header.
//    A ready header is validated and mapped: the common case takes no lock at all.
// 2. Otherwise everyone polls for the file's exclusive `flock`, up to a deadline. The holder
//    re-reads the header: ready → map it; empty file → initialise it; a header left in state
//    `initialising` → its creator died mid-way (the kernel dropped its lock), which is reported.
// 3. The initialiser writes the header page (state `initialising`, its pid), extends the file,
//    marks the null region's blocks full, and only then stores state `ready` with release order.
//
// The lock is taken only while a file is being created; allocation never takes it.

import CShmSystem
import Synchronization

#if !hasFeature(Embedded)  // the C library compiles the core's files as one module
    import ShmFormat
    import ShmSystem
#endif

extension SharedCache {
    /// What to do when the file at a path is missing, empty, or has its own geometry.
    public enum OpenPolicy: Hashable, Sendable {
        /// Attach to an existing, ready cache file; never create one.
        case attach
        /// Create the file with this geometry when it is missing or empty; an existing file is
        /// accepted with whatever geometry it has.
        case createIfNeeded(Geometry)
        /// As `createIfNeeded`, but an existing file must have exactly this geometry.
        case require(Geometry)

        var creationGeometry: Geometry? {
            switch self {
            case .attach: nil
            case .createIfNeeded(let geometry), .require(let geometry): geometry
            }
        }
    }

    /// Opens (or creates) the cache file at `path` and maps it read-write.
    ///
    /// - Parameters:
    ///   - path: the cache file. It is created with mode 0666 (less the umask) when missing.
    ///   - policy: whether to create it, and which geometry an existing file must have.
    ///   - address: map the file at this address, which must not be in use (`MAP_FIXED_NOREPLACE`:
    ///     an existing mapping there fails with `EEXIST` and is left as it was); `nil` lets the
    ///     kernel choose.
    ///   - creationTimeout: how long to wait for another process that is creating the file.
    /// - Throws: ``CacheError``, naming the path and what is wrong with it.
    public convenience init(
        path: String, policy: OpenPolicy = .createIfNeeded(.default),
        address: UnsafeMutableRawPointer? = nil, creationTimeout: Duration = .seconds(5)
    ) throws(CacheError) {
        try self.init(path: path, policy: policy, address: address, creationTimeout: creationTimeout, registering: true)
    }

    /// Opens the cache as the public initialiser does; `registering` false leaves this process's
    /// owner-table entry to its first allocation or free. The C library opens that way: a process
    /// it is preloaded into and that never allocates pays nothing for the table. The Swift
    /// library registers at once, because registering runs generic code, which an unoptimised
    /// build runs through runtime metadata whose lock a signal handler must never wait for; the
    /// C library is Embedded Swift, where every generic is specialised at compile time.
    convenience init(
        path: String, policy: OpenPolicy, address: UnsafeMutableRawPointer?, creationTimeout: Duration,
        registering: Bool
    ) throws(CacheError) {
        ProcessIdentity.prepare()
        let descriptor: FileDescriptor
        do {
            // The file usually exists: opening it without O_CREAT spares the kernel the exclusive
            // lock on the directory that O_CREAT takes even for an existing file (what a process
            // the C library is preloaded into pays at every start).
            do {
                descriptor = try FileDescriptor.open(path, .readWrite, options: [.closeOnExec])
            } catch  where error == .noSuchFileOrDirectory && policy != .attach {
                descriptor = try FileDescriptor.open(
                    path, .readWrite, options: [.create, .closeOnExec], permissions: 0o666)
            }
        } catch {
            throw error == .isDirectory
                ? .notRegularFile(path: path) : .system(SystemCallFailure(path: path, operation: "open", errno: error))
        }
        defer { try? descriptor.close() }

        let status: FileStatus
        do { status = try descriptor.status() } catch {
            throw .system(SystemCallFailure(path: path, operation: "fstat", errno: error))
        }
        guard status.isRegularFile else { throw .notRegularFile(path: path) }
        guard status.hasWritePermission else { throw .readOnlyFile(path: path) }
        #if SHM_CRASH_POINTS
            // No mapping to name yet: any address passes the watched range of a point armed for
            // any cache, as the race test arms it.
            withUnsafePointer(to: status) { crashPoint(.openSizeRead, at: $0) }
        #endif

        let header: FileHeader
        let mapping: UnsafeMutableRawPointer
        if let ready = Self.mapIfReady(descriptor, size: status.size, address: address) {
            (header, mapping) = ready
        } else {
            header = try Self.readyHeader(
                descriptor, path: path, policy: policy, timeout: creationTimeout)
            do {
                mapping = try Mapping.map(descriptor, length: header.layout.fileSize, writable: true, at: address)
            } catch { throw .system(SystemCallFailure(path: path, operation: "mmap", errno: error)) }
        }
        if case .require(let wanted) = policy, wanted != header.geometry {
            try? Mapping.unmap(mapping, length: header.layout.fileSize)
            throw .geometryMismatch(path: path, file: header.geometry, requested: wanted)
        }
        let processMemory: UnsafeMutableRawPointer
        do {
            try Mapping.makeReadOnly(mapping + header.layout.dataOffset, length: header.layout.nullRegionLength)
        } catch {
            try? Mapping.unmap(mapping, length: header.layout.fileSize)
            throw .system(SystemCallFailure(path: path, operation: "mprotect", errno: error))
        }
        do { processMemory = try Mapping.mapZeroed(length: Self.processMemoryLength) } catch {
            try? Mapping.unmap(mapping, length: header.layout.fileSize)
            throw .system(SystemCallFailure(path: path, operation: "mmap", errno: error))
        }
        self.init(path: path, header: header, mapping: mapping, processMemory: processMemory)
        if registering { owners.register() }
    }

    /// The common case, a ready cache file of `size` bytes: mapped, with the header read in the
    /// mapping, whose first page the allocator touches anyway (no `pread`: one system call less
    /// at every start of a process the C library is preloaded into). `nil`, with nothing left
    /// mapped, for anything else (empty, being created, damaged, an address in use), which
    /// `readyHeader` and the mapping after it wait for, create or report.
    private static func mapIfReady(
        _ descriptor: FileDescriptor, size: Int, address: UnsafeMutableRawPointer?
    ) -> (FileHeader, UnsafeMutableRawPointer)? {
        guard size >= FileHeader.Field.end,
            let mapping = try? Mapping.map(descriptor, length: size, writable: true, at: address)
        else { return nil }
        // The header's fields never change once its state word says ready (written last, with
        // release), and decoding checks the file's size against the layout it describes.
        let bytes = UnsafeRawBufferPointer(start: mapping, count: FileHeader.Field.end)
        if let header = try? FileHeader(decoding: bytes, fileSize: size) { return (header, mapping) }
        try? Mapping.unmap(mapping, length: size)
        return nil
    }

    /// The file's header once it is ready, creating the file first when the policy allows it.
    private static func readyHeader(
        _ descriptor: FileDescriptor, path: String, policy: OpenPolicy, timeout: Duration
    ) throws(CacheError) -> FileHeader {
        // A file `mapIfReady` refused may have become ready since; validated without any lock.
        switch try decodeHeader(descriptor, path: path) {
        case .success(let header): return header
        case .failure(.truncatedHeader(size: 0, _)), .failure(.notReady):
            break
        case .failure(let error):
            throw .format(path: path, error)
        }

        let deadline = SystemClock.monotonicNanoseconds() + timeout.wholeNanoseconds
        while true {
            let locked: Bool
            do { locked = try descriptor.tryLockExclusive() } catch {
                throw .system(SystemCallFailure(path: path, operation: "flock", errno: error))
            }
            if locked { break }
            if SystemClock.monotonicNanoseconds() >= deadline {
                let pid = (try? peekCreatorPID(descriptor)) ?? 0
                throw .creationTimedOut(path: path, pid: pid, seconds: Double(timeout.components.seconds))
            }
            SystemClock.sleep(nanoseconds: 1_000_000)
        }
        // The kernel drops the lock with the descriptor, which the caller closes, so a failed
        // unlock leaves nothing behind.
        defer { try? descriptor.unlock() }

        switch try decodeHeader(descriptor, path: path) {
        case .success(let header):
            return header
        case .failure(.truncatedHeader(size: 0, _)):
            guard let geometry = policy.creationGeometry else {
                throw .format(path: path, .truncatedHeader(size: 0, needed: FileHeader.Field.end))
            }
            return try initialise(descriptor, path: path, geometry: geometry)
        case .failure(.notReady(.initialising, let pid)):
            throw .creatorDied(path: path, pid: pid)
        case .failure(let error):
            throw .format(path: path, error)
        }
    }

    /// Reads and decodes the file's header; I/O errors throw, format problems are returned.
    ///
    /// The header first, the size after: a creator sets the file's size before it marks the
    /// header ready, so a header read as ready is checked against the size it was made for. (A
    /// size taken before the read, say by the caller's first fstat of a file still empty, could
    /// be older than the header and fail a ready file as the wrong size.)
    private static func decodeHeader(
        _ descriptor: FileDescriptor, path: String
    ) throws(CacheError) -> Result<FileHeader, FormatError> {
        do {
            return try withUnsafeTemporaryAllocation(byteCount: FileHeader.Field.end, alignment: 8) {
                buffer throws(Errno) in
                let count = try descriptor.read(at: 0, into: buffer)
                let size = try descriptor.status().size
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
                return Result { () throws(FormatError) in try FileHeader(decoding: bytes, fileSize: size) }
            }
        } catch {
            throw .system(SystemCallFailure(path: path, operation: "read", errno: error))
        }
    }

    /// The pid in the state word, for error messages.
    private static func peekCreatorPID(_ descriptor: FileDescriptor) throws(Errno) -> Int32 {
        var stateWord: UInt64 = 0
        _ = try withUnsafeMutableBytes(of: &stateWord) { buffer throws(Errno) in
            try descriptor.read(at: FileHeader.Field.stateWord, into: buffer)
        }
        return Int32(truncatingIfNeeded: UInt64(littleEndian: stateWord) &>> 32)
    }

    /// Turns an empty file into a ready cache file. Called with the file's lock held.
    private static func initialise(
        _ descriptor: FileDescriptor, path: String, geometry: Geometry
    ) throws(CacheError) -> FileHeader {
        let layout: FileLayout
        do { layout = try FileLayout(geometry: geometry, pageSize: Mapping.pageSize) } catch {
            throw .format(path: path, error)
        }
        let header = FileHeader(
            layout: layout, creatorPID: getpid(), createdAtNanoseconds: SystemClock.wallNanoseconds())
        // The header page goes first, in state `initialising`: from here on a creator that dies is
        // recognisable by its pid, never mistaken for an empty file.
        do {
            try withUnsafeTemporaryAllocation(byteCount: layout.headerSize, alignment: 8) { page throws(Errno) in
                page.initializeMemory(as: UInt8.self, repeating: 0)
                header.encode(into: page)
                try descriptor.write(at: 0, from: UnsafeRawBufferPointer(page))
            }
        } catch { throw .system(SystemCallFailure(path: path, operation: "write", errno: error)) }
        do { try descriptor.resize(to: layout.fileSize) } catch {
            throw .system(SystemCallFailure(path: path, operation: "ftruncate", errno: error))
        }

        let mapping: UnsafeMutableRawPointer
        do { mapping = try Mapping.map(descriptor, length: layout.fileSize, writable: true, at: nil) } catch {
            throw .system(SystemCallFailure(path: path, operation: "mmap", errno: error))
        }
        defer { try? Mapping.unmap(mapping, length: layout.fileSize) }
        let words = (mapping + layout.wordsOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
        for block in 0..<layout.nullBlockCount {
            words[block].store(geometry.tree.fullWord, ordering: .relaxed)
        }
        // Every other block is empty: listed under the top class. Plain stores are enough here,
        // the file is not visible as ready before the release store below.
        let indexWords = (mapping + layout.indexOffset).assumingMemoryBound(to: UInt64.self)
        layout.freeIndex.initialise(
            UnsafeMutableBufferPointer(start: indexWords, count: layout.freeIndex.totalWords),
            firstBlock: layout.nullBlockCount)
        // Publishes the words and every header field written above.
        let state = (mapping + FileHeader.Field.stateWord).assumingMemoryBound(to: Atomic<UInt64>.self)
        state.pointee.store(FileHeader.stateWord(.ready, pid: header.creatorPID), ordering: .releasing)

        switch try decodeHeader(descriptor, path: path) {
        case .success(let ready): return ready
        case .failure(let error): throw .format(path: path, error)
        }
    }
}
