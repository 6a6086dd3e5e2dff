// A sequential reader's read-ahead held in pipes instead of cache memory. Range requests go from
// the socket into one pipe per 512 KiB chunk (splice), and a read that starts at a chunk's next
// unread byte is answered with those pipes, which the FUSE layer splices into /dev/fuse. The
// bytes never enter this process: the kernel copies them once, into the reader's pages, where the
// block cache path copies them three times (socket to curl's buffer, to a cache extent, to the
// kernel). On the 2-core benchmark machine the receive copy alone was half the daemon's CPU.
//
// Invariants (all under `cond`):
// - A chunk covers [start, end) of the object; `head` is its next byte to hand out. Once
//   `ready`, its pipe holds exactly [head, end), or the chunk is `broken` and serves nothing.
// - A chunk serves one read at a time (`busy`), so two replies never read one pipe at once; a
//   read that starts past a chunk's head waits `orderWait` for the read in between (FUSE threads
//   run the kernel's read-ahead requests slightly out of order), then the bytes in between are
//   dropped and that earlier read, if it comes, is answered from the block cache.
// - The stream only ever speeds a read up: a read it cannot answer exactly (before a chunk's
//   head, not scheduled, a fetch that failed) gets nil and goes through the block cache.
// - Memory: each chunk's bytes are charged to the BlockCache's capacity from the chunk's creation
//   until its pipe is closed, so cache and pipes together stay within cache_size_mb. A chunk's
//   pipe closes when the last reference goes (the stream's map, a fetch in flight, a reply).
// - Fetches run on threads of their own, at most `maxInFlight` per stream; none is queued after
//   `close`, and one in flight stops at its next chunk.
import CPipes
import Foundation
#if canImport(Glibc)
import Glibc
#endif

final class PipeStream: @unchecked Sendable {
    /// Half a kernel read (992 KiB, FUSEMountOptions.defaultMaxRead): a read takes the rest of
    /// one chunk and the start of the next.
    static let chunkSize: Int64 = 512 * 1024
    static let maxInFlight = 2
    /// Chunks ahead of the furthest read (32 MiB, so range requests of 16 MiB), or two kernel
    /// read-ahead windows if more; never more than the cache's prefetch bound. On moto, 12
    /// alternating cold 1 GiB reads: 16 MiB requests read 825-843 MiB/s buffered where 8 MiB
    /// requests read 643-672 (the store spends less per byte on fewer requests), and 32 MiB
    /// requests fell to 450-490.
    static let windowChunksAtLeast: Int64 = 64
    /// A pipe holds twice its chunk, in 256 slots: a body that arrives in pieces smaller than a
    /// page takes more slots than pages. 1 MiB is /proc/sys/fs/pipe-max-size's default, the
    /// most a process without CAP_SYS_RESOURCE may ask for; where even that is refused, no
    /// stream is made (see `pipesRefused`).
    static let pipeBytes: Int32 = 1 << 20
    static let orderWait: TimeInterval = 0.02
    /// Chunks behind the furthest read that are kept for the reads still to come, at least.
    static let minLateReadChunks: Int64 = 16
    /// How long a read waits for its chunk's fetch before reading through the cache instead.
    static let fillWait: TimeInterval = 60

    /// Set once making a pipe of `pipeBytes` was refused (not root): no more streams are tried.
    private static let refusal = NSLock()
    nonisolated(unsafe) private static var refused = false
    static var pipesRefused: Bool { refusal.withLock { refused } }

    final class Chunk {
        let index: Int64
        let start: Int64
        let end: Int64
        let readFD: Int32
        let writeFD: Int32
        var head: Int64
        var ready = false
        var busy = false
        var broken = false
        private let cache: BlockCache
        private let charge: Int

