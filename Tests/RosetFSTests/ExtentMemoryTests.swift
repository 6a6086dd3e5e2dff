// The memory bound: whatever the number of readers and the size of the objects, the cache holds at
// most capacity + BlockCache.overflowLimit bytes (resident + in flight + queued + recycled), and
// resident content alone never exceeds the capacity; demand reads still progress in tiny caches.
import Foundation
import Testing
@testable import RosetFS

@Suite(.serialized) struct ExtentMemoryTests {
    let mebibyte = ReadPathFixture.mebibyte

    @Test func eightSequentialReadersInASixteenMiBCacheStayWithinTheBudget() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 300)
        let cache = BlockCache(capacityBytes: 16 * mebibyte)
        source.cache = cache
        let readers = (0..<8).map { index in
            ObjectReader(objectKey: "object-\(index)", size: Int64(bytes.count), source: source, cache: cache)
        }
        let stop = NSLock()
        nonisolated(unsafe) var finished = false
        nonisolated(unsafe) var sampledResident = 0
        nonisolated(unsafe) var samples = 0
        let sampler = Thread {
            while !stop.withLock({ finished }) {
                let resident = cache.residentBytes
                stop.withLock { sampledResident = max(sampledResident, resident); samples += 1 }
                usleep(200)
            }
        }
        sampler.start()
        let wrong = UnsafeMutableBufferPointer<Int>.allocate(capacity: readers.count)
        defer { wrong.deallocate() }
        DispatchQueue.concurrentPerform(iterations: readers.count) { index in
            var bad = 0
            var offset = 0
            let readSize = 256 * 1024
            while offset < bytes.count {
                if let result = try? readers[index].read(offset: Int64(offset), length: readSize),
                   result.count == readSize, ReadPathFixture.matches(result, bytes, at: Int64(offset)) {
                } else {
                    bad += 1
                }
                offset += readSize
            }
            readers[index].close()
            wrong[index] = bad
        }
        stop.withLock { finished = true }
        while !sampler.isFinished { usleep(1000) }
        let bound = cache.capacityBytes + BlockCache.overflowLimit
        #expect(wrong.allSatisfy { $0 == 0 })
        #expect(stop.withLock { samples } > 10)
        #expect(stop.withLock { sampledResident } <= cache.capacityBytes)
        #expect(cache.peakResidentBytes <= cache.capacityBytes)
        #expect(cache.peakUsedBytes > cache.capacityBytes / 2, "the budget was under pressure")
        #expect(cache.peakUsedBytes <= bound)
        #expect(source.peakInFlightPlusResident <= bound)
        #expect(source.maxConcurrent > 1)
        #expect(cache.prefetchRequestCount > 0, "read-ahead still worked within the budget")
    }

    /// Evicted buffers are reused, not unmapped and mapped again: fresh memory costs a page fault
    /// and a page clear per 4 KiB, which was a third of the daemon's CPU in a cold 1 GiB read.
    @Test func aLongSequentialReadReusesEvictedMemory() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 16 * mebibyte)
        let reader = ObjectReader(objectKey: "long", size: Int64(bytes.count), source: source, cache: cache)
        defer { reader.close() }
        #expect(try ReadPathFixture.mismatchesOfASequentialScan(reader, bytes, step: 128 * 1024) == 0)
        #expect(cache.peakUsedBytes <= cache.capacityBytes + BlockCache.overflowLimit)
        // 64 MiB went through a 16 MiB cache; before evicted buffers were reused, 34 MiB were fresh.
        #expect(cache.freshlyMappedBytes <= cache.capacityBytes + cache.capacityBytes / 2,
                "fresh mappings: \(cache.freshlyMappedBytes >> 20) MiB")
    }

    /// Drop-behind: a sequential reader's memory cycles through what it has read instead of
    /// filling the cache with bytes it has passed, so a stream through a large cache stays near its
    /// read-ahead window (here 12 MiB, plus the smaller extents of its ramp-up and what it has
    /// consumed but not yet reused: 27 MiB) and rarely needs fresh memory.
    @Test func aSequentialReaderReusesWhatItHasReadBeforeTheCacheGrows() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 48 * mebibyte)
        let reader = ObjectReader(objectKey: "stream", size: Int64(bytes.count), source: source, cache: cache)
        defer { reader.close() }
        #expect(try ReadPathFixture.mismatchesOfASequentialScan(reader, bytes, step: mebibyte) == 0)
        #expect(cache.prefetchRequestCount > 0)
        // Without drop-behind the cache fills all 48 MiB before it reuses anything.
        #expect(cache.peakUsedBytes <= 32 * mebibyte, "peak \(cache.peakUsedBytes >> 20) MiB")
        #expect(cache.freshlyMappedBytes <= 32 * mebibyte, "fresh \(cache.freshlyMappedBytes >> 20) MiB")
    }

    /// A reader that is not sequential gets no drop-behind: what it read stays cached.
    @Test func whatARandomReaderReadStaysCached() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: 48 * mebibyte)
        let reader = ObjectReader(objectKey: "random", size: Int64(bytes.count), source: source, cache: cache)
        defer { reader.close() }
        // Scattered reads of whole 128 KiB blocks (each read to its extent's end): MiB i * 37 mod 60.
        let block = Int(BlockCache.blockSize)
        let offsets: [Int64] = (0..<24).map { (i: Int) -> Int64 in Int64((i * 37) % 60) * Int64(mebibyte) }
        for offset in offsets { _ = try reader.read(offset: offset, length: block) }
        let calls = source.calls
        for offset in offsets {
            #expect(ReadPathFixture.matches(try reader.read(offset: offset, length: block), bytes, at: offset))
        }
        #expect(source.calls == calls, "re-reads were served from the cache")
    }

    /// Buffers of 2 MiB and more are filled with huge pages where the kernel offers them (one fault
    /// per 2 MiB instead of 512).
    @Test func largeBuffersAreMadeOfHugePagesWhereTheKernelOffersThem() throws {
        let setting = (try? String(contentsOfFile: "/sys/kernel/mm/transparent_hugepage/enabled", encoding: .utf8)) ?? ""
        guard setting.contains("[always]") || setting.contains("[madvise]") else {
            print("note: transparent huge pages are off here (\(setting.trimmingCharacters(in: .whitespacesAndNewlines))); skipped")
            return
        }
        let buffer = try ExtentMemory.allocate(8 * mebibyte)
        defer { ExtentMemory.free(buffer) }
        for offset in stride(from: 0, to: buffer.count, by: ExtentMemory.pageSize) { buffer[offset] = 1 }
        // The mapping's AnonHugePages line in /proc/self/smaps.
        let start = UInt(bitPattern: buffer.baseAddress!)
        // Read to the end: /proc files report a size of 0.
        guard let handle = FileHandle(forReadingAtPath: "/proc/self/smaps") else { throw FSError(EIO) }
        let smaps = String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        try handle.close()
        var inMapping = false
        var hugeKiB: Int?
        for line in smaps.split(separator: "\n") {
            if let dash = line.firstIndex(of: "-"), let low = UInt(line[..<dash], radix: 16),
               let space = line.firstIndex(of: " "), let high = UInt(line[line.index(after: dash)..<space], radix: 16) {
                inMapping = low <= start && start < high
            } else if inMapping, line.hasPrefix("AnonHugePages:") {
                hugeKiB = Int(line.split(separator: " ")[1])
            }
        }
        #expect((hugeKiB ?? 0) >= 2048, "AnonHugePages of the buffer: \(hugeKiB.map { "\($0) kB" } ?? "none")")
    }

    @Test func demandReadsProgressInACacheSmallerThanABlock() throws {
        let bytes = ReadPathFixture.content(count: 6 * mebibyte + 77, seed: 31)
        for capacity in [0, 64 * 1024, 300 * 1024] {
            let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 100)
            let cache = BlockCache(capacityBytes: capacity)
            source.cache = cache
            let readers = (0..<8).map { _ in
                ObjectReader(objectKey: "tiny", size: Int64(bytes.count), source: source, cache: cache)
            }
            let wrong = UnsafeMutableBufferPointer<Int>.allocate(capacity: readers.count)
            defer { wrong.deallocate() }
            DispatchQueue.concurrentPerform(iterations: readers.count) { index in
                var bad = 0
                var offset = index * 1000
                while offset < bytes.count {
                    let length = 1024 * 1024 + 17
                    if let result = try? readers[index].read(offset: Int64(offset), length: length),
                       result.count == ReadPathFixture.expectedCount(bytes, offset: Int64(offset), length: length),
                       ReadPathFixture.matches(result, bytes, at: Int64(offset)) {
                    } else {
                        bad += 1
                    }
                    offset += length
                }
                wrong[index] = bad
            }
            #expect(wrong.allSatisfy { $0 == 0 }, "capacity \(capacity)")
            #expect(cache.peakResidentBytes <= capacity, "capacity \(capacity)")
            #expect(cache.peakUsedBytes <= capacity + BlockCache.overflowLimit, "capacity \(capacity)")
            #expect(source.peakInFlightPlusResident <= capacity + BlockCache.overflowLimit)
        }
    }

    @Test func aReadLargerThanTheCacheIsServedInPieces() throws {
        let bytes = ReadPathFixture.large
        let source = ReadPathFakeSource(bytes: bytes)
        let cache = BlockCache(capacityBytes: mebibyte)
        let reader = ObjectReader(objectKey: "big", size: Int64(bytes.count), source: source, cache: cache)
        let result = try reader.read(offset: 12345, length: 10 * mebibyte)
        let correct = result.count == 10 * mebibyte && ReadPathFixture.matches(result, bytes, at: 12345)
        #expect(correct)
        #expect(cache.peakResidentBytes <= mebibyte)
        #expect(cache.peakUsedBytes <= mebibyte + BlockCache.overflowLimit)
    }

    @Test func evictionIsLeastRecentlyUsed() throws {
        let bytes = ReadPathFixture.content(count: 4 * mebibyte, seed: 41)
        let source = ReadPathFakeSource(bytes: bytes)
        let block = Int(BlockCache.blockSize)
        let cache = BlockCache(capacityBytes: 4 * block)
        let reader = ObjectReader(objectKey: "lru", size: Int64(bytes.count), source: source, cache: cache)
        // Scattered single-block reads (no read-ahead): blocks 0, 10, 20, 30 fill the cache.
        for index in [0, 10, 20, 30] { _ = try reader.read(offset: Int64(index * block), length: 10) }
        _ = try reader.read(offset: 0, length: 10)           // block 0 becomes the most recent
        _ = try reader.read(offset: Int64(5 * block), length: 10)  // evicts block 10, the oldest
        #expect(cache.residentBytes == 4 * block)
        let calls = source.calls
        _ = try reader.read(offset: 0, length: 10)
        _ = try reader.read(offset: Int64(20 * block), length: 10)
        #expect(source.calls == calls, "blocks 0 and 20 stayed")
        _ = try reader.read(offset: Int64(10 * block), length: 10)
        #expect(source.calls == calls + 1, "block 10 was evicted")
    }
}
