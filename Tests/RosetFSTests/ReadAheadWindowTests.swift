// Read-ahead: the window policy on its own, then through ObjectReader with a fake source:
// sequential readers (in order, out of order, concurrent) get a growing window filled by parallel
// requests; random readers get one block per read and nothing more; close and seeks cancel.
import Foundation
import Testing
@testable import RosetFS

@Suite struct ReadAheadWindowTests {
    let mebibyte = Int64(ReadPathFixture.mebibyte)
    let block = BlockCache.blockSize

    @Test func policyOpensAfterThreeSequentialReadsAndDoublesUpToTheCap() {
        var policy = ReadAheadWindow(blockSize: block, maxWindow: 16 * mebibyte)
        let size = 1024 * mebibyte
        #expect(policy.observe(offset: 0, length: block, objectSize: size).prefetch == nil)
        #expect(policy.observe(offset: block, length: block, objectSize: size).prefetch == nil)
        let first = policy.observe(offset: 2 * block, length: block, objectSize: size)
        #expect(policy.window == mebibyte)
        #expect(first.prefetch == 3 * block..<(3 * block + mebibyte))
        #expect(first.requestSize == mebibyte / 4)
        policy.prefetchCovered(upTo: first.prefetch!.upperBound)
        var windows: [Int64] = []
        for index in 3..<12 {
            let plan = policy.observe(offset: Int64(index) * block, length: block, objectSize: size)
            windows.append(policy.window)
            if let range = plan.prefetch {
                #expect(range.lowerBound == policy.frontier)
                #expect(range.lowerBound % block == 0)
                #expect((range.upperBound - range.lowerBound) % plan.requestSize == 0)
                #expect(range.upperBound <= Int64(index + 1) * block + policy.window)
                policy.prefetchCovered(upTo: range.upperBound)
            }
        }
        #expect(windows == [2, 4, 8, 16, 16, 16, 16, 16, 16].map { $0 * mebibyte })
    }

    @Test func policyToleratesOutOfOrderReadsAndResetsOnASeek() {
        var policy = ReadAheadWindow(blockSize: block, maxWindow: 64 * mebibyte)
        let size = 1024 * mebibyte
        // The kernel's async reads: pairs arrive swapped.
        for pair in 0..<12 {
            let base = Int64(pair) * 2 * block
            _ = policy.observe(offset: base + block, length: block, objectSize: size)
            let plan = policy.observe(offset: base, length: block, objectSize: size)
            #expect(!plan.cancelPending)
            if let range = plan.prefetch { policy.prefetchCovered(upTo: range.upperBound) }
        }
        // Only the read that goes further counts: 12 of the 24 (the window opens at the third).
        #expect(policy.streakReads == 12)
        #expect(policy.window == 64 * mebibyte)
        #expect(policy.streakEnd == 24 * block)
        #expect(policy.observe(offset: 0, length: block, objectSize: size) == .init(), "a re-read changes nothing")
        let seek = policy.observe(offset: 700 * mebibyte, length: block, objectSize: size)
        #expect(seek.cancelPending)
        #expect(seek.prefetch == nil)
        #expect(policy.window == 0 && policy.streakReads == 1)
    }

    @Test func aReadUpToTwoKernelWindowsLateKeepsTheStreak() {
        let size = 1024 * mebibyte
        for (readAhead, kept) in [(8 * mebibyte, true), (4 * mebibyte, false)] {
            // A 16 MiB window, whose own tolerance (a quarter) is 4 MiB.
            var policy = ReadAheadWindow(blockSize: block, maxWindow: 16 * mebibyte, kernelReadAhead: readAhead)
            for index in 0..<120 where index != 30 {
                _ = policy.observe(offset: Int64(index) * block, length: block, objectSize: size)
            }
            // Block 30 arrives after block 119: 11.25 MiB late, within two 8 MiB windows.
            let late = policy.observe(offset: 30 * block, length: block, objectSize: size)
            #expect(late.cancelPending != kept, "read-ahead \(readAhead / mebibyte) MiB")
            #expect((policy.window > 0) == kept)
        }
    }

