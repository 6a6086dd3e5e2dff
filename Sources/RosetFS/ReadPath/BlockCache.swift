// The memory cache of object content shared by every open file, and the fetches that fill it.
//
// Content is addressed by (objectKey, block) with 128 KiB blocks; a cache entry is an extent of
// one or more whole blocks fetched by one range request (a demand read fetches up to 1 MiB, a
// prefetch up to 8 MiB), so large transfers are few requests while a random page-aligned 4 KiB
// read costs one block.
//
// Invariants (all under `lock`; no lock is held during a fetch or a copy):
// - Memory: every buffer the cache owns is counted, from reservation (before the fetch starts)
//   to munmap. Normal extents (queued, loading, ready, or detached but still pinned), the free
//   buffer list and the external charges (pipe read-ahead) never exceed `capacityBytes`. Overflow extents, used only when a demand read finds
//   every byte pinned or in flight, never exceed `overflowLimit` and are freed as soon as their
//   readers have copied from them. So the cache holds at most capacityBytes + overflowLimit.
// - `residentBytes` (ready, indexed, normal extents) never exceeds `capacityBytes`.
// - A block is covered by at most one indexed extent, so concurrent readers of a block share one
//   fetch. A failed fetch is never indexed. Reads waiting on a failed demand fetch get its error;
//   reads waiting on (or that claimed) a failed prefetch fetch again on demand.
// - Read-ahead may evict only extents that have been read (or abandoned): one file's prefetch does
//   not throw away another's before it is used. A demand read may evict anything unpinned and
//   cancel queued prefetches, so it always makes progress.
// - Drop-behind: an extent a sequential reader has read to its end is the first memory reused,
//   before the cache maps more. A stream then cycles through about its read-ahead window of
//   memory instead of filling the whole capacity with bytes it has passed (which the kernel's page
//   cache holds anyway, unless direct_io), and fresh memory, a page fault and a page clear per
//   page, is rare. The cost: a second reader trailing the first by more than that re-fetches.
import Foundation
import Metrics
import RosetMetrics

public final class BlockCache: @unchecked Sendable {
    /// The unit of addressing and the smallest fetch. 128 KiB is the kernel's default FUSE read
    /// size (32 pages), so a kernel read maps to whole blocks with no over-fetch, and a random
    /// 4 KiB read downloads at most 128 KiB, whose transfer time at GB/s (~0.1 ms) is below the
    /// latency of the request itself. Sequential throughput does not depend on it: prefetch
    /// requests span many blocks.
    static let blockSize: Int64 = 128 * 1024
    /// Largest single fetch made by a demand read (the kernel's largest FUSE read).
    static let maxDemandBlocks: Int64 = 8
    /// Memory a demand read may use beyond the capacity when every cached byte is pinned or in
    /// flight: the fixed overhead of the memory bound.
    static let overflowLimit = 2 * 1024 * 1024

    public let capacityBytes: Int
    private let pool: FetchWorkerPool
    private let lock = NSCondition()

    private var index: [String: [Int64: CachedExtent]] = [:]
    private var lruOldest: CachedExtent?
    private var lruNewest: CachedExtent?
    /// Recycled buffers by size: mmap'd memory that is already paged in. Counted as used.
    private var freeBuffers: [Int: [UnsafeMutableRawBufferPointer]] = [:]
    private var freeBytes = 0
    private var normalBytes = 0
    private var overflowBytes = 0
    private var residentBytesValue = 0
    private var peakUsed = 0
    private var freshlyMapped = 0
    private var peakResident = 0
    private var prefetchRequests = 0
    private var pipeBytes: Int64 = 0
    private var externalBytes = 0
    /// Extents read to their end by sequential readers, oldest first; entries evicted since by
    /// other means are dropped lazily.
    private var consumed: [CachedExtent] = []
    /// Extents each reader prefetched that may still be queued or unread.
    private var prefetchedByOwner: [ObjectIdentifier: [CachedExtent]] = [:]

    public init(capacityBytes: Int) {
        self.capacityBytes = max(0, capacityBytes)
        self.pool = .shared
    }