        /// A pipe for [start, end), charged to `cache`; nil when no pipe or no memory is available.
        init?(index: Int64, start: Int64, end: Int64, cache: BlockCache) {
            var fds: [Int32] = [-1, -1]
            guard pipe2(&fds, O_CLOEXEC) == 0 else { return nil }
            if roset_set_pipe_size(fds[1], PipeStream.pipeBytes) < 0 {
                if errno == EPERM { PipeStream.refusal.withLock { PipeStream.refused = true } }
                Glibc.close(fds[0]); Glibc.close(fds[1])
                return nil
            }
            let charge = ExtentMemory.roundedToPage(Int(end - start))
            guard cache.reserveExternal(charge) else { Glibc.close(fds[0]); Glibc.close(fds[1]); return nil }
            (self.index, self.start, self.end, self.head) = (index, start, end, start)
            (readFD, writeFD, self.cache, self.charge) = (fds[0], fds[1], cache, charge)
        }

        deinit {
            Glibc.close(readFD)
            Glibc.close(writeFD)
            cache.releaseExternal(charge)
        }

        /// Bytes now in the pipe.
        var bytesInPipe: Int { Int(roset_pipe_bytes(readFD)) }
    }

    /// What a read was handed: pipe read ends and how many bytes to take from each, in order.
    /// The taker must move exactly those bytes out, then call `finish`.
    struct Taken {
        let segments: [(fd: Int32, count: Int)]
        fileprivate let parts: [(chunk: Chunk, count: Int)]
    }

    private let source: PipeRangeSource
    private let cache: BlockCache
    private let objectSize: Int64
    private let windowChunks: Int64
    private let requestChunks: Int64
    private let lastIndex: Int64
    private let lateReadChunks: Int64
    private let cond = NSCondition()
    private var chunks: [Int64: Chunk] = [:]
    private var nextIndex: Int64
    /// The highest chunk a read has reached.
    private var readerIndex: Int64
    private var inFlight = 0
    private var failed = false
    private var closed = false

    /// A stream from `offset` (rounded up to a chunk) to the object's end, fetching at once.
    /// `kernelReadAhead` is the mount's kernel read-ahead window (see `dropStale`).
    init(source: PipeRangeSource, cache: BlockCache, objectSize: Int64, from offset: Int64,
         kernelReadAhead: Int64) {
        self.source = source
        self.cache = cache
        self.objectSize = objectSize
        // The kernel asks for two of its windows at once: that much is kept behind the furthest
        // read, and at least that much is fetched ahead of it, within the cache's bound.
        let twoKernelWindows = 2 * kernelReadAhead / Self.chunkSize
        lateReadChunks = max(Self.minLateReadChunks, twoKernelWindows)
        let wanted = max(Self.windowChunksAtLeast, twoKernelWindows)
        windowChunks = max(2, min(wanted, cache.maxPrefetchWindow / Self.chunkSize))
        requestChunks = max(1, windowChunks / 2)
        lastIndex = (objectSize + Self.chunkSize - 1) / Self.chunkSize
        nextIndex = (offset + Self.chunkSize - 1) / Self.chunkSize
        readerIndex = nextIndex - 1
        cond.withLock { schedule() }
    }

    deinit { close() }

    var isFailed: Bool { cond.withLock { failed } }

    /// Pipes holding exactly [offset, offset + length), or nil: read it through the cache.
    func take(offset: Int64, length: Int) -> Taken? {
        cond.lock()
        defer { cond.unlock() }
        let end = min(objectSize, offset + Int64(length))
        guard end > offset else { return nil }
        readerIndex = max(readerIndex, (end - 1) / Self.chunkSize)
        let fillDeadline = Date().addingTimeInterval(Self.fillWait)
        var orderDeadline: Date?
        while true {
            if failed || closed { return nil }
            var parts: [(chunk: Chunk, count: Int)] = []
            var position = offset
            var waitFor: Date?
            while position < end {
                guard let c = chunks[position / Self.chunkSize], !c.broken, c.head <= position else {
                    schedule()
                    return nil
                }
                if !c.ready || c.busy { waitFor = fillDeadline; break }
                if c.head < position {
                    let deadline = orderDeadline ?? Date().addingTimeInterval(Self.orderWait)
                    orderDeadline = deadline
                    if Date() < deadline { waitFor = deadline; break }
                    drop(c, upTo: position)
                    continue
                }
                let n = Int(min(end, c.end) - position)
                parts.append((c, n))
                position += Int64(n)
            }
            if let waitFor {
                if !cond.wait(until: waitFor) && waitFor == fillDeadline { return nil }
                continue
            }
            for (c, n) in parts {
                c.busy = true
                c.head += Int64(n)
            }
            dropStale()
            schedule()
            return Taken(segments: parts.map { ($0.chunk.readFD, $0.count) }, parts: parts)
        }
    }

