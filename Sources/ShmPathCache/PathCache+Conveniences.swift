// Conveniences off the hot path: strings and arrays instead of buffers, and the census of the whole cache.

#if !hasFeature(Embedded)  // the C library will compile these files as one module with the allocator
    import ShmAlloc
    import ShmFormat

    extension PathCache {
        /// ``insert(_:flags:)`` of a string's UTF-8 bytes. Not for signal handlers (strings may allocate).
        public func insert(_ path: String, flags: PathFlags) throws(PathCacheError) {
            var path = path
            try path.withUTF8 { bytes in
                result { () throws(PathCacheError) in try insert(UnsafeRawBufferPointer(bytes), flags: flags) }
            }.get()
        }

        /// ``search(_:)`` of a string's UTF-8 bytes. Not for signal handlers (strings may allocate).
        public func search(_ path: String) throws(PathCacheError) -> PathFlags? {
            var path = path
            return try path.withUTF8 { bytes in
                result { () throws(PathCacheError) in try search(UnsafeRawBufferPointer(bytes)) }
            }.get()
        }

        /// ``insert(_:flags:)`` of an array's bytes. Not for signal handlers (arrays may allocate).
        public func insert(_ path: [UInt8], flags: PathFlags) throws(PathCacheError) {
            try path.withUnsafeBytes { bytes in result { () throws(PathCacheError) in try insert(bytes, flags: flags) }
            }.get()
        }

        /// ``search(_:)`` of an array's bytes. Not for signal handlers (arrays may allocate).
        public func search(_ path: [UInt8]) throws(PathCacheError) -> PathFlags? {
            try path.withUnsafeBytes { bytes in result { () throws(PathCacheError) in try search(bytes) } }.get()
        }

        /// `body`'s result or error as a value: the buffer methods rethrow untyped errors, and a
        /// typed-throws closure passed to them directly crashes the Swift 6.3 compiler.
        private func result<Success>(_ body: () throws(PathCacheError) -> Success) -> Result<Success, PathCacheError> {
            Result(catching: body)
        }

        /// Walks every table and entry (see `PathCacheWalk`), visiting each cached path with its flags.
        public func census(
            _ visit: (_ path: UnsafeRawBufferPointer, _ flags: UInt8, _ depth: Int) -> Void = { _, _, _ in }
        ) -> PathCacheCensus {
            let data = UnsafeRawBufferPointer(start: cache.base, count: cache.geometry.capacity)
            return PathCacheWalk(
                data: data, geometry: cache.geometry, root: rootWord.pointee.load(ordering: .acquiring)
            ).walk(visit)
        }
    }
#endif