    @Test func policyNeverPrefetchesForScatteredSmallReads() {
        // With the kernel read-ahead mount.roset sets: the wider tolerance never starts a streak.
        var policy = ReadAheadWindow(blockSize: block, maxWindow: 64 * mebibyte, kernelReadAhead: 4 * mebibyte)
        var generator = ReadPathSeededGenerator(seed: 77)
        let size = 64 * mebibyte
        for _ in 0..<2000 {
            let offset = Int64.random(in: 0..<(size / 4096), using: &generator) * 4096
            #expect(policy.observe(offset: offset, length: 4096, objectSize: size).prefetch == nil)
        }
    }

    @Test func policyStopsAtTheEndOfTheObjectAndWithoutRoom() {
        var small = ReadAheadWindow(blockSize: block, maxWindow: 64 * mebibyte)
        let size = 5 * block + 10
        var plans: [ReadAheadWindow.Plan] = []
        for index in 0..<3 { plans.append(small.observe(offset: Int64(index) * block, length: block, objectSize: size)) }
        #expect(plans[2].prefetch == 3 * block..<size, "the tail up to the end of the object")
        var disabled = ReadAheadWindow(blockSize: block, maxWindow: block - 1)
        for index in 0..<10 {
            #expect(disabled.observe(offset: Int64(index) * block, length: block, objectSize: 100 * mebibyte).prefetch == nil)
        }
    }