    /// With a pool of its own, for tests that need prefetches to stay queued.
    init(capacityBytes: Int, pool: FetchWorkerPool) {
        self.capacityBytes = max(0, capacityBytes)
        self.pool = pool
    }

    deinit {
        // Nothing is in flight: fetches and pool tasks hold a reference to the cache.
        var seen = Set<ObjectIdentifier>()
        for blocks in index.values {
            for extent in blocks.values where seen.insert(ObjectIdentifier(extent)).inserted {
                if let buffer = extent.buffer { ExtentMemory.free(buffer) }
                extent.buffer = nil
                extent.olderInLRU = nil
                extent.newerInLRU = nil
            }
        }
        for buffers in freeBuffers.values { buffers.forEach(ExtentMemory.free) }
    }

    /// Bytes of content held ready in the cache.
    public var residentBytes: Int { lock.withLock { residentBytesValue } }

    /// Drops every block of that object version. Fetches in flight finish but are not cached.
    public func invalidate(objectKey: String) {
        lock.lock()
        defer { lock.unlock() }
        guard let blocks = index.removeValue(forKey: objectKey) else { return }
        var seen = Set<ObjectIdentifier>()
        for extent in blocks.values where seen.insert(ObjectIdentifier(extent)).inserted {
            extent.isIndexed = false
            switch extent.state {
            case .queued: release(extent)
            case .ready:
                if !extent.isOverflow { removeFromLRU(extent); residentBytesValue -= extent.allocation }
                if extent.pins == 0 { release(extent) }
            case .loading, .failed, .released: break
            }
        }
        lock.broadcast()
    }

    // MARK: Numbers for tests and status views

    /// Every byte the cache owns now: reserved, in flight, ready, pinned, recycled, overflow.
    var usedBytes: Int { lock.withLock { normalBytes + freeBytes + overflowBytes } }
    var peakUsedBytes: Int { lock.withLock { peakUsed } }
    /// Bytes reserved for extents (queued, loading, ready, pinned, overflow): used minus recycled.
    var reservedBytes: Int { lock.withLock { normalBytes + overflowBytes } }
    /// Bytes of new mappings ever made for extents (the rest reused recycled memory).
    var freshlyMappedBytes: Int { lock.withLock { freshlyMapped } }
    var peakResidentBytes: Int { lock.withLock { peakResident } }
    /// Prefetch requests ever queued.
    var prefetchRequestCount: Int { lock.withLock { prefetchRequests } }
    /// Prefetch extents waiting for a pool worker.
    var queuedPrefetchCount: Int {
        lock.withLock { prefetchedByOwner.values.reduce(0) { $0 + $1.filter { $0.state == .queued }.count } }
    }

    /// The largest read-ahead window a reader may use: a quarter of the cache, at most 64 MiB, in
    /// whole blocks (0 disables read-ahead for caches under 512 KiB).
    var maxPrefetchWindow: Int64 {
        let quarter = Int64(capacityBytes / 4) / Self.blockSize * Self.blockSize
        return min(64 * 1024 * 1024, quarter)
    }

    // MARK: Demand reads

    /// Fills `destination` with bytes [offset, offset + destination.count) of the object, which
    /// must lie within it, from cached blocks and fetching what is missing on this thread.
    func read(objectKey: String, objectSize: Int64, offset: Int64, into destination: UnsafeMutableRawBufferPointer,
              source: RangeSource) throws {
        let end = offset + Int64(destination.count)
        let lastBlock = (end - 1) / Self.blockSize
        var position = offset
        var fetched = false
        defer { Self.countLookup(fetched: fetched) }
        lock.lock()
        while position < end {
            let block = position / Self.blockSize
            let extent: CachedExtent
            if let found = index[objectKey]?[block] {
                switch found.state {
                case .ready:
                    pinForReading(found)
                    lock.unlock()
                    position = copy(from: found, position: position, end: end, into: destination, offset: offset)
                    lock.lock()
                    unpin(found)
                    continue
                case .loading:
                    while found.state == .loading { lock.wait() }
                    if found.state == .failed, !found.isPrefetch, let error = found.error {
                        lock.unlock()
                        throw error
                    }
                    continue
                case .queued:
                    claimQueued(found)
                    extent = found
                case .failed, .released:
                    preconditionFailure("dead extents are never indexed")
                }
            } else if let reserved = reserveDemandExtent(objectKey: objectKey, objectSize: objectSize,
                                                         firstBlock: block, lastBlock: lastBlock) {
                extent = reserved
            } else {
                lock.wait()  // every byte is pinned or in flight: wait for one to be released
                continue
            }
            lock.unlock()
            fetched = true
            do {
                try fetch(extent, from: source, pinForCaller: true)
            } catch where extent.isPrefetch {
                lock.lock()
                continue
            }
            position = copy(from: extent, position: position, end: end, into: destination, offset: offset)
            lock.lock()
            unpin(extent)
        }
        lock.unlock()
    }