    /// After the reply: each pipe must hold exactly its chunk's unread bytes, or the chunk is
    /// broken; chunks read to their end are closed.
    func finish(_ taken: Taken) {
        cond.lock()
        defer { cond.unlock() }
        for (c, _) in taken.parts {
            c.busy = false
            if c.bytesInPipe != Int(c.end - c.head) { c.broken = true }
            if c.head == c.end || c.broken, chunks[c.index] === c { chunks[c.index] = nil }
        }
        cond.broadcast()
        schedule()
    }

    /// Stops fetching and closes every pipe not held by a reply or a fetch in flight.
    func close() {
        cond.lock()
        closed = true
        chunks.removeAll()
        cond.broadcast()
        cond.unlock()
    }

    // MARK: Under cond

    /// Queues whole range requests while the window ahead of the reader has room for one (so
    /// that no more than `windowChunks` chunks ever exist, and requests stay large).
    private func schedule() {
        nextIndex = max(nextIndex, readerIndex + 1)
        while !failed, !closed, inFlight < Self.maxInFlight, nextIndex < lastIndex,
              readerIndex + 1 + windowChunks - nextIndex >= min(requestChunks, lastIndex - nextIndex) {
            var job: [Chunk] = []
            for index in nextIndex..<min(lastIndex, nextIndex + requestChunks) {
                let start = index * Self.chunkSize
                guard let c = Chunk(index: index, start: start, end: min(objectSize, start + Self.chunkSize),
                                    cache: cache) else { break }
                job.append(c)
            }
            guard !job.isEmpty else {
                // No pipe or no memory now: with nothing in flight, the stream has ended.
                if inFlight == 0 && chunks.isEmpty { failed = true; cond.broadcast() }
                return
            }
            for c in job { chunks[c.index] = c }
            nextIndex += Int64(job.count)
            inFlight += 1
            let batch = job
            Thread.detachNewThread { [self] in fetch(batch) }
        }
    }

    /// Drops a ready chunk's bytes before `position` (a read that never came in time).
    private func drop(_ c: Chunk, upTo position: Int64) {
        var remaining = Int(position - c.head)
        var scratch = [UInt8](repeating: 0, count: 64 * 1024)
        while remaining > 0 {
            let n = scratch.withUnsafeMutableBytes { read(c.readFD, $0.baseAddress, min(remaining, $0.count)) }
            if n <= 0 { c.broken = true; return }
            remaining -= n
        }
        c.head = position
    }

    /// Closes chunks far behind the furthest read: bytes nobody read (a read answered by the cache
    /// instead). The kernel asks for up to two read-ahead windows at once (the one being read and
    /// the next), and FUSE threads run them in any order, so only chunks more than two windows
    /// behind are given up. (At one window, read_ahead_kb=8192 lost a fifth of a cold read on moto
    /// to the cache path, and ran at half the speed.)
    private func dropStale() {
        for (i, c) in chunks where i < readerIndex - lateReadChunks && !c.busy { chunks[i] = nil }
    }

    // MARK: Fetch threads

    private func fetch(_ job: [Chunk]) {
        var succeeded = false
        do {
            succeeded = try source.fillPipes(offset: job[0].start, pipes: job.map { ($0.writeFD, Int($0.end - $0.start)) }) { i in
                cond.lock()
                defer { cond.unlock() }
                job[i].ready = true
                cond.broadcast()
                return !closed
            }
        } catch {
            succeeded = false
        }
        cond.lock()
        inFlight -= 1
        if !succeeded && !closed {
            // A transfer that failed (or a store that cannot splice): the rest of this reader's
            // reads go through the cache, which retries and refreshes URLs.
            failed = true
            for c in job where !c.ready { c.broken = true }
        }
        cond.broadcast()
        schedule()
        cond.unlock()
    }
}