    @Test func sequentialScanPrefetchesWithAGrowingParallelWindow() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 2000)
        let cache = BlockCache(capacityBytes: 512 * Int(mebibyte))
        let reader = ObjectReader(objectKey: "seq", size: Int64(bytes.count), source: source, cache: cache)
        defer { reader.close() }
        let readSize = 128 * 1024
        var reads = 0
        var offset = 0
        while offset < bytes.count {
            let result = try reader.read(offset: Int64(offset), length: readSize)
            #expect(result.count == readSize)
            if !ReadPathFixture.matches(result, bytes, at: Int64(offset)) {
                Issue.record("wrong bytes at \(offset)")
                break
            }
            offset += readSize
            reads += 1
        }
        #expect(try reader.read(offset: Int64(offset), length: readSize).isEmpty)
        #expect(reads == 512)
        #expect(source.calls * 10 < reads, "\(source.calls) calls for \(reads) reads")
        #expect(source.maxConcurrent > 1, "prefetch requests run in parallel")
        #expect(source.largestRequest == Int(ReadAheadWindow.maxRequest), "the window grew to its largest requests")
        #expect(source.bytesFetched == bytes.count, "each byte fetched once")
    }

    @Test func concurrentOutOfOrderSequentialReadsOnOneHandleStillPrefetch() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 500)
        let cache = BlockCache(capacityBytes: 256 * Int(mebibyte))
        let reader = ObjectReader(objectKey: "async", size: Int64(bytes.count), source: source, cache: cache)
        defer { reader.close() }
        let readSize = 256 * 1024
        let readCount = bytes.count / readSize
        let next = NSLock()
        nonisolated(unsafe) var nextIndex = 0
        let bad = UnsafeMutableBufferPointer<Int>.allocate(capacity: 4)
        defer { bad.deallocate() }
        // Four threads take the next chunk in turn, like the kernel's concurrent async reads.
        DispatchQueue.concurrentPerform(iterations: 4) { thread in
            var wrong = 0
            while true {
                let index: Int = next.withLock { defer { nextIndex += 1 }; return nextIndex }
                guard index < readCount else { break }
                let offset = Int64(index * readSize)
                guard let result = try? reader.read(offset: offset, length: readSize), result.count == readSize,
                      ReadPathFixture.matches(result, bytes, at: offset) else { wrong += 1; continue }
            }
            bad[thread] = wrong
        }
        #expect(bad.allSatisfy { $0 == 0 })
        #expect(source.calls * 4 < readCount, "\(source.calls) calls for \(readCount) reads")
        #expect(source.largestRequest > 4 * Int(mebibyte))
    }

    @Test func randomSmallReadsFetchAtMostOneBlockEachAndNoReadAhead() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 256 * Int(mebibyte))
        let reader = ObjectReader(objectKey: "random", size: Int64(bytes.count), source: source, cache: cache)
        defer { reader.close() }
        var generator = ReadPathSeededGenerator(seed: 99)
        let reads = 1000
        for _ in 0..<reads {
            // Page-aligned, as the kernel sends them.
            let offset = Int64.random(in: 0..<Int64(bytes.count / 4096), using: &generator) * 4096
            let result = try reader.read(offset: offset, length: 4096)
            let correct = result.count == 4096 && ReadPathFixture.matches(result, bytes, at: offset)
            #expect(correct)
        }
        #expect(source.calls <= reads)
        #expect(source.largestRequest == Int(block), "one block per request")
        #expect(source.bytesFetched <= reads * Int(block), "at most one block per read")
        #expect(cache.prefetchRequestCount == 0)
        // An unaligned one straddling a boundary needs both blocks, in one request.
        let straddling = try reader.read(offset: 7 * block - 100, length: 4096)
        let correct = ReadPathFixture.matches(straddling, bytes, at: 7 * block - 100) && straddling.count == 4096
        #expect(correct)
        #expect(source.largestRequest <= 2 * Int(block))
    }

    @Test func closeCancelsQueuedPrefetches() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes)
        // Two workers, so most of the window stays queued while they are held.
        let cache = BlockCache(capacityBytes: 512 * Int(mebibyte), pool: FetchWorkerPool(threadCount: 2))
        let reader = ObjectReader(objectKey: "close", size: Int64(bytes.count), source: source, cache: cache)
        source.closeGate(at: 4 * mebibyte)
        for index in 0..<32 { _ = try reader.read(offset: Int64(index) * block, length: Int(block)) }
        while source.blocked < 2 { usleep(1000) }
        usleep(50_000)
        let queued = cache.queuedPrefetchCount
        let callsAtClose = source.calls
        #expect(queued > 0, "prefetches were waiting when the file was closed")
        reader.close()
        #expect(cache.queuedPrefetchCount == 0)
        source.openGate()
        ReadPathFixture.waitUntilQuiet(source)
        #expect(source.calls == callsAtClose, "no prefetch started after close")
        #expect(cache.residentBytes <= cache.capacityBytes)
        #expect(cache.reservedBytes == cache.residentBytes, "cancelled reservations were returned")
    }

    @Test func aSeekCancelsTheOldPositionsQueuedPrefetches() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 512 * Int(mebibyte), pool: FetchWorkerPool(threadCount: 2))
        let reader = ObjectReader(objectKey: "seek", size: Int64(bytes.count), source: source, cache: cache)
        defer { reader.close() }
        source.closeGate(at: 4 * mebibyte)
        for index in 0..<32 { _ = try reader.read(offset: Int64(index) * block, length: Int(block)) }
        while source.blocked < 2 { usleep(1000) }
        #expect(cache.queuedPrefetchCount > 0)
        let far = Int64(bytes.count) - 4 * mebibyte  // further than a quarter of the 64 MiB window
        source.openGate()
        let result = try reader.read(offset: far, length: 4096)
        let correct = ReadPathFixture.matches(result, bytes, at: far) && result.count == 4096
        #expect(correct)
        #expect(cache.queuedPrefetchCount == 0)
    }

    @Test func aFailedPrefetchIsDroppedAndFetchedAgainOnDemand() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 200)
        let cache = BlockCache(capacityBytes: 256 * Int(mebibyte))
        let reader = ObjectReader(objectKey: "flaky", size: Int64(bytes.count), source: source, cache: cache)
        defer { reader.close() }
        // Only read-ahead makes requests over 1 MiB; every one of them fails.
        source.failWhen { _, count in count > Int(mebibyte) }
        var offset = 0
        while offset < 32 * Int(mebibyte) {
            let result = try reader.read(offset: Int64(offset), length: 128 * 1024)
            let correct = result.count == 128 * 1024 && ReadPathFixture.matches(result, bytes, at: Int64(offset))
            #expect(correct)
            offset += 128 * 1024
        }
        #expect(source.failures > 0)
        #expect(cache.prefetchRequestCount > source.failures, "smaller prefetches still went through")
    }
}