    /// Calls `body` with the cached memory of bytes [offset, offset + length) of the object, one
    /// buffer per extent, valid only during the call, and returns true. Blocks that are missing are
    /// fetched on this thread into extents of the cache, which are then handed over like the rest.
    /// Returns false without calling `body` only when memory is short (every byte pinned or in
    /// flight, the overflow allowance used up); the caller then reads by copy, which waits for
    /// memory. Saves the copy into a reply buffer, a third of the daemon's work per byte on a
    /// sequential read, and the reply buffers themselves: with the kernel reading 4 MiB ahead, a
    /// 1 MiB buffer per FUSE thread held tens of MiB. Memory is reserved while pins are held only
    /// if it is free or evictable right away, and waits are only for fetches in flight, never
    /// for memory: holding pins cannot starve anyone. `dropBehind` (a sequential reader) marks the
    /// extents this read finishes as consumed.
    func withPinnedRange(objectKey: String, objectSize: Int64, offset: Int64, length: Int, source: RangeSource,
                         dropBehind: Bool = false, body: ([UnsafeRawBufferPointer]) -> Void) throws -> Bool {
        let end = offset + Int64(length)
        let lastBlock = (end - 1) / Self.blockSize
        var pinned: [CachedExtent] = []
        func unpinAll() { for extent in pinned { unpin(extent) } }
        var position = offset
        var fetched = false
        defer { Self.countLookup(fetched: fetched) }
        lock.lock()
        while position < end {
            guard let found = index[objectKey]?[position / Self.blockSize] else {
                guard let extent = reserveDemandExtent(objectKey: objectKey, objectSize: objectSize,
                                                       firstBlock: position / Self.blockSize, lastBlock: lastBlock) else {
                    unpinAll()
                    lock.unlock()
                    return false
                }
                lock.unlock()
                fetched = true
                do {
                    try fetch(extent, from: source, pinForCaller: true)
                } catch {
                    lock.lock()
                    unpinAll()
                    lock.unlock()
                    throw error
                }
                lock.lock()
                pinned.append(extent)
                position = min(end, extent.end)
                continue
            }
            switch found.state {
            case .ready:
                pinForReading(found)
                pinned.append(found)
                position = min(end, found.end)
            case .loading:
                while found.state == .loading { lock.wait() }
            case .queued:
                claimQueued(found)
                lock.unlock()
                // A failed prefetch is dropped from the index: the next look fetches the block on
                // demand, which reports the error.
                try? fetch(found, from: source, pinForCaller: false)
                lock.lock()
            case .failed, .released:
                preconditionFailure("dead extents are never indexed")
            }
        }
        lock.unlock()
        var buffers: [UnsafeRawBufferPointer] = []
        buffers.reserveCapacity(pinned.count)
        var start = offset
        for extent in pinned {
            let from = Int(start - extent.start)
            let count = Int(min(end, extent.end) - start)
            buffers.append(UnsafeRawBufferPointer(rebasing: UnsafeRawBufferPointer(extent.buffer!)[from..<from + count]))
            start += Int64(count)
        }
        body(buffers)
        lock.lock()
        if dropBehind {
            for extent in pinned where end >= extent.end && !extent.isOverflow && !extent.isConsumed {
                extent.isConsumed = true
                consumed.append(extent)
            }
        }
        unpinAll()
        lock.unlock()
        return true
    }

