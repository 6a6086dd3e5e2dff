// The read-ahead policy of one open file, as pure state: it sees each read's offset and length
// and says which byte range to prefetch next. A streak of reads that each start near the highest
// end seen so far, and go beyond it, is sequential (the kernel sends reads of 128 KiB-1 MiB, several at once and
// slightly out of order, so "near" tolerates a few read lengths, or a quarter of the window once
// one exists; and since it asks for up to two of its read-ahead windows at once, a read up to two
// kernel windows behind keeps the streak, and once the window is open so does one up to a kernel
// window ahead). After three such reads the window opens at 1 MiB and doubles with every further
// sequential read up to `maxWindow`; it is filled with requests of a quarter of the window
// (128 KiB to 8 MiB), so several are in flight at once. Any other read ends the streak: the window
// closes and queued prefetches are cancelled, so a random reader gets no read-ahead at all.
// Invariant: `frontier` is block-aligned (or the object's end) and only grows within a streak.

struct ReadAheadWindow {
    static let initialWindow: Int64 = 1024 * 1024
    static let maxRequest: Int64 = 8 * 1024 * 1024
    static let minimumJitter: Int64 = 128 * 1024
    /// Reads in a streak before read-ahead starts: two reads that happen to fall close together
    /// (a random reader, a header sniff) do not trigger it.
    static let readsBeforePrefetch = 3

    struct Plan: Equatable {
        /// The streak ended: queued prefetches of the old position are useless.
        var cancelPending = false
        /// Bytes to prefetch, block-aligned at the start; nil for none.
        var prefetch: Range<Int64>?
        /// The size of each range request filling it.
        var requestSize: Int64 = 0
    }

    let blockSize: Int64
    let maxWindow: Int64
    /// The mount's kernel read-ahead window (read_ahead_kb; by default the kernel's own 128 KiB,
    /// which mount.roset raises to 4 MiB).
    let kernelReadAhead: Int64
    private(set) var streakEnd: Int64 = 0
    private(set) var streakReads = 0
    private(set) var window: Int64 = 0
    /// Prefetch has been issued (or found cached) up to here.
    private(set) var frontier: Int64 = 0

    init(blockSize: Int64, maxWindow: Int64, kernelReadAhead: Int64 = 128 * 1024) {
        self.blockSize = blockSize
        self.maxWindow = maxWindow / blockSize * blockSize
        self.kernelReadAhead = kernelReadAhead
    }

    mutating func observe(offset: Int64, length: Int64, objectSize: Int64) -> Plan {
        var plan = Plan()
        let jitter = max(Self.minimumJitter, 4 * length, window / 4)
        // Asymmetric: a late read never extends a streak, so a random reader gains nothing from
        // the wider tolerance behind; ahead it is widened only for a reader already sequential.
        let behind = max(jitter, 2 * kernelReadAhead)
        let ahead = window > 0 ? max(jitter, kernelReadAhead) : jitter
        if offset >= streakEnd - behind && offset <= streakEnd + ahead {
            // A late out-of-order read or a re-read keeps the streak but does not extend it.
            guard offset + length > streakEnd else { return plan }
            streakReads += 1
            streakEnd = offset + length
        } else {
            plan.cancelPending = window > 0
            streakReads = 1
            streakEnd = offset + length
            window = 0
            frontier = 0
        }
        guard maxWindow >= blockSize, streakReads >= Self.readsBeforePrefetch else { return plan }
        window = window == 0 ? min(Self.initialWindow, maxWindow) : min(window * 2, maxWindow)
        let request = min(max(window / 4 / blockSize * blockSize, blockSize), Self.maxRequest)
        let target = min(objectSize, streakEnd + window)
        frontier = max(frontier, (streakEnd + blockSize - 1) / blockSize * blockSize)
        guard frontier < target else { return plan }
        // Whole requests only, so a reader creeping forward does not issue one small request per
        // read; the object's tail is taken as it is.
        let end = target == objectSize ? target : frontier + (target - frontier) / request * request
        guard end > frontier else { return plan }
        plan.prefetch = frontier..<end
        plan.requestSize = request
        return plan
    }

    /// Records how far the cache accepted a prefetch (it stops early when memory is short).
    mutating func prefetchCovered(upTo end: Int64) {
        frontier = max(frontier, end)
    }
}
