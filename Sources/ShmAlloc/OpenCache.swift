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

#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif
import ShmFormat
import Synchronization
import SystemPackage

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
        ProcessIdentity.prepare()
        let options: FileDescriptor.OpenOptions = policy == .attach ? [.closeOnExec] : [.create, .closeOnExec]
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(
                FilePath(path), .readWrite, options: options, permissions: [.ownerReadWrite, .groupReadWrite, .otherReadWrite])
        } catch let error as Errno {
            throw error == .isDirectory ? .notRegularFile(path: path) : .system(path: path, operation: "open", errno: error)
        } catch {
            throw .system(path: path, operation: "open", errno: .ioError)
        }
        defer { try? descriptor.close() }

        let status: Stat
        do { status = try descriptor.stat() } catch { throw .system(path: path, operation: "fstat", errno: error) }
        guard status.type == .regular else { throw .notRegularFile(path: path) }
        guard !status.permissions.isDisjoint(with: [.ownerWrite, .groupWrite, .otherWrite]) else {
            throw .readOnlyFile(path: path)
        }

        let header = try Self.readyHeader(descriptor, path: path, policy: policy, timeout: creationTimeout)
        if case .require(let wanted) = policy, wanted != header.geometry {
            throw .geometryMismatch(path: path, file: header.geometry, requested: wanted)
        }
        let mapping: UnsafeMutableRawPointer
        do {
            mapping = try Mapping.map(descriptor, length: header.layout.fileSize, writable: true, at: address)
        } catch { throw .system(path: path, operation: "mmap", errno: error) }
        do {
            try Mapping.makeReadOnly(mapping + header.layout.dataOffset, length: header.layout.nullRegionLength)
        } catch {
            Mapping.unmap(mapping, length: header.layout.fileSize)
            throw .system(path: path, operation: "mprotect", errno: error)
        }
        self.init(path: path, header: header, mapping: mapping)
    }

    /// The file's header once it is ready, creating the file first when the policy allows it.
    private static func readyHeader(
        _ descriptor: FileDescriptor, path: String, policy: OpenPolicy, timeout: Duration
    ) throws(CacheError) -> FileHeader {
        // The common case: a ready file, validated without any lock.
        switch try decodeHeader(descriptor, path: path) {
        case .success(let header): return header
        case .failure(.truncatedHeader(size: 0, _)), .failure(.notReady):
            break
        case .failure(let error):
            throw .format(path: path, error)
        }

        let deadline = ContinuousClock.now + timeout
        while true {
            let locked: Bool
            do { locked = try descriptor.tryLockExclusive() } catch {
                throw .system(path: path, operation: "flock", errno: error)
            }
            if locked { break }
            if ContinuousClock.now >= deadline {
                let pid = (try? peekCreatorPID(descriptor)) ?? 0
                throw .creationTimedOut(path: path, pid: pid, seconds: Double(timeout.components.seconds))
            }
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&pause, nil)
        }
        defer { descriptor.unlock() }

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

    /// Reads and decodes the header; I/O errors throw, format problems are returned.
    private static func decodeHeader(
        _ descriptor: FileDescriptor, path: String
    ) throws(CacheError) -> Result<FileHeader, FormatError> {
        do {
            let size = Int(try descriptor.stat().size)
            return try withUnsafeTemporaryAllocation(byteCount: FileHeader.Field.end, alignment: 8) { buffer throws(Errno) in
                let count = try descriptor.readFully(at: 0, into: buffer)
                let bytes = UnsafeRawBufferPointer(rebasing: buffer[..<count])
                return Result { () throws(FormatError) in try FileHeader(decoding: bytes, fileSize: size) }
            }
        } catch {
            throw .system(path: path, operation: "read", errno: error)
        }
    }

    /// The pid in the state word, for error messages.
    private static func peekCreatorPID(_ descriptor: FileDescriptor) throws(Errno) -> Int32 {
        var stateWord: UInt64 = 0
        _ = try withUnsafeMutableBytes(of: &stateWord) { buffer throws(Errno) in
            try descriptor.readFully(at: FileHeader.Field.stateWord, into: buffer)
        }
        return Int32(truncatingIfNeeded: UInt64(littleEndian: stateWord) &>> 32)
    }

    /// Turns an empty file into a ready cache file. Called with the file's lock held.
    private static func initialise(
        _ descriptor: FileDescriptor, path: String, geometry: Geometry
    ) throws(CacheError) -> FileHeader {
        let layout: FileLayout
        do { layout = try FileLayout(geometry: geometry, pageSize: systemPageSize) } catch {
            throw .format(path: path, error)
        }
        let header = FileHeader(layout: layout, creatorPID: getpid(), createdAtNanoseconds: wallClockNanoseconds())
        // The header page goes first, in state `initialising`: from here on a creator that dies is
        // recognisable by its pid, never mistaken for an empty file.
        do {
            try withUnsafeTemporaryAllocation(byteCount: layout.headerSize, alignment: 8) { page throws(Errno) in
                page.initializeMemory(as: UInt8.self, repeating: 0)
                header.encode(into: page)
                var written = 0
                while written < page.count {
                    let count = pwrite(descriptor.rawValue, page.baseAddress! + written, page.count - written, off_t(written))
                    if count < 0 {
                        if errno == EINTR { continue }
                        throw Errno(rawValue: errno)
                    }
                    written += count
                }
            }
        } catch { throw .system(path: path, operation: "write", errno: error) }
        do { try descriptor.resize(to: Int64(layout.fileSize)) } catch let error as Errno {
            throw .system(path: path, operation: "ftruncate", errno: error)
        } catch { throw .system(path: path, operation: "ftruncate", errno: .ioError) }

        let mapping: UnsafeMutableRawPointer
        do { mapping = try Mapping.map(descriptor, length: layout.fileSize, writable: true, at: nil) } catch {
            throw .system(path: path, operation: "mmap", errno: error)
        }
        defer { Mapping.unmap(mapping, length: layout.fileSize) }
        let words = (mapping + layout.wordsOffset).assumingMemoryBound(to: Atomic<UInt64>.self)
        for block in 0..<layout.nullBlockCount {
            words[block].store(geometry.tree.fullWord, ordering: .relaxed)
        }
        // Every other block is empty: listed under the top class. Plain stores are enough here,
        // the file is not visible as ready before the release store below.
        let indexWords = (mapping + layout.indexOffset).assumingMemoryBound(to: UInt64.self)
        layout.freeIndex.initialise(
            UnsafeMutableBufferPointer(start: indexWords, count: layout.freeIndex.totalWords), firstBlock: layout.nullBlockCount)
        // Publishes the words and every header field written above.
        let state = (mapping + FileHeader.Field.stateWord).assumingMemoryBound(to: Atomic<UInt64>.self)
        state.pointee.store(FileHeader.stateWord(.ready, pid: header.creatorPID), ordering: .releasing)

        switch try decodeHeader(descriptor, path: path) {
        case .success(let ready): return ready
        case .failure(let error): throw .format(path: path, error)
        }
    }
}