    /// A read served from blocks already here is a hit; one that fetched a block a miss.
    private static func countLookup(fetched: Bool) {
        Counter(label: fetched ? RosetMetricNames.blockCacheMisses : RosetMetricNames.blockCacheHits).increment()
    }

    private func copy(from extent: CachedExtent, position: Int64, end: Int64,
                      into destination: UnsafeMutableRawBufferPointer, offset: Int64) -> Int64 {
        let copyEnd = min(end, extent.end)
        let count = Int(copyEnd - position)
        let from = extent.buffer!.baseAddress! + Int(position - extent.start)
        let to = destination.baseAddress! + Int(position - offset)
        to.copyMemory(from: from, byteCount: count)
        return copyEnd
    }

    /// A loading extent for the missing blocks from `firstBlock` (up to 1 MiB, not past
    /// `lastBlock` or a cached block), within the capacity if at all possible, else from the
    /// overflow allowance; nil if neither has room for one block.
    private func reserveDemandExtent(objectKey: String, objectSize: Int64, firstBlock: Int64,
                                     lastBlock: Int64) -> CachedExtent? {
        var count: Int64 = 1
        while count < Self.maxDemandBlocks, firstBlock + count <= lastBlock, index[objectKey]?[firstBlock + count] == nil {
            count += 1
        }
        if let extent = reserveNormal(objectKey: objectKey, objectSize: objectSize,
                                      firstBlock: firstBlock, blockCount: count, mayEvictSpeculative: true,
                                      state: .loading, isPrefetch: false) {
            return extent
        }
        cancelQueuedPrefetches(owner: nil)
        if let extent = reserveNormal(objectKey: objectKey, objectSize: objectSize, firstBlock: firstBlock,
                                      blockCount: count, mayEvictSpeculative: true, state: .loading, isPrefetch: false) {
            return extent
        }
        let overflowBlocks = Int64(Self.overflowLimit - overflowBytes) / Self.blockSize
        guard overflowBlocks >= 1 else { return nil }
        let extent = makeExtent(objectKey: objectKey, objectSize: objectSize, firstBlock: firstBlock,
                                blockCount: min(count, overflowBlocks), isOverflow: true, state: .loading, isPrefetch: false)
        overflowBytes += extent.allocation
        notePeaks()
        insertInIndex(extent)
        return extent
    }

    // MARK: Read-ahead

    /// Queues fetches of the missing blocks of byte range `range` (block-aligned start) in requests
    /// of up to `requestBlocks` blocks, within the capacity without evicting unread prefetched
    /// data. Returns the byte offset up to which the range is now cached, in flight or queued.
    func prefetch(objectKey: String, objectSize: Int64, range: Range<Int64>, requestBlocks: Int64,
                  owner: ObjectIdentifier, source: RangeSource) -> Int64 {
        let endBlock = (min(range.upperBound, objectSize) + Self.blockSize - 1) / Self.blockSize
        var block = range.lowerBound / Self.blockSize
        var queued: [CachedExtent] = []
        lock.lock()
        var owned = prefetchedByOwner[owner, default: []]
        owned.removeAll { !$0.isSpeculative || $0.state == .released || $0.state == .failed }
        while block < endBlock {
            if let present = index[objectKey]?[block] {
                block = present.endBlock
                continue
            }
            var count: Int64 = 1
            while count < requestBlocks, block + count < endBlock, index[objectKey]?[block + count] == nil { count += 1 }
            guard let extent = reserveNormal(objectKey: objectKey, objectSize: objectSize, firstBlock: block,
                                             blockCount: count, mayEvictSpeculative: false, state: .queued,
                                             isPrefetch: true) else { break }
            extent.source = source
            prefetchRequests += 1
            owned.append(extent)
            queued.append(extent)
            block = extent.endBlock
        }
        prefetchedByOwner[owner] = owned
        lock.unlock()
        for extent in queued {
            pool.submit { [self] in
                lock.lock()
                guard extent.state == .queued, let source = extent.source else { lock.unlock(); return }
                extent.state = .loading
                extent.source = nil
                lock.unlock()
                try? fetch(extent, from: source, pinForCaller: false)
            }
        }
        return min(block * Self.blockSize, objectSize)
    }

