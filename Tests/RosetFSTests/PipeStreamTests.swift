// ObjectReader's pipe streams (PipeStream) against an in-memory PipeRangeSource: a
// sequential reader gets exactly the object's bytes from pipes, at the kernel's read sizes and out
// of order; anything the stream cannot answer (a reply that left bytes behind, a failed transfer,
// a source that cannot fill pipes) still reads correctly through the block cache; pipes are
// charged to the cache's capacity and returned.
import Foundation
import Testing
@testable import RosetFS
#if canImport(Glibc)
import Glibc
#endif

/// Content written into pipes with write(2) (the real source splices from a socket), counting calls.
final class FakePipeSource: PipeRangeSource, @unchecked Sendable {
    let bytes: [UInt8]
    let canFillPipes: Bool
    private let lock = NSLock()
    private var _pipeCalls = 0
    private var _failAfterCalls: Int?

    init(bytes: [UInt8], canFillPipes: Bool = true) {
        self.bytes = bytes
        self.canFillPipes = canFillPipes
    }

    var pipeCalls: Int { lock.withLock { _pipeCalls } }
    /// Calls after the first `n` fail midway (after their first pipe).
    func failAfter(_ n: Int) { lock.withLock { _failAfterCalls = n } }

    func read(offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = max(0, min(buffer.count, bytes.count - Int(offset)))
        bytes.withUnsafeBytes { buffer.baseAddress!.copyMemory(from: $0.baseAddress! + Int(offset), byteCount: n) }
        return n
    }

    func fillPipes(offset: Int64, pipes: [(fd: Int32, count: Int)], filled: (Int) -> Bool) throws -> Bool {
        guard canFillPipes else { return false }
        let call = lock.withLock { _pipeCalls += 1; return _pipeCalls }
        let failing = lock.withLock { _failAfterCalls.map { call > $0 } ?? false }
        var position = Int(offset)
        for (i, pipe) in pipes.enumerated() {
            if failing && i == 1 { throw ReadPathFakeError(offset: Int64(position)) }
            var done = 0
            while done < pipe.count {
                let n = bytes.withUnsafeBytes { write(pipe.fd, $0.baseAddress! + position + done, pipe.count - done) }
                guard n > 0 else { throw ReadPathFakeError(offset: Int64(position)) }
                done += n
            }
            position += pipe.count
            if !filled(i) { return true }
        }
        return true
    }
}

