// The disk data cache's logic against a real folder and the in-memory fake source: a second read
// (also by a new cache on the same folder, as after a remount) fetches nothing; another version
// of an object is never served old bytes; a flipped byte, a torn block or a leftover temporary
// file is never served; the size bound holds; an unusable folder passes reads through;
// concurrent readers of one block cause one fetch; small objects are fetched whole.
import Foundation
import Logging
import Testing
@testable import RosetFS
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized)
struct DiskDataCacheTests {
    let mib = Int(DiskDataCache.blockSize)

    /// A fresh folder under /tmp, removed by the caller.
    func scratch() -> String {
        let path = NSTemporaryDirectory() + "roset-dc-" + UUID().uuidString.prefix(8)
        try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    func content(_ count: Int, seed: UInt64) -> [UInt8] {
        var g = ReadPathSeededGenerator(seed: seed)
        let words = (0..<(count + 7) / 8).map { _ in g.next() }
        return words.withUnsafeBytes { Array($0.prefix(count)) }
    }

    func cache(_ folder: String, bound: Int64? = 1 << 30, floor: Int64 = 0) -> DiskDataCache {
        let c = DiskDataCache(folder: folder, boundBytes: bound, minFreeBytes: floor, logger: Logger(label: "test"),
                              scanInBackground: false)
        c.waitForScan()
        return c
    }

    func read(_ c: DiskDataCache, _ key: String, _ source: ReadPathFakeSource, offset: Int64, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        let n = try out.withUnsafeMutableBytes {
            try c.read(objectKey: key, objectSize: Int64(source.bytes.count), offset: offset, into: $0, source: source)
        }
        return Array(out[0..<n])
    }

    /// Block files below the cache folder (not LOCK, not temporaries).
    func blockFiles(_ folder: String) -> [String] {
        let e = FileManager.default.enumerator(atPath: folder)
        return (e?.compactMap { $0 as? String } ?? []).filter { $0.split(separator: "/").last.map { Int64($0) != nil } ?? false }
    }

    @Test func secondReadAndANewCacheOnTheSameFolderFetchNothing() throws {
        let folder = scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bytes = content(20 * mib + 12345, seed: 1)
        let source = ReadPathFakeSource(bytes: bytes)
        do {
        let c = cache(folder)
        // A 4 KiB random read fetches its aligned MiB; the neighbours are then local.
        #expect(try read(c, "n1:e1", source, offset: Int64(5 * mib + 8192), count: 4096) == Array(bytes[5 * mib + 8192..<5 * mib + 12288]))
        #expect(source.calls == 1 && source.bytesFetched == mib)
        #expect(try read(c, "n1:e1", source, offset: Int64(5 * mib + 700_000), count: 131_072) == Array(bytes[5 * mib + 700_000..<5 * mib + 831_072]))
        #expect(source.calls == 1)
        // The whole object, read in 128 KiB aligned pieces like the memory cache asks.
        var all: [UInt8] = []
        var offset = 0
        while offset < bytes.count {
            all += try read(c, "n1:e1", source, offset: Int64(offset), count: min(131_072, bytes.count - offset))
            offset += 131_072
        }
        #expect(all == bytes)
        #expect(source.bytesFetched == bytes.count)
        }
        let again = cache(folder)   // a remount: a new cache on the same folder
        let before = source.calls
        #expect(try read(again, "n1:e1", source, offset: 0, count: bytes.count) == bytes)
        #expect(source.calls == before)
        #expect(again.snapshot.hits > 0 && again.snapshot.misses == 0)
        #expect(again.snapshot.blocks == 21)
    }

    @Test func anotherVersionNeverGetsTheOldBytes() throws {
        let folder = scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let old = ReadPathFakeSource(bytes: content(3 * mib, seed: 2))
        let new = ReadPathFakeSource(bytes: content(3 * mib, seed: 3))
        let c = cache(folder)
        #expect(try read(c, "n1:etagA:3", old, offset: 0, count: 3 * mib) == old.bytes)
        #expect(try read(c, "n1:etagB:3", new, offset: 0, count: 3 * mib) == new.bytes)
        #expect(new.calls == 1)   // a small object: fetched whole
        #expect(try read(c, "n1:etagA:3", old, offset: 0, count: 3 * mib) == old.bytes)
        #expect(old.calls == 1)
    }

    @Test func aFlippedByteATornBlockAndATemporaryFileAreNeverServed() throws {
        let folder = scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = ReadPathFakeSource(bytes: content(4 * mib, seed: 4))
        do {
            let c = cache(folder)
            #expect(try read(c, "k", source, offset: 0, count: 4 * mib) == source.bytes)
        }
        let files = blockFiles(folder).sorted()
        #expect(files.count == 4)
        // Flip one byte in block 1 and cut block 2 short (a torn write), and leave a temporary.
        let block1 = folder + "/" + files.first { $0.hasSuffix("/1") }!
        let fd = open(block1, O_RDWR)
        var byte: UInt8 = 0
        _ = pread(fd, &byte, 1, 64 + 300_000)
        byte ^= 0x10
        _ = pwrite(fd, &byte, 1, 64 + 300_000)
        close(fd)
        let block2 = folder + "/" + files.first { $0.hasSuffix("/2") }!
        #expect(truncate(block2, 64 + 1000) == 0)
        let objectFolder = (block2 as NSString).deletingLastPathComponent
        let temporary = objectFolder + "/.tmp-3-1"
        _ = FileManager.default.createFile(atPath: temporary, contents: Data(repeating: 7, count: 100))
        let c = cache(folder)
        #expect(!FileManager.default.fileExists(atPath: temporary))
        let calls = source.calls
        #expect(try read(c, "k", source, offset: 0, count: 4 * mib) == source.bytes)
        #expect(source.calls == calls + 2)   // blocks 1 and 2 again, nothing else
        #expect(try read(c, "k", source, offset: 0, count: 4 * mib) == source.bytes)
        #expect(source.calls == calls + 2)
    }

    @Test func theBoundHoldsWithADataSetThreeTimesItsSize() throws {
        let folder = scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bound: Int64 = 4 << 20
        let c = cache(folder, bound: bound)
        for i in 0..<6 {
            let source = ReadPathFakeSource(bytes: content(2 * mib, seed: UInt64(10 + i)))
            #expect(try read(c, "obj\(i)", source, offset: 0, count: 2 * mib) == source.bytes)
            #expect(c.snapshot.bytes <= bound)
            let onDisk = blockFiles(folder).reduce(Int64(0)) { sum, file in
                var st = stat()
                _ = stat(folder + "/" + file, &st)
                return sum + Int64(st.st_blocks) * 512
            }
            #expect(onDisk <= bound)
        }
        // The newest objects are the ones kept.
        let last = ReadPathFakeSource(bytes: content(2 * mib, seed: 15))
        #expect(try read(c, "obj5", last, offset: 0, count: 2 * mib) == last.bytes)
        #expect(last.calls == 0)
    }

    @Test func anUnusableFolderPassesReadsThrough() throws {
        let folder = scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let file = folder + "/a-file"
        _ = FileManager.default.createFile(atPath: file, contents: Data([1]))
        let c = cache(file + "/cache")   // below a regular file: cannot be created
        let source = ReadPathFakeSource(bytes: content(3 * mib, seed: 5))
        #expect(try read(c, "k", source, offset: 100, count: 5000) == Array(source.bytes[100..<5100]))
        #expect(source.bytesFetched == 5000)   // straight through, no aligned block fetched
        #expect(!c.snapshot.usable)
        // A second daemon on a folder in use gets reads through as well.
        let first = cache(folder + "/shared")
        let second = cache(folder + "/shared")
        #expect(first.snapshot.usable && !second.snapshot.usable)
        #expect(try read(second, "k", source, offset: 0, count: 10) == Array(source.bytes[0..<10]))
    }

    @Test func concurrentReadersOfOneBlockCauseOneFetch() throws {
        let folder = scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let bytes = content(32 * mib, seed: 6)
        let source = ReadPathFakeSource(bytes: bytes, latencyMicroseconds: 50_000)
        let c = cache(folder)
        let group = DispatchGroup()
        final class Count: @unchecked Sendable { let lock = NSLock(); var value = 0 }
        let wrong = Count()
        for i in 0..<8 {
            group.enter()
            DispatchQueue.global().async {
                defer { group.leave() }
                let offset = 10 * mib + i * 131_072
                let got = try? self.read(c, "big", source, offset: Int64(offset), count: 131_072)
                if got != Array(bytes[offset..<offset + 131_072]) { wrong.lock.withLock { wrong.value += 1 } }
            }
        }
        group.wait()
        #expect(wrong.value == 0)
        #expect(source.calls == 1)
    }

    @Test func aFailedFetchKeepsNothingAndReportsTheError() throws {
        let folder = scratch()
        defer { try? FileManager.default.removeItem(atPath: folder) }
        let source = ReadPathFakeSource(bytes: content(16 * mib, seed: 7))
        let c = cache(folder)
        source.failWhen { _, _ in true }
        #expect(throws: ReadPathFakeError.self) { _ = try read(c, "k", source, offset: 0, count: 4096) }
        source.failWhen(nil)
        #expect(try read(c, "k", source, offset: 0, count: 4096) == Array(source.bytes[0..<4096]))
        #expect(blockFiles(folder).count == 1)
    }
}
