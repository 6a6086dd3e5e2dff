// One contiguous, block-aligned run of an object version in the BlockCache: fetched with a single
// range request into a single buffer, then cached, pinned, evicted and freed as a unit.
// Invariants: every field is read and written under the owning cache's lock, except the buffer
// contents, which only the one thread that moved the extent to `.loading` writes (without the
// lock), and which are immutable once the extent is `.ready`. A `.ready` extent's buffer is freed
// only when its pin count is zero.

final class CachedExtent {
    enum State {
        /// Reserved and indexed, waiting for a pool worker (a demand read may claim it instead).
        case queued
        /// One thread is fetching it; others wait on the cache's condition.
        case loading
        /// Holds the bytes.
        case ready
        /// The fetch threw; `error` says why. Never indexed.
        case failed
        /// Memory returned; the extent is dead.
        case released
    }

    let objectKey: String
    let firstBlock: Int64
    let blockCount: Int64
    /// Byte offset of the first byte in the object.
    let start: Int64
    /// Bytes of content (the last extent of an object is shorter).
    let length: Int
    /// Bytes of memory it accounts for: `length` rounded up to a page.
    let allocation: Int
    /// Fetched beyond the cache's capacity (from the small overflow allowance) so that a demand
    /// read makes progress when every cached byte is pinned or in flight; never kept in the LRU.
    let isOverflow: Bool

    var state: State
    /// Queued or fetched by read-ahead rather than by the read that needs it: a failure is not
    /// reported to waiters, who fetch again on their own.
    let isPrefetch: Bool
    /// Fetched ahead and not yet read: read-ahead of another file may not evict it.
    var isSpeculative: Bool
    /// Read to its end by a sequential reader, which will not come back for it: its memory is
    /// reused before the cache grows (drop-behind).
    var isConsumed = false
    var buffer: UnsafeMutableRawBufferPointer?
    var pins = 0
    /// Still reachable through the cache's index (false after eviction or invalidation).
    var isIndexed = true
    var error: Error?
    /// The source a pool worker fetches a queued extent from.
    var source: RangeSource?

    var olderInLRU: CachedExtent?
    var newerInLRU: CachedExtent?
    var isInLRU = false

    init(objectKey: String, firstBlock: Int64, blockCount: Int64, start: Int64, length: Int, allocation: Int,
         isOverflow: Bool, state: State, isPrefetch: Bool) {
        self.objectKey = objectKey; self.firstBlock = firstBlock; self.blockCount = blockCount
        self.start = start; self.length = length; self.allocation = allocation; self.isOverflow = isOverflow
        self.state = state; self.isPrefetch = isPrefetch; self.isSpeculative = isPrefetch
    }

    var end: Int64 { start + Int64(length) }
    var endBlock: Int64 { firstBlock + blockCount }
}