@Suite struct PipeStreamTests {
    static func content(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 2654435761 >> 13) } }

    /// Reads [offset, offset + length) the way the FUSE layer does: from pipes when handed
    /// pipes (draining them, or only `drainLimit` bytes of each to imitate a failed reply).
    static func read(_ reader: ObjectReader, _ offset: Int64, _ length: Int, drainLimit: Int? = nil,
                     piped: inout Int) throws -> [UInt8] {
        var out: [UInt8] = []
        var pipedHere = 0
        try reader.read(offset: offset, length: length, reply: { out = [UInt8](joining: $0) }, pipeReply: { segments in
            for (fd, count) in segments {
                var left = min(count, drainLimit ?? count)
                var buffer = [UInt8](repeating: 0, count: 65536)
                while left > 0 {
                    let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, min(left, $0.count)) }
                    guard n > 0 else { break }
                    out += buffer[0..<n]
                    left -= n
                }
                pipedHere += count
            }
        })
        piped += pipedHere
        return out
    }

    /// A reader of `source`'s bytes on a fresh cache of `cacheBytes`.
    static func reader(_ source: FakePipeSource, cacheBytes: Int = 64 << 20,
                       kernelReadAhead: Int64 = 4 << 20) -> (ObjectReader, BlockCache) {
        let cache = BlockCache(capacityBytes: cacheBytes)
        return (ObjectReader(objectKey: "k", size: Int64(source.bytes.count), source: source, cache: cache,
                             kernelReadAhead: kernelReadAhead), cache)
    }

    /// Reads from `offset` to the end with reads of `size` through pipes, checking each read's
    /// bytes; `after` runs after each read.
    static func scan(_ reader: ObjectReader, _ bytes: [UInt8], from offset: Int = 0, size: Int, piped: inout Int,
                     after: () -> Void = {}) throws {
        var offset = offset
        while offset < bytes.count {
            let got = try read(reader, Int64(offset), size, piped: &piped)
            #expect(got.elementsEqual(bytes[offset..<min(bytes.count, offset + size)]), "read at \(offset)")
            after()
            offset += size
        }
    }

    @Test func aSequentialReaderGetsTheObjectFromPipesAtKernelSizes() throws {
        let bytes = Self.content(24 << 20 + 12345)
        for readSize in [992 * 1024, 128 * 1024, 1 << 20] {
            let (reader, cache) = Self.reader(FakePipeSource(bytes: bytes))
            var piped = 0
            try Self.scan(reader, bytes, size: readSize, piped: &piped) { #expect(cache.usedBytes <= cache.capacityBytes) }
            #expect(piped > bytes.count * 3 / 4, "read size \(readSize): \(piped) bytes from pipes")
            #expect(cache.pipeBytesServed == Int64(piped))
            #expect(cache.prefetchRequestCount <= 2, "the stream reads ahead, not the cache")
            reader.close()
            try waitUntil { cache.externalChargeBytes == 0 }
        }
    }

    @Test func readsThatArriveOutOfOrderStayCorrect() throws {
        let bytes = Self.content(8 << 20)
        let (reader, _) = Self.reader(FakePipeSource(bytes: bytes))
        var piped = 0
        let size = 992 * 1024
        for i in 0..<3 { _ = try Self.read(reader, Int64(i * size), size, piped: &piped) }
        // The kernel's read-ahead requests, handled by FUSE threads in another order: the later
        // one first (it waits, then drops the bytes before it), the earlier one after it.
        let later = Int64(4 * size), earlier = Int64(3 * size)
        let got = try Self.read(reader, later, size, piped: &piped)
        #expect(got.elementsEqual(bytes[Int(later)..<Int(later) + size]))
        let back = try Self.read(reader, earlier, size, piped: &piped)
        #expect(back.elementsEqual(bytes[Int(earlier)..<Int(earlier) + size]), "answered by the cache")
        // Two threads at once, adjacent reads.
        let lock = NSLock()
        var results: [Int64: [UInt8]] = [:]
        DispatchQueue.concurrentPerform(iterations: 2) { i in
            var p = 0
            let offset = Int64((6 - i) * size)  // 6 first on one thread, 5 on the other
            let r = (try? Self.read(reader, offset, size, piped: &p)) ?? []
            lock.withLock { results[offset] = r }
        }
        for offset in [Int64(5 * size), Int64(6 * size)] {
            #expect(results[offset]?.elementsEqual(bytes[Int(offset)..<Int(offset) + size]) == true, "read at \(offset)")
        }
        reader.close()
    }

    @Test func aBurstOfReadsInAnyOrderWithinTheKernelWindowIsAnsweredFromPipes() throws {
        let bytes = Self.content(16 << 20)
        let (reader, _) = Self.reader(FakePipeSource(bytes: bytes))
        let chunk = Int(PipeStream.chunkSize)
        var piped = 0
        for i in 0..<12 { _ = try Self.read(reader, Int64(i * chunk), chunk, piped: &piped) }
        // The kernel's read-ahead of 4 MiB at once, taken by FUSE threads in another order:
        // none of it is given up because a later chunk was read first.
        piped = 0
        for i in [19, 13, 17, 12, 18, 14, 16, 15] {
            let got = try Self.read(reader, Int64(i * chunk), chunk, piped: &piped)
            #expect(got.elementsEqual(bytes[i * chunk..<(i + 1) * chunk]), "chunk \(i)")
        }
        #expect(piped == 8 * chunk, "\(piped / chunk) of 8 chunks from pipes")
        reader.close()
    }

    @Test func chunksAreKeptTwoKernelReadAheadWindowsBehindTheFurthestRead() throws {
        let bytes = Self.content(32 << 20)
        let chunk = Int(PipeStream.chunkSize)
        // Chunk 12 is read last, after chunk 30, 9 MiB further on: within two 8 MiB windows, past
        // two of 4 MiB (where it was given up, and the cache answered it).
        for (readAhead, fromPipes) in [(Int64(8 << 20), true), (Int64(4 << 20), false)] {
            let (reader, _) = Self.reader(FakePipeSource(bytes: bytes), kernelReadAhead: readAhead)
            var piped = 0
            for i in Array(0..<12) + Array(13...30) {
                let got = try Self.read(reader, Int64(i * chunk), chunk, piped: &piped)
                #expect(got.elementsEqual(bytes[i * chunk..<(i + 1) * chunk]), "chunk \(i)")
            }
            piped = 0
            let got = try Self.read(reader, Int64(12 * chunk), chunk, piped: &piped)
            #expect(got.elementsEqual(bytes[12 * chunk..<13 * chunk]), "chunk 12")
            #expect((piped == chunk) == fromPipes, "read-ahead \(readAhead >> 20) MiB: \(piped) bytes from pipes")
            reader.close()
        }
    }

    @Test func aReplyThatLeftBytesInAPipeBreaksOnlyThatChunk() throws {
        let bytes = Self.content(12 << 20)
        let (reader, _) = Self.reader(FakePipeSource(bytes: bytes))
        var piped = 0
        let size = 256 * 1024
        var offset = 0
        while offset < 2 << 20 { _ = try Self.read(reader, Int64(offset), size, piped: &piped); offset += size }
        // A reply that took only part of its bytes (as when the kernel refused it).
        _ = try Self.read(reader, Int64(offset), size, drainLimit: 1000, piped: &piped)
        try Self.scan(reader, bytes, from: offset + size, size: size, piped: &piped)
        reader.close()
    }

    @Test func aFailedTransferFallsBackToTheCacheAndIsNotRetriedForThatReader() throws {
        let bytes = Self.content(16 << 20)
        let source = FakePipeSource(bytes: bytes)
        source.failAfter(1)
        let (reader, cache) = Self.reader(source)
        var piped = 0
        try Self.scan(reader, bytes, size: 992 * 1024, piped: &piped)
        #expect(source.pipeCalls <= 3, "no new stream after a failure: \(source.pipeCalls) calls")
        #expect(cache.prefetchRequestCount > 0, "the cache read ahead once the stream failed")
        reader.close()
        try waitUntil { cache.externalChargeBytes == 0 }
    }

    @Test func aSourceThatCannotFillPipesAndACallerWithoutPipesUseTheCache() throws {
        let bytes = Self.content(8 << 20)
        for (canFill, withPipes) in [(false, true), (true, false)] {
            let source = FakePipeSource(bytes: bytes, canFillPipes: canFill)
            let (reader, cache) = Self.reader(source)
            var offset = 0
            let size = 992 * 1024
            while offset < bytes.count {
                var piped = 0
                let got = withPipes ? try Self.read(reader, Int64(offset), size, piped: &piped)
                                    : try reader.read(offset: Int64(offset), length: size)
                #expect(got.elementsEqual(bytes[offset..<min(bytes.count, offset + size)]))
                #expect(piped == 0)
                offset += size
            }
            #expect(source.pipeCalls == 0 && cache.pipeBytesServed == 0)
            reader.close()
        }
    }

    @Test func pipesAreChargedToTheCacheAndASmallCacheStillStreams() throws {
        let bytes = Self.content(10 << 20)
        let (reader, cache) = Self.reader(FakePipeSource(bytes: bytes), cacheBytes: 4 << 20)
        var piped = 0, peakCharge = 0
        try Self.scan(reader, bytes, size: 992 * 1024, piped: &piped) {
            peakCharge = max(peakCharge, cache.externalChargeBytes)
            #expect(cache.usedBytes <= cache.capacityBytes)
        }
        #expect(peakCharge > 0 && peakCharge <= cache.capacityBytes)
        #expect(piped > 0)
        reader.close()
        try waitUntil { cache.externalChargeBytes == 0 }
    }

    private func waitUntil(_ condition: () -> Bool) throws {
        let deadline = Date().addingTimeInterval(5)
        while !condition() {
            guard Date() < deadline else { Issue.record("condition not met within 5 s"); return }
            usleep(10_000)
        }
    }
}
