// One open file's reads: each read is served from the shared BlockCache, fetching missing blocks
// on the calling (FUSE) thread, and feeds the file's read-ahead policy, whose prefetches run on
// the shared worker pool. A sequential reader whose caller can take pipes, on a source that can
// fill them, reads ahead through a PipeStream instead (no cache prefetch meanwhile).
// Invariants: the result holds exactly the requested bytes clipped to the object's size, copied
// once from cache buffers or handed over in pipes; a reader's prefetches and streams run only
// while it is open; a stream that failed is not made again for this reader; its state lock is
// never held during a fetch or a copy.
import Foundation

public final class ObjectReader: @unchecked Sendable {
    public let objectKey: String
    public let size: Int64
    private let source: RangeSource
    private let cache: BlockCache
    private let lock = NSLock()
    private var readAhead: ReadAheadWindow
    private var isClosed = false
    private let pipeSource: PipeRangeSource?
    private var pipeStream: PipeStream?
    private var pipeStreamFailed = false
    private let kernelReadAhead: Int64

    /// One per open file handle. objectKey names the content version (node id + etag + size), so
    /// blocks of different versions never mix. `kernelReadAhead` is the mount's kernel read-ahead
    /// window, which bounds how far out of order a buffered reader's reads arrive.
    public init(objectKey: String, size: Int64, source: RangeSource, cache: BlockCache,
                kernelReadAhead: Int64 = 4 << 20) {
        self.objectKey = objectKey
        self.kernelReadAhead = kernelReadAhead
        self.size = max(0, size)
        self.source = source
        self.cache = cache
        self.pipeSource = source as? PipeRangeSource
        self.readAhead = ReadAheadWindow(blockSize: BlockCache.blockSize, maxWindow: cache.maxPrefetchWindow,
                                           kernelReadAhead: kernelReadAhead)
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
    /// With `pipeReply`, a sequential reader's bytes may come as pipes instead (`pipeReply` then
    /// runs instead of `reply`, and must move exactly each segment's count out of its pipe).
    public func read(offset: Int64, length: Int, reply: ([UnsafeRawBufferPointer]) -> Void,
                     pipeReply: (([(fd: Int32, count: Int)]) -> Void)? = nil) throws {
        guard offset >= 0, length > 0, offset < size else { reply([]); return }
        let count = Int(min(Int64(length), size - offset))
        let (sequential, stream) = planReadAhead(offset: offset, length: count, pipes: pipeReply != nil)
        if let stream, let pipeReply, let taken = stream.take(offset: offset, length: count) {
            pipeReply(taken.segments)
            stream.finish(taken)
            cache.notePipeBytes(count)
            return
        }
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
        let stream: PipeStream? = lock.withLock {
            isClosed = true
            defer { pipeStream = nil }
            return pipeStream
        }
        stream?.close()
        cache.cancelPrefetches(owner: ObjectIdentifier(self), abandon: true)
    }

    /// Feeds the read to the read-ahead policy and queues what it plans; true if the reader is
    /// sequential (read-ahead is on for it), and the pipe stream reading ahead for it, if any.
    private func planReadAhead(offset: Int64, length: Int, pipes: Bool) -> (Bool, PipeStream?) {
        lock.lock()
        defer { lock.unlock() }
        guard !isClosed else { return (false, nil) }
        let plan = readAhead.observe(offset: offset, length: Int64(length), objectSize: size)
        let sequential = readAhead.window > 0
        if plan.cancelPending {
            cache.cancelPrefetches(owner: ObjectIdentifier(self), abandon: false)
            pipeStream?.close()
            pipeStream = nil
        }
        if let stream = pipeStream, stream.isFailed {
            stream.close()
            pipeStream = nil
            pipeStreamFailed = true
        }
        if pipes, sequential, pipeStream == nil, !pipeStreamFailed, !PipeStream.pipesRefused,
           let source = pipeSource, source.canFillPipes {
            pipeStream = PipeStream(source: source, cache: cache, objectSize: size, from: offset + Int64(length),
                                            kernelReadAhead: kernelReadAhead)
        }
        // The stream reads ahead; the cache only answers what it cannot.
        if let stream = pipeStream { return (sequential, stream) }
        guard let range = plan.prefetch else { return (sequential, nil) }
        let covered = cache.prefetch(objectKey: objectKey, objectSize: size, range: range,
                                     requestBlocks: plan.requestSize / BlockCache.blockSize,
                                     owner: ObjectIdentifier(self), source: source)
        readAhead.prefetchCovered(upTo: covered)
        return (sequential, nil)
    }
}