    /// Cancels the owner's queued prefetches (all readers' if nil); fetches in flight finish.
    /// `abandon` also lets read-ahead evict what the owner prefetched but never read.
    func cancelPrefetches(owner: ObjectIdentifier, abandon: Bool) {
        lock.lock()
        defer { lock.unlock() }
        cancelQueuedPrefetches(owner: owner)
        if abandon, let owned = prefetchedByOwner.removeValue(forKey: owner) {
            for extent in owned { extent.isSpeculative = false }
        }
    }

    private func cancelQueuedPrefetches(owner: ObjectIdentifier?) {
        let owners = owner.map { [$0] } ?? Array(prefetchedByOwner.keys)
        var released = false
        for key in owners {
            guard let owned = prefetchedByOwner[key] else { continue }
            for extent in owned where extent.state == .queued {
                removeFromIndex(extent)
                release(extent)
                released = true
            }
            prefetchedByOwner[key] = owned.filter { $0.state != .released }
        }
        if released { lock.broadcast() }
    }

    // MARK: Fetching

    /// Fetches a `.loading` extent on this thread, then makes it ready (pinned once more for the
    /// caller if asked) or failed. Throws the fetch's error.
    private func fetch(_ extent: CachedExtent, from source: RangeSource, pinForCaller: Bool) throws {
        var buffer = lock.withLock { extent.buffer }
        do {
            if buffer == nil {
                buffer = try ExtentMemory.allocate(extent.allocation)
                lock.withLock { freshlyMapped += extent.allocation }
            }
            let content = UnsafeMutableRawBufferPointer(rebasing: buffer![0..<extent.length])
            let received = try source.read(offset: extent.start, into: content)
            // The object is shorter than its size said: it changed underneath this version.
            guard received == extent.length else { throw FSError(EIO) }
        } catch {
            lock.lock()
            extent.buffer = buffer
            extent.error = error
            removeFromIndex(extent)
            release(extent, state: .failed)
            lock.broadcast()
            lock.unlock()
            throw error
        }
        lock.lock()
        extent.buffer = buffer
        extent.state = .ready
        if pinForCaller { extent.pins += 1 }
        if extent.isIndexed && !extent.isOverflow {
            insertAsNewest(extent)
            residentBytesValue += extent.allocation
            notePeaks()
        } else if extent.pins == 0 {
            removeFromIndex(extent)
            release(extent)
        }
        lock.broadcast()
        lock.unlock()
    }

    // MARK: Memory held outside the cache

