// One open file's reads: each read is served from the shared BlockCache, fetching missing blocks
// on the calling (FUSE) thread, and feeds the file's read-ahead policy, whose prefetches run on
// the shared worker pool. Invariants: the result holds exactly the requested bytes clipped to the
// object's size, copied once from cache buffers; a reader's prefetches are queued only while it is
// open; its state lock is never held during a fetch or a copy.
import Foundation

public final class ObjectReader: @unchecked Sendable {
    public let objectKey: String
    public let size: Int64
    private let source: RangeSource
    private let cache: BlockCache
    private let lock = NSLock()
    private var readAhead: ReadPathReadAhead
    private var isClosed = false

    /// One per open file handle. objectKey names the content version (node id + etag + size), so
    /// blocks of different versions never mix.
    public init(objectKey: String, size: Int64, source: RangeSource, cache: BlockCache) {
        self.objectKey = objectKey
        self.size = max(0, size)
        self.source = source
        self.cache = cache
        self.readAhead = ReadPathReadAhead(blockSize: BlockCache.blockSize, maxWindow: cache.maxPrefetchWindow)
    }

    deinit { close() }

    /// Up to `length` bytes from `offset`, fewer only at the end of the object.
    public func read(offset: Int64, length: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        try read(offset: offset, length: length) { bytes = [UInt8](joining: $0) }
        return bytes
    }

    /// Up to `length` bytes from `offset` (fewer only at the end of the object), handed to
    /// `reply` straight from the block cache when they are there (valid only during the call);
    /// `reply` runs exactly once unless this throws.
    public func read(offset: Int64, length: Int, reply: ([UnsafeRawBufferPointer]) -> Void) throws {
        guard offset >= 0, length > 0, offset < size else { reply([]); return }
        let count = Int(min(Int64(length), size - offset))
        let sequential = planReadAhead(offset: offset, length: count)
        if try cache.withPinnedRange(objectKey: objectKey, objectSize: size, offset: offset, length: count,
                                     source: source, dropBehind: sequential, body: reply) { return }
        let bytes = try [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            try cache.read(objectKey: objectKey, objectSize: size, offset: offset,
                           into: UnsafeMutableRawBufferPointer(buffer), source: source)
            initialized = count
        }
        bytes.withUnsafeBytes { reply([$0]) }
    }

    /// Stops its prefetches; later reads are not expected.
    public func close() {
        lock.withLock { isClosed = true }
        cache.cancelPrefetches(owner: ObjectIdentifier(self), abandon: true)
    }

    /// Feeds the read to the read-ahead policy and queues what it plans; true if the reader is
    /// sequential (read-ahead is on for it).
    private func planReadAhead(offset: Int64, length: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { return false }
        let plan = readAhead.observe(offset: offset, length: Int64(length), objectSize: size)
        let sequential = readAhead.window > 0
        if plan.cancelPending { cache.cancelPrefetches(owner: ObjectIdentifier(self), abandon: false) }
        guard let range = plan.prefetch else { return sequential }
        let covered = cache.prefetch(objectKey: objectKey, objectSize: size, range: range,
                                     requestBlocks: plan.requestSize / BlockCache.blockSize,
                                     owner: ObjectIdentifier(self), source: source)
        readAhead.prefetchCovered(upTo: covered)
        return sequential
    }
}
