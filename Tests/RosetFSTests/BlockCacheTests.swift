// Correctness of ObjectReader over BlockCache: exact bytes for any range, shared fetches and
// blocks, version isolation, invalidation, and errors that propagate and are never cached.
import Foundation
import Testing
@testable import RosetFS

@Suite struct BlockCacheTests {
    let mebibyte = ReadPathFixture.mebibyte
    let block = Int(BlockCache.blockSize)

    @Test func randomRangesReturnExactlyTheSourceBytes() throws {
        let size = 3 * mebibyte + 12_345
        let bytes = ReadPathFixture.content(count: size, seed: 7)
        let source = ReadPathFakeSource(bytes: bytes)
        let reader = ObjectReader(objectKey: "n1:e1:\(size)", size: Int64(size), source: source,
                                  cache: BlockCache(capacityBytes: 64 * mebibyte))
        defer { reader.close() }
        var generator = ReadPathSeededGenerator(seed: 11)
        var cases: [(Int64, Int)] = [
            (0, 0), (0, 1), (Int64(size), 1), (Int64(size), 0), (Int64(size) + 5, 100), (-1, 10),
            (Int64(size - 1), 1), (Int64(size - 1), 1000), (Int64(block - 1), 2), (Int64(block), block),
            (Int64(block - 7), 3 * block + 14), (0, size), (0, size + 1000), (Int64(size - block - 3), 2 * block),
        ]
        for _ in 0..<300 {
            let offset = Int64.random(in: 0..<Int64(size + 200_000), using: &generator)
            let length = Int.random(in: 0...(600 * 1024), using: &generator)
            cases.append((offset, length))
        }
        for (offset, length) in cases {
            let result = try reader.read(offset: offset, length: length)
            #expect(result.count == ReadPathFixture.expectedCount(bytes, offset: offset, length: length),
                    "read(\(offset), \(length))")
            let correct = ReadPathFixture.matches(result, bytes, at: max(offset, 0))
            #expect(correct, "read(\(offset), \(length))")
        }
    }

    @Test func cachedRangesAreHandedOverFromTheCacheItselfAndUnpinnedAfter() throws {
        let bytes = ReadPathFixture.content(count: 2 * mebibyte, seed: 5)
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 16 * mebibyte)
        let key = "pinned"
        // Two separate fetches make two extents, so a range across them is two buffers.
        var scratch = [UInt8](repeating: 0, count: block)
        for offset in [0, block] {
            try scratch.withUnsafeMutableBytes {
                try cache.read(objectKey: key, objectSize: Int64(bytes.count), offset: Int64(offset), into: $0, source: source)
            }
        }
        let calls = source.calls
        var handed: [[UInt8]] = []
        let served = try cache.withPinnedRange(objectKey: key, objectSize: Int64(bytes.count), offset: Int64(block - 100),
                                               length: 300, source: source) { buffers in
            handed = buffers.map { Array($0) }
        }
        #expect(served)
        #expect(handed.map(\.count) == [100, 200])
        #expect(handed.flatMap { $0 } == Array(bytes[(block - 100)..<(block + 200)]))
        #expect(source.calls == calls, "served from the cache, no fetch")
        // Blocks never fetched: one demand fetch into the cache, handed over from there, kept.
        let missing = try cache.withPinnedRange(objectKey: key, objectSize: Int64(bytes.count), offset: Int64(3 * block + 5),
                                                length: block, source: source) { buffers in
            handed = buffers.map { Array($0) }
        }
        #expect(missing)
        #expect(handed.flatMap { $0 } == Array(bytes[(3 * block + 5)..<(4 * block + 5)]))
        #expect(source.calls == calls + 1, "one range request for the two missing blocks")
        #expect(cache.residentBytes == 4 * block)
        // Every pin was released: invalidation frees the extents at once.
        cache.invalidate(objectKey: key)
        #expect(cache.residentBytes == 0)
    }

    @Test func pinnedRangeGivesUpWhenMemoryIsShortAndAFailedFetchThrows() throws {
        let bytes = ReadPathFixture.content(count: 8 * mebibyte, seed: 9)
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 2 * block)
        let size = Int64(bytes.count)
        // The whole capacity stays pinned by the outer call; the inner one needs more than the
        // overflow allowance, so it must give up (and free what it took) instead of waiting.
        var inner: Bool?
        let outer = try cache.withPinnedRange(objectKey: "k", objectSize: size, offset: 0, length: 2 * block,
                                              source: source) { _ in
            inner = try? cache.withPinnedRange(objectKey: "k", objectSize: size, offset: Int64(4 * block),
                                               length: BlockCache.overflowLimit + block, source: source) { _ in
                Issue.record("must not be called when memory is short")
            }
        }
        #expect(outer)
        #expect(inner == false)
        #expect(cache.usedBytes <= 2 * block, "overflow taken by the inner call was freed: \(cache.usedBytes)")
        // The copy path still reads it (it waits for memory instead).
        let reader = ObjectReader(objectKey: "k", size: size, source: source, cache: cache)
        defer { reader.close() }
        let tail = try reader.read(offset: Int64(4 * block), length: BlockCache.overflowLimit + block)
        #expect(ReadPathFixture.matches(tail, bytes, at: Int64(4 * block)) && tail.count == BlockCache.overflowLimit + block)

        let failing = ReadPathFakeSource(bytes: bytes)
        failing.failWhen { _, _ in true }
        #expect(throws: (any Error).self) {
            _ = try cache.withPinnedRange(objectKey: "other", objectSize: size, offset: 0, length: 10, source: failing) { _ in }
        }
        #expect(cache.usedBytes <= 2 * block)
    }

    @Test func emptyAndTinyObjects() throws {
        let cache = BlockCache(capacityBytes: 4 * mebibyte)
        let empty = ReadPathFakeSource(bytes: [])
        let emptyReader = ObjectReader(objectKey: "empty", size: 0, source: empty, cache: cache)
        #expect(try emptyReader.read(offset: 0, length: 4096).isEmpty)
        #expect(empty.calls == 0)

        let one = ReadPathFakeSource(bytes: [42])
        let oneReader = ObjectReader(objectKey: "one", size: 1, source: one, cache: cache)
        #expect(try oneReader.read(offset: 0, length: 4096) == [42])
        #expect(try oneReader.read(offset: 0, length: 1) == [42])
        #expect(try oneReader.read(offset: 1, length: 1).isEmpty)
        #expect(one.calls == 1)
        // A 1-byte object costs a page of memory, not a block.
        #expect(cache.residentBytes == ExtentMemory.pageSize)
    }

    @Test func concurrentReadsOfOneBlockShareOneFetch() throws {
        let bytes = ReadPathFixture.content(count: 2 * mebibyte, seed: 3)
        let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 50_000)
        let cache = BlockCache(capacityBytes: 16 * mebibyte)
        let readers = (0..<8).map { _ in
            ObjectReader(objectKey: "shared", size: Int64(bytes.count), source: source, cache: cache)
        }
        let results = UnsafeMutableBufferPointer<Bool>.allocate(capacity: readers.count)
        defer { results.deallocate() }
        DispatchQueue.concurrentPerform(iterations: readers.count) { index in
            let offset = Int64(block + 100 + index * 512)
            let result = try? readers[index].read(offset: offset, length: 4096)
            results[index] = result.map { ReadPathFixture.matches($0, bytes, at: offset) && $0.count == 4096 } ?? false
        }
        #expect(results.allSatisfy { $0 })
        #expect(source.calls == 1)
        #expect(source.bytesFetched == block)
    }

    @Test func readersOfOneVersionShareBlocksAndVersionsNeverMix() throws {
        let size = 2 * mebibyte + 100
        let old = ReadPathFixture.content(count: size, seed: 21)
        let new = ReadPathFixture.content(count: size, seed: 22)
        let oldSource = ReadPathFakeSource(bytes: old)
        let newSource = ReadPathFakeSource(bytes: new)
        let cache = BlockCache(capacityBytes: 32 * mebibyte)
        let first = ObjectReader(objectKey: "n1:v1", size: Int64(size), source: oldSource, cache: cache)
        let whole = try first.read(offset: 0, length: size)
        let correct = ReadPathFixture.matches(whole, old, at: 0) && whole.count == size
        #expect(correct)
        let callsAfterFirst = oldSource.calls

        let second = ObjectReader(objectKey: "n1:v1", size: Int64(size), source: oldSource, cache: cache)
        for offset in stride(from: 0, to: size, by: 300_000) {
            let part = try second.read(offset: Int64(offset), length: 70_000)
            let correct = ReadPathFixture.matches(part, old, at: Int64(offset))
            #expect(correct)
        }
        #expect(oldSource.calls == callsAfterFirst, "a second handle on the same version reuses the blocks")

        let other = ObjectReader(objectKey: "n1:v2", size: Int64(size), source: newSource, cache: cache)
        let otherWhole = try other.read(offset: 0, length: size)
        let otherCorrect = ReadPathFixture.matches(otherWhole, new, at: 0) && otherWhole.count == size
        #expect(otherCorrect)
        #expect(newSource.bytesFetched == size, "another version fetches its own bytes")
        #expect(oldSource.calls == callsAfterFirst)
    }

    @Test func invalidateDropsEveryBlockOfThatVersionOnly() throws {
        let bytes = ReadPathFixture.content(count: mebibyte, seed: 5)
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 8 * mebibyte)
        let a = ObjectReader(objectKey: "a", size: Int64(bytes.count), source: source, cache: cache)
        let b = ObjectReader(objectKey: "b", size: Int64(bytes.count), source: source, cache: cache)
        _ = try a.read(offset: 0, length: bytes.count)
        _ = try b.read(offset: 0, length: block)
        #expect(cache.residentBytes == bytes.count + block)

        cache.invalidate(objectKey: "a")
        #expect(cache.residentBytes == block)
        #expect(cache.reservedBytes == cache.residentBytes, "only b's block is still reserved")
        let calls = source.calls
        let again = try a.read(offset: 1000, length: 5000)
        let correct = ReadPathFixture.matches(again, bytes, at: 1000) && again.count == 5000
        #expect(correct)
        #expect(source.calls == calls + 1, "invalidated blocks are fetched again")
        _ = try b.read(offset: 0, length: block)
        #expect(source.calls == calls + 1, "other versions stay cached")
    }

    @Test func invalidateDuringAFetchDoesNotCacheItsResult() throws {
        let bytes = ReadPathFixture.content(count: mebibyte, seed: 6)
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 8 * mebibyte)
        let reader = ObjectReader(objectKey: "v", size: Int64(bytes.count), source: source, cache: cache)
        source.closeGate(at: 0)
        let done = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var result: [UInt8] = []
        Thread.detachNewThread {
            result = (try? reader.read(offset: 0, length: 4096)) ?? []
            done.signal()
        }
        while source.blocked == 0 { usleep(1000) }
        cache.invalidate(objectKey: "v")
        source.openGate()
        done.wait()
        let correct = ReadPathFixture.matches(result, bytes, at: 0) && result.count == 4096
        #expect(correct)
        #expect(cache.residentBytes == 0)
        #expect(cache.reservedBytes == 0, "only recycled buffers remain")
        #expect(cache.usedBytes <= cache.capacityBytes)
    }

    @Test func sourceErrorPropagatesAndIsNotCached() throws {
        let bytes = ReadPathFixture.content(count: mebibyte, seed: 8)
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 8 * mebibyte)
        let reader = ObjectReader(objectKey: "e", size: Int64(bytes.count), source: source, cache: cache)
        source.failWhen { _, _ in true }
        #expect(throws: ReadPathFakeError.self) { try reader.read(offset: 5000, length: 100) }
        #expect(cache.residentBytes == 0)
        #expect(throws: ReadPathFakeError.self) { try reader.read(offset: 5000, length: 100) }
        #expect(source.calls == 2, "a failed block is fetched again, not served from the cache")

        source.failWhen(nil)
        let result = try reader.read(offset: 5000, length: 100)
        let correct = ReadPathFixture.matches(result, bytes, at: 5000) && result.count == 100
        #expect(correct)
        #expect(cache.residentBytes == block)
    }

    @Test func waitersOfAFailedDemandFetchGetTheError() throws {
        let bytes = ReadPathFixture.content(count: mebibyte, seed: 9)
        let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 30_000)
        let cache = BlockCache(capacityBytes: 8 * mebibyte)
        source.failWhen { _, _ in true }
        let readers = (0..<4).map { _ in
            ObjectReader(objectKey: "f", size: Int64(bytes.count), source: source, cache: cache)
        }
        let failed = UnsafeMutableBufferPointer<Bool>.allocate(capacity: readers.count)
        defer { failed.deallocate() }
        DispatchQueue.concurrentPerform(iterations: readers.count) { index in
            do {
                _ = try readers[index].read(offset: 10, length: 100)
                failed[index] = false
            } catch {
                failed[index] = error is ReadPathFakeError
            }
        }
        #expect(failed.allSatisfy { $0 })
        #expect(source.calls <= readers.count)
        #expect(cache.residentBytes == 0)
    }

    @Test func anObjectShorterThanItsSizeIsAnIOError() throws {
        let bytes = ReadPathFixture.content(count: 100_000, seed: 10)
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 8 * mebibyte)
        let reader = ObjectReader(objectKey: "short", size: 200_000, source: source, cache: cache)
        #expect(throws: FSError(EIO)) { try reader.read(offset: 0, length: 4096) }
        #expect(cache.residentBytes == 0)
    }

    @Test func concurrentRandomReadsWithInvalidationStayCorrect() throws {
        let bytes = ReadPathFixture.content(count: 8 * mebibyte + 333, seed: 12)
        let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 100)
        let cache = BlockCache(capacityBytes: 3 * mebibyte)
        source.cache = cache
        let readers = (0..<6).map { _ in
            ObjectReader(objectKey: "x", size: Int64(bytes.count), source: source, cache: cache)
        }
        let mismatches = UnsafeMutableBufferPointer<Int>.allocate(capacity: readers.count)
        defer { mismatches.deallocate() }
        DispatchQueue.concurrentPerform(iterations: readers.count) { index in
            var generator = ReadPathSeededGenerator(seed: UInt64(100 + index))
            var bad = 0
            for step in 0..<300 {
                let offset = Int64.random(in: 0..<Int64(bytes.count), using: &generator)
                let length = Int.random(in: 1...(700 * 1024), using: &generator)
                if index == 0 && step % 25 == 0 { cache.invalidate(objectKey: "x") }
                guard let result = try? readers[index].read(offset: offset, length: length),
                      result.count == ReadPathFixture.expectedCount(bytes, offset: offset, length: length),
                      ReadPathFixture.matches(result, bytes, at: offset) else { bad += 1; continue }
            }
            mismatches[index] = bad
        }
        #expect(mismatches.allSatisfy { $0 == 0 })
        #expect(cache.peakResidentBytes <= cache.capacityBytes)
        #expect(cache.peakUsedBytes <= cache.capacityBytes + BlockCache.overflowLimit)
        #expect(source.peakInFlightPlusResident <= cache.capacityBytes + BlockCache.overflowLimit)
    }
}