    /// Charges `bytes` of memory the cache does not own (a sequential reader's read-ahead held in
    /// pipes, PipeStream) to its capacity, evicting as a prefetch would, so that cache
    /// and pipes together stay within `capacityBytes`. False, charging nothing, if it does not fit.
    func reserveExternal(_ bytes: Int) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        switch obtainMemory(bytes, mayEvictSpeculative: false) {
        case .recycled(let buffer): ExtentMemory.free(buffer)  // the pipes hold the bytes instead
        case .fresh: break
        case nil: return false
        }
        normalBytes += bytes
        externalBytes += bytes
        notePeaks()
        return true
    }

    /// Bytes charged by `reserveExternal` and not yet returned.
    var externalChargeBytes: Int { lock.withLock { externalBytes } }

    /// Counts bytes a reader answered from pipes (for the unmount log and tests).
    func notePipeBytes(_ count: Int) { lock.withLock { pipeBytes += Int64(count) } }
    /// Bytes answered from pipe streams instead of cache buffers.
    public var pipeBytesServed: Int64 { lock.withLock { pipeBytes } }

    /// Returns a charge made by `reserveExternal`.
    func releaseExternal(_ bytes: Int) {
        lock.lock()
        normalBytes -= bytes
        externalBytes -= bytes
        lock.broadcast()
        lock.unlock()
    }

    // MARK: Memory (all under lock)

    /// Reserves a normal extent, evicting least recently used unpinned extents if needed, and
    /// shrinking the run to what fits; nil if not even one block fits.
    private func reserveNormal(objectKey: String, objectSize: Int64, firstBlock: Int64, blockCount: Int64,
                               mayEvictSpeculative: Bool, state: CachedExtent.State,
                               isPrefetch: Bool) -> CachedExtent? {
        var extent = makeExtent(objectKey: objectKey, objectSize: objectSize, firstBlock: firstBlock,
                                blockCount: blockCount, isOverflow: false, state: state, isPrefetch: isPrefetch)
        switch obtainMemory(extent.allocation, mayEvictSpeculative: mayEvictSpeculative) {
        case .recycled(let buffer):
            extent.buffer = buffer
        case .fresh:
            break
        case nil:
            let room = capacityBytes - normalBytes - freeBytes
            let fitting = Int64(room) / Self.blockSize
            guard fitting >= 1, fitting < blockCount else { return nil }
            extent = makeExtent(objectKey: objectKey, objectSize: objectSize, firstBlock: firstBlock,
                                blockCount: fitting, isOverflow: false, state: state, isPrefetch: isPrefetch)
        }
        normalBytes += extent.allocation
        notePeaks()
        insertInIndex(extent)
        return extent
    }

    private func makeExtent(objectKey: String, objectSize: Int64, firstBlock: Int64, blockCount: Int64,
                            isOverflow: Bool, state: CachedExtent.State, isPrefetch: Bool) -> CachedExtent {
        let start = firstBlock * Self.blockSize
        let length = Int(min(blockCount * Self.blockSize, objectSize - start))
        return CachedExtent(objectKey: objectKey, firstBlock: firstBlock, blockCount: blockCount, start: start,
                              length: length, allocation: ExtentMemory.roundedToPage(length),
                              isOverflow: isOverflow, state: state, isPrefetch: isPrefetch)
    }

    /// Where a new extent's memory comes from: a recycled buffer, or a fresh mapping that `fetch`
    /// makes (reserved here, so it fits under the capacity).
    private enum Memory {
        case recycled(UnsafeMutableRawBufferPointer)
        case fresh
    }

    /// Memory for `bytes` more, preferring a recycled buffer of exactly that size: it is already
    /// paged in, while fresh memory costs a page fault and a page clear per 4 KiB (a third of the
    /// daemon's CPU in a cold 1 GiB read when every extent got a fresh mapping). In order: a
    /// recycled buffer of the size; the buffer of a consumed extent of the size (drop-behind:
    /// clearing fresh pages for the first cache_size_mb of a cold 1 GiB read took a fifth of the
    /// daemon's CPU on the benchmark VM); fresh memory if it fits; unmapping a recycled buffer of another
    /// size (it holds no content); evicting the least recently used unpinned extent, whose buffer
    /// is recycled, so an eviction of the same size hands its memory straight over. nil when
    /// nothing more can be freed.
    private func obtainMemory(_ bytes: Int, mayEvictSpeculative: Bool) -> Memory? {
        var candidate = lruOldest
        while true {
            if let buffer = popRecycled(bytes) { return .recycled(buffer) }
            if evictConsumed(bytes) { continue }
            if normalBytes + freeBytes + bytes <= capacityBytes { return .fresh }
            if let size = freeBuffers.keys.first, let buffer = popRecycled(size) {
                ExtentMemory.free(buffer)
                continue
            }
            while let extent = candidate, extent.pins > 0 || (!mayEvictSpeculative && extent.isSpeculative) {
                candidate = extent.newerInLRU
            }
            guard let victim = candidate else { return nil }
            candidate = victim.newerInLRU
            removeFromLRU(victim)
            residentBytesValue -= victim.allocation
            removeFromIndex(victim)
            release(victim)
        }
    }

    /// Evicts the oldest consumed extent of `size` bytes that no read holds (its buffer goes to the
    /// recycle list); false if there is none.
    private func evictConsumed(_ size: Int) -> Bool {
        consumed.removeAll { !$0.isIndexed || $0.state != .ready }
        guard let at = consumed.firstIndex(where: { $0.allocation == size && $0.pins == 0 }) else { return false }
        let victim = consumed.remove(at: at)
        removeFromLRU(victim)
        residentBytesValue -= victim.allocation
        removeFromIndex(victim)
        release(victim)
        return true
    }

    /// Takes a recycled buffer of `size` bytes off the list (it stops counting as recycled).
    private func popRecycled(_ size: Int) -> UnsafeMutableRawBufferPointer? {
        guard var buffers = freeBuffers[size], let buffer = buffers.popLast() else { return nil }
        freeBuffers[size] = buffers.isEmpty ? nil : buffers
        freeBytes -= size
        return buffer
    }

    /// Returns an extent's memory to the recycle list (an overflow extent's is unmapped) and its
    /// reservation.
    private func release(_ extent: CachedExtent, state: CachedExtent.State = .released) {
        precondition(extent.state != .released && !extent.isInLRU)
        extent.state = state
        extent.source = nil
        if extent.isOverflow {
            overflowBytes -= extent.allocation
            if let buffer = extent.buffer { ExtentMemory.free(buffer) }
        } else {
            normalBytes -= extent.allocation
            // Kept mapped and still counted: `obtainMemory` reuses it or unmaps it.
            if let buffer = extent.buffer {
                freeBuffers[extent.allocation, default: []].append(buffer)
                freeBytes += extent.allocation
            }
        }
        extent.buffer = nil
    }

    /// A reader takes a ready extent: pinned, no longer speculative, newest in the LRU.
    private func pinForReading(_ extent: CachedExtent) {
        extent.pins += 1
        extent.isSpeculative = false
        moveToNewest(extent)
    }

    /// A reader takes over a queued prefetch, to fetch it on its own thread rather than wait
    /// behind other readers' work in the pool. It stays a prefetch: if it fails, readers fetch
    /// again on demand.
    private func claimQueued(_ extent: CachedExtent) {
        extent.state = .loading
        extent.isSpeculative = false
        extent.source = nil
    }

    private func unpin(_ extent: CachedExtent) {
        extent.pins -= 1
        guard extent.pins == 0 else { return }
        if extent.isOverflow || !extent.isIndexed {
            removeFromIndex(extent)
            release(extent)
        }
        lock.broadcast()
    }

    private func notePeaks() {
        peakUsed = max(peakUsed, normalBytes + freeBytes + overflowBytes)
        peakResident = max(peakResident, residentBytesValue)
    }

    // MARK: Index and LRU (all under lock)

    private func insertInIndex(_ extent: CachedExtent) {
        for block in extent.firstBlock..<extent.endBlock { index[extent.objectKey, default: [:]][block] = extent }
        extent.isIndexed = true
    }

    private func removeFromIndex(_ extent: CachedExtent) {
        guard extent.isIndexed else { return }
        extent.isIndexed = false
        for block in extent.firstBlock..<extent.endBlock where index[extent.objectKey]?[block] === extent {
            index[extent.objectKey]?.removeValue(forKey: block)
        }
        if index[extent.objectKey]?.isEmpty == true { index.removeValue(forKey: extent.objectKey) }
    }

    private func insertAsNewest(_ extent: CachedExtent) {
        extent.olderInLRU = lruNewest
        extent.newerInLRU = nil
        lruNewest?.newerInLRU = extent
        lruNewest = extent
        if lruOldest == nil { lruOldest = extent }
        extent.isInLRU = true
    }

    private func removeFromLRU(_ extent: CachedExtent) {
        guard extent.isInLRU else { return }
        if let older = extent.olderInLRU { older.newerInLRU = extent.newerInLRU } else { lruOldest = extent.newerInLRU }
        if let newer = extent.newerInLRU { newer.olderInLRU = extent.olderInLRU } else { lruNewest = extent.olderInLRU }
        extent.olderInLRU = nil
        extent.newerInLRU = nil
        extent.isInLRU = false
    }

    private func moveToNewest(_ extent: CachedExtent) {
        guard extent.isInLRU, lruNewest !== extent else { return }
        removeFromLRU(extent)
        insertAsNewest(extent)
    }
}
