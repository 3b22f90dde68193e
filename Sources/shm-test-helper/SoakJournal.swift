// The journal of a crash-soak writer (see Soak.swift): what a killed writer held, kept by the kernel.

import ShmSystem
import Synchronization

/// The journal of one soak writer: a page of atomic 64-bit fields in a file.
struct SoakJournal {
    enum Field: Int, CaseIterable {
        case pid, heldBytes, pendingKind, pendingHeldBytes, operations, verifications, mismatches, finished, errors, go,
            heldCount
    }
    /// Where the offsets of the held allocations start (one word each, in the writer's order): for
    /// diagnosing a discrepancy, not for the checks.
    static let slotsOffset = 1024
    static let slotCount = (size - slotsOffset) / 8
    enum Pending: UInt64 {
        case none = 0
        case allocation = 1
        case free = 2
    }

    let path: String
    private let base: UnsafeMutableRawPointer
    static let size = 4096

    /// A journal that cannot be opened or mapped: the path, the call and its `errno`.
    struct Failure: Error, CustomStringConvertible {
        let path: String, operation: String, errno: Errno
        var description: String { "\(path): \(operation): \(errno)" }
    }

    /// Maps `path`, creating it (zeroed) when `creating`.
    init(path: String, creating: Bool) throws(Failure) {
        self.path = path
        let descriptor: FileDescriptor
        do {
            descriptor = try FileDescriptor.open(path, .readWrite, options: creating ? [.create, .truncate] : [])
        } catch { throw Failure(path: path, operation: "open", errno: error) }
        defer { try? descriptor.close() }
        do {
            if creating { try descriptor.resize(to: Self.size) }
        } catch { throw Failure(path: path, operation: "ftruncate", errno: error) }
        do { base = try Mapping.map(descriptor, length: Self.size, writable: true) } catch {
            throw Failure(path: path, operation: "mmap", errno: error)
        }
    }

    /// Unmaps the journal (the file stays for the soak to read).
    func unmap() { try? Mapping.unmap(base, length: Self.size) }

    private func field(_ field: Field) -> UnsafeMutablePointer<Atomic<UInt64>> {
        (base + field.rawValue * 8).assumingMemoryBound(to: Atomic<UInt64>.self)
    }
    subscript(_ name: Field) -> UInt64 {
        get { field(name).pointee.load(ordering: .acquiring) }
        nonmutating set { field(name).pointee.store(newValue, ordering: .releasing) }
    }
    func increment(_ name: Field) { field(name).pointee.add(1, ordering: .releasing) }

    /// The offset in slot `index` (the writer's `held[index]`).
    subscript(slot index: Int) -> UInt64 {
        get {
            (base + Self.slotsOffset + index * 8).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.load(
                ordering: .acquiring)
        }
        nonmutating set {
            (base + Self.slotsOffset + index * 8).assumingMemoryBound(to: Atomic<UInt64>.self).pointee.store(
                newValue, ordering: .releasing)
        }
    }
    /// The offsets the writer held, as far as the slots say.
    var heldOffsets: Set<UInt64> { Set((0..<min(Int(self[.heldCount]), Self.slotCount)).map { self[slot: $0] }) }

    /// Records an operation about to change the held bytes to `heldAfter`.
    func begin(_ kind: Pending, heldAfter: Int) {
        self[.pendingHeldBytes] = UInt64(heldAfter)
        self[.pendingKind] = kind.rawValue
    }
    /// Records that the operation is done (or failed) and the writer now holds `held` bytes.
    func commit(held: Int) {
        self[.heldBytes] = UInt64(held)
        self[.pendingKind] = Pending.none.rawValue
    }

    /// The byte totals a dead writer may have held: the committed one, and the pending one.
    var possibleHeldBytes: Set<Int> {
        var possible: Set<Int> = [Int(self[.heldBytes])]
        if self[.pendingKind] != Pending.none.rawValue { possible.insert(Int(self[.pendingHeldBytes])) }
        return possible
    }
}
