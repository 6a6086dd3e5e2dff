// The persistent data cache on local disk: object content kept across epochs, remounts and
// crashes, below the memory BlockCache and above the network (DiskCachedSource sits between the
// two as the memory cache's RangeSource).
//
// LAYOUT (the scan at start-up reads exactly this; bump `BlockHeader.magic` on change)
//
//   <folder>/LOCK                  flock(LOCK_EX) held by the one daemon using the folder
//   <folder>/<objectHash>/<index>  block `index` (1 MiB aligned) of one object version, where
//                                  objectHash is 32 hex digits of sha256(objectKey) and objectKey
//                                  names node id, etag and size (ObjectReader); a 64-byte header
//                                  (magic, objectHash prefix, index, length, one CRC32C per
//                                  128 KiB chunk) then the bytes
//   <folder>/<objectHash>/.tmp-*   a block being written; never read, removed by the scan
//
// Invariants
// - A block is served only if its header names the object version, index and length asked for
//   and the CRC32C of every chunk served matches. Anything else (a flipped byte, a torn write
//   after a crash) is removed and fetched again; a reader never gets bytes it did not ask for.
// - A block file appears under its name only complete: written under a temporary name, then
//   renamed. A new etag is a new objectKey, so the old version's bytes are never looked at again
//   (they age out of the LRU).
// - Bytes on disk (each file rounded up to 4 KiB) stay within `boundBytes`, and a block is written
//   only if its file system keeps `minFreeBytes` free afterwards: least recently used blocks are
//   removed first, and when nothing is left to remove the block is simply not kept.
// - Concurrent readers of one block cause one fetch: a block being fetched is in `inFlight`, and
//   others wait for it and then read it from disk (or fetch it themselves if that failed).
// - The cache never fails a read: a folder that cannot be created, written or locked, or a full
//   disk, makes reads go to the network, and the daemon logs each kind of trouble once.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging

public final class DiskDataCache: @unchecked Sendable {
    /// The unit of storage and of fetching on a miss: a random reader's small read downloads the
    /// aligned MiB around it, so its neighbours are answered from disk; large enough that a
    /// request's latency is amortised, small enough that a random reader of a huge file caches
    /// only about what it reads.
    public static let blockSize: Int64 = 1 << 20
    /// The unit of checksumming inside a block: the memory cache's block, so that a read from the
    /// memory cache (128 KiB aligned) verifies exactly the chunks it reads.
    static let chunkSize: Int64 = 128 * 1024
    static let chunksPerBlock = Int(blockSize / chunkSize)
    static let headerSize = 64
    /// Objects up to this size are fetched whole on their first read (one request instead of one
    /// per MiB): a data set's small files are read whole anyway.
    public static let wholeObjectLimit: Int64 = 8 << 20
    /// Memory for fetches that do not land straight in the reader's buffer.
    static let scratchBudget = 32 << 20

    public let folder: String
    private let logger: Logger
    private let lock = NSCondition()
    private var boundValue: Int64
    private let boundIsDefault: Bool
    private let freeAtStart: Int64
    public let minFreeBytes: Int64
    private var lockFD: Int32 = -1
    /// False when the folder cannot be used at all: every read goes to the network.
    private var usable = true
    /// Until the start-up scan finished, a block missing from `entries` may still be on disk.
    private var scanned = false

    private final class Entry {
        let path: String
        var bytes: Int64
        var older: Entry?
        var newer: Entry?
        init(path: String, bytes: Int64) { self.path = path; self.bytes = bytes }
    }
    private var entries: [String: Entry] = [:]
    private var oldest: Entry?
    private var newest: Entry?
    private var totalBytes: Int64 = 0
    /// Room promised to blocks being written (counted against the bound and the floor until they
    /// are in `entries` or given up), so that parallel writers cannot overshoot together.
    private var reservedBytes: Int64 = 0
    private var inFlight = Set<String>()
    private var scratchInUse = 0
    private var knownObjectFolders = Set<String>()

    private var hits: Int64 = 0
    private var misses: Int64 = 0
    private var logged = Set<String>()

    /// Opens (creating) the cache in `folder`. `boundBytes` nil: half of (the free space of its file
    /// system now plus what the cache already holds). `minFreeBytes` nil: 10% of the file system,
    /// at least 1 GiB. The scan of what is on disk runs in the background; until it ends blocks
    /// are looked up on disk directly.
    public init(folder: String, boundBytes: Int64?, minFreeBytes: Int64?, logger: Logger, scanInBackground: Bool = true) {
        self.folder = folder
        self.logger = logger
        var fs = statvfs()
        var total: Int64 = 0
        var free: Int64 = 0
        let made = Self.makeFolder(folder)
        if made, statvfs(folder, &fs) == 0 {
            total = Int64(fs.f_blocks) * Int64(fs.f_frsize)
            free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
        }
        freeAtStart = free
        self.minFreeBytes = minFreeBytes ?? max(1 << 30, total / 10)
        boundIsDefault = boundBytes == nil
        boundValue = boundBytes ?? free / 2
        guard made else {
            usable = false
            scanned = true
            noteOnce("folder", "the data cache folder \(folder) cannot be created (\(String(cString: strerror(errno)))): reads go to the network")
            return
        }
        lockFD = Glibc.open(folder + "/LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if lockFD < 0 || flock(lockFD, LOCK_EX | LOCK_NB) != 0 {
            usable = false
            scanned = true
            noteOnce("lock", "the data cache folder \(folder) is not writable or is in use by another daemon: reads go to the network")
            return
        }
        if scanInBackground {
            let t = Thread { [self] in scan() }
            t.name = "roset-data-cache-scan"
            t.start()
        } else {
            scan()
        }
    }

    deinit { if lockFD >= 0 { Glibc.close(lockFD) } }

    private static func makeFolder(_ path: String) -> Bool {
        do {
            try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true,
                                                    attributes: [.posixPermissions: 0o700])
        } catch {
            return false
        }
        var st = stat()
        return stat(path, &st) == 0 && (st.st_mode & S_IFMT) == S_IFDIR
    }

    // MARK: Numbers for status and tests

    public struct Snapshot: Codable, Sendable, Equatable {
        public var folder: String
        public var bytes: Int64
        public var boundBytes: Int64
        public var minFreeBytes: Int64
        public var blocks: Int
        /// Blocks read from disk, and blocks that had to be fetched, since the daemon started.
        public var hits: Int64
        public var misses: Int64
        public var usable: Bool
        public var hitRatio: Double? { hits + misses == 0 ? nil : Double(hits) / Double(hits + misses) }
    }

    public var snapshot: Snapshot {
        lock.withLock {
            Snapshot(folder: folder, bytes: totalBytes, boundBytes: boundValue, minFreeBytes: minFreeBytes,
                     blocks: entries.count, hits: hits, misses: misses, usable: usable)
        }
    }

    public var boundBytes: Int64 { lock.withLock { boundValue } }

    /// Waits until the start-up scan has finished (tests).
    func waitForScan() {
        lock.lock()
        while !scanned { lock.wait() }
        lock.unlock()
    }

    // MARK: Reading

    /// Bytes [offset, offset + buffer.count) of the object (fewer only at its end), from disk
    /// where cached, else fetched from `source` in aligned blocks that are then kept.
    func read(objectKey: String, objectSize: Int64, offset: Int64, into buffer: UnsafeMutableRawBufferPointer,
              source: RangeSource) throws -> Int {
        let end = min(offset + Int64(buffer.count), objectSize)
        guard offset < end else { return 0 }
        // `usable` is decided in init and never changes afterwards.
        guard usable else { return try source.read(offset: offset, into: buffer) }
        let hash = SHA256Hasher.hex(of: Array(objectKey.utf8))
        let objectHash = String(hash.prefix(32))
        var position = offset
        while position < end {
            let block = position / Self.blockSize
            let blockEnd = min((block + 1) * Self.blockSize, end)
            let destination = UnsafeMutableRawBufferPointer(rebasing: buffer[Int(position - offset)..<Int(blockEnd - offset)])
            if readCached(objectHash: objectHash, objectSize: objectSize, block: block, from: position, into: destination) {
                position = blockEnd
                continue
            }
            // A miss: claim the run of missing blocks from here (the whole object if small), or wait
            // for the thread fetching this block.
            guard let run = claimRun(objectHash: objectHash, objectSize: objectSize, firstBlock: block,
                                     requestEnd: end) else { continue }
            let fetched = try fetchAndStore(objectHash: objectHash, objectSize: objectSize, run: run, source: source,
                                            position: position, requestEnd: end, buffer: buffer, bufferOffset: offset)
            position = fetched
        }
        return Int(end - offset)
    }

    private func path(_ objectHash: String, _ block: Int64) -> String { "\(folder)/\(objectHash)/\(block)" }

    private static func blockLength(_ block: Int64, objectSize: Int64) -> Int {
        Int(min(blockSize, objectSize - block * blockSize))
    }

    /// Fills `destination` (bytes from `from` within block `block`) from the block's file; false
    /// (counting a miss) if it is not cached or does not verify (then it is removed).
    private func readCached(objectHash: String, objectSize: Int64, block: Int64, from: Int64,
                            into destination: UnsafeMutableRawBufferPointer) -> Bool {
        let file = path(objectHash, block)
        lock.lock()
        while inFlight.contains(file) { lock.wait() }
        guard usable, entries[file] != nil || !scanned else { lock.unlock(); return false }
        if let entry = entries[file] { moveToNewest(entry) }
        lock.unlock()
        let fd = Glibc.open(file, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            lock.withLock { if let entry = entries[file] { removeEntry(entry) } }
            return false
        }
        defer { Glibc.close(fd) }
        let length = Self.blockLength(block, objectSize: objectSize)
        var header = [UInt8](repeating: 0, count: Self.headerSize)
        let ok: Bool = header.withUnsafeMutableBytes { h in
            guard Self.preadFully(fd, h, offset: 0),
                  let parsed = BlockHeader(h), parsed.objectHash == BlockHeader.hashPrefix(objectHash),
                  parsed.index == block, parsed.length == length else { return false }
            // The chunks that cover the bytes asked for, read and verified.
            let inBlock = from - block * Self.blockSize
            let firstChunk = Int(inBlock / Self.chunkSize)
            let wantedEnd = inBlock + Int64(destination.count)
            let lastChunk = Int((wantedEnd - 1) / Self.chunkSize)
            let chunkStart = Int64(firstChunk) * Self.chunkSize
            let chunkEnd = min(Int64(lastChunk + 1) * Self.chunkSize, Int64(length))
            let direct = chunkStart == inBlock && chunkEnd == wantedEnd
            let scratch: UnsafeMutableRawBufferPointer = direct ? destination
                : .allocate(byteCount: Int(chunkEnd - chunkStart), alignment: 16)
            defer { if !direct { scratch.deallocate() } }
            guard Self.preadFully(fd, scratch, offset: Int64(Self.headerSize) + chunkStart) else { return false }
            for chunk in firstChunk...lastChunk {
                let a = Int(Int64(chunk) * Self.chunkSize - chunkStart)
                let b = Int(min(Int64(chunk + 1) * Self.chunkSize, Int64(length)) - chunkStart)
                var crc = CRC32C()
                crc.update(UnsafeRawBufferPointer(rebasing: scratch[a..<b]))
                if crc.value != parsed.chunkCRCs[chunk] { return false }
            }
            if !direct {
                let from = Int(inBlock - chunkStart)
                destination.copyMemory(from: UnsafeRawBufferPointer(rebasing: scratch[from..<from + destination.count]))
            }
            return true
        }
        lock.lock()
        defer { lock.unlock() }
        if ok {
            hits += 1
            if entries[file] == nil, !scanned { adopt(file, bytes: Self.fileBytes(fd)) }
            return true
        }
        noteOnce("corrupt", "the data cache block \(file) did not verify (damaged or torn): removed, fetching it again")
        unlink(file)
        if let entry = entries[file] { removeEntry(entry) }
        return false
    }

    /// The blocks from `firstBlock` on that this thread fetches: consecutive, missing, not in
    /// flight elsewhere, up to the end of the request rounded to a block (to the object's end for a
    /// small object, 8 MiB at most). Nil when `firstBlock` is in flight: the caller looks again.
    private func claimRun(objectHash: String, objectSize: Int64, firstBlock: Int64, requestEnd: Int64) -> Range<Int64>? {
        let objectBlocks = (objectSize + Self.blockSize - 1) / Self.blockSize
        let wanted = objectSize <= Self.wholeObjectLimit ? objectBlocks
            : min(objectBlocks, (requestEnd + Self.blockSize - 1) / Self.blockSize)
        let limit = min(wanted, firstBlock + Self.wholeObjectLimit / Self.blockSize)
        lock.lock()
        defer { lock.unlock() }
        guard !inFlight.contains(path(objectHash, firstBlock)) else { return nil }
        var last = firstBlock + 1
        while last < limit {
            let file = path(objectHash, last)
            if inFlight.contains(file) || entries[file] != nil { break }
            last += 1
        }
        misses += last - firstBlock
        for block in firstBlock..<last { inFlight.insert(path(objectHash, block)) }
        return firstBlock..<last
    }

    /// Fetches the run, keeps its blocks, copies the requested part of it into `buffer`; returns
    /// the position up to which `buffer` is filled. Releases the run's claims in every case.
    private func fetchAndStore(objectHash: String, objectSize: Int64, run: Range<Int64>, source: RangeSource,
                               position: Int64, requestEnd: Int64, buffer: UnsafeMutableRawBufferPointer,
                               bufferOffset: Int64) throws -> Int64 {
        let runStart = run.lowerBound * Self.blockSize
        let runEnd = min(run.upperBound * Self.blockSize, objectSize)
        let count = Int(runEnd - runStart)
        defer {
            lock.lock()
            for block in run { inFlight.remove(path(objectHash, block)) }
            lock.broadcast()
            lock.unlock()
        }
        // Straight into the reader's buffer when the run is exactly what it asked for.
        let direct = runStart == position && runEnd == requestEnd
        let data: UnsafeMutableRawBufferPointer
        if direct {
            data = UnsafeMutableRawBufferPointer(rebasing: buffer[Int(runStart - bufferOffset)..<Int(runEnd - bufferOffset)])
        } else {
            lock.lock()
            while scratchInUse > 0 && scratchInUse + count > Self.scratchBudget { lock.wait() }
            scratchInUse += count
            lock.unlock()
            data = .allocate(byteCount: count, alignment: 16)
        }
        defer {
            if !direct {
                data.deallocate()
                lock.lock()
                scratchInUse -= count
                lock.broadcast()
                lock.unlock()
            }
        }
        var received = 0
        while received < count {
            let n = try source.read(offset: runStart + Int64(received),
                                    into: UnsafeMutableRawBufferPointer(rebasing: data[received...]))
            if n <= 0 { break }
            received += n
        }
        // The object is shorter than its size said: it changed underneath this version.
        guard received == count else { throw FSError(EIO) }
        for block in run {
            let a = Int((block - run.lowerBound) * Self.blockSize)
            let b = min(a + Int(Self.blockSize), count)
            store(objectHash: objectHash, block: block, bytes: UnsafeRawBufferPointer(rebasing: data[a..<b]))
        }
        let filledEnd = min(runEnd, requestEnd)
        if !direct {
            let from = Int(position - runStart)
            let to = Int(position - bufferOffset)
            let n = Int(filledEnd - position)
            UnsafeMutableRawBufferPointer(rebasing: buffer[to..<to + n])
                .copyMemory(from: UnsafeRawBufferPointer(rebasing: data[from..<from + n]))
        }
        return filledEnd
    }

    // MARK: Seeding

    /// lseek(2)'s SEEK_HOLE (Linux), which Glibc's module leaves out without _GNU_SOURCE.
    private static let seekHole: Int32 = 4

    /// Keeps the content of an object version from a local file holding exactly its bytes (a
    /// spool data file after its upload), so that it is not downloaded to be read. Blocks already
    /// cached or being fetched are skipped; a file with holes (parts whose space was given back)
    /// or of another size is not used at all. Runs on the caller's thread.
    public func seed(objectKey: String, objectSize: Int64, fd: Int32) {
        guard usable, objectSize > 0 else { return }
        var st = stat()
        guard fstat(fd, &st) == 0, Int64(st.st_size) == objectSize,
              lseek(fd, 0, Self.seekHole) >= objectSize else { return }
        let objectHash = String(SHA256Hasher.hex(of: Array(objectKey.utf8)).prefix(32))
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: Int(Self.blockSize), alignment: 16)
        defer { buffer.deallocate() }
        var block: Int64 = 0
        while block * Self.blockSize < objectSize {
            let file = path(objectHash, block)
            let claimed: Bool = lock.withLock {
                guard entries[file] == nil, !inFlight.contains(file) else { return false }
                inFlight.insert(file)
                return true
            }
            if claimed {
                let length = Self.blockLength(block, objectSize: objectSize)
                let slice = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<length])
                if Self.preadFully(fd, slice, offset: block * Self.blockSize) {
                    store(objectHash: objectHash, block: block, bytes: UnsafeRawBufferPointer(slice))
                }
                lock.withLock {
                    inFlight.remove(file)
                    lock.broadcast()
                }
            }
            block += 1
        }
    }

    // MARK: Writing

    /// Keeps one block (complete, as fetched) if there is room; never throws.
    private func store(objectHash: String, block: Int64, bytes: UnsafeRawBufferPointer) {
        let file = path(objectHash, block)
        let fileBytes = Self.allocated(Int64(Self.headerSize + bytes.count))
        guard makeRoom(fileBytes) else { return }
        var inserted = false
        defer {
            lock.withLock {
                reservedBytes -= fileBytes
                if inserted { lock.broadcast() }
            }
        }
        let objectFolder = "\(folder)/\(objectHash)"
        let known = lock.withLock { knownObjectFolders.contains(objectHash) }
        if !known {
            if mkdir(objectFolder, 0o700) != 0 && errno != EEXIST {
                writeFailed("cannot create \(objectFolder): \(String(cString: strerror(errno)))")
                return
            }
            lock.withLock { _ = knownObjectFolders.insert(objectHash) }
        }
        var header = BlockHeader(objectHash: BlockHeader.hashPrefix(objectHash), index: block, length: bytes.count)
        for chunk in 0..<Self.chunksPerBlock {
            let a = chunk * Int(Self.chunkSize)
            guard a < bytes.count else { break }
            var crc = CRC32C()
            crc.update(UnsafeRawBufferPointer(rebasing: bytes[a..<min(a + Int(Self.chunkSize), bytes.count)]))
            header.chunkCRCs[chunk] = crc.value
        }
        let temporary = "\(objectFolder)/.tmp-\(block)-\(UInt32.random(in: 0...UInt32.max))"
        let fd = Glibc.open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            let reason = String(cString: strerror(errno))
            if errno == ENOENT { lock.withLock { _ = knownObjectFolders.remove(objectHash) } }
            writeFailed("cannot write in \(objectFolder): \(reason)")
            return
        }
        let written = header.encoded().withUnsafeBytes { h -> Bool in
            Self.pwriteFully(fd, h, offset: 0) && Self.pwriteFully(fd, bytes, offset: Int64(Self.headerSize))
        }
        let writeError = errno
        Glibc.close(fd)
        guard written, rename(temporary, file) == 0 else {
            unlink(temporary)
            writeFailed("cannot write in \(objectFolder): \(String(cString: strerror(written ? errno : writeError)))")
            return
        }
        lock.lock()
        if let old = entries[file] { removeEntry(old) }
        insertNewest(Entry(path: file, bytes: fileBytes))
        inserted = true
        lock.unlock()
    }

    /// Evicts least recently used blocks until `bytes` more fit under the bound and above the
    /// free-space floor; false (logged once) if they cannot.
    private func makeRoom(_ bytes: Int64) -> Bool {
        lock.lock()
        defer { lock.unlock() }
        guard usable else { return false }
        while totalBytes + reservedBytes + bytes > boundValue, let victim = oldest { evict(victim) }
        guard totalBytes + reservedBytes + bytes <= boundValue else {
            noteOnce("bound", "the data cache bound (\(boundValue >> 20) MiB) is taken by blocks being written: a block is not kept")
            return false
        }
        var fs = statvfs()
        while statvfs(folder, &fs) == 0, Int64(fs.f_bavail) * Int64(fs.f_frsize) - reservedBytes - bytes < minFreeBytes {
            guard let victim = oldest else {
                noteOnce("floor", "the file system of the data cache \(folder) is below its free-space floor "
                         + "(\(minFreeBytes >> 20) MiB): blocks are not kept, reads go to the network")
                return false
            }
            evict(victim)
        }
        reservedBytes += bytes
        return true
    }

    private func writeFailed(_ message: String) {
        lock.withLock { noteOnce("write", "the data cache cannot keep blocks (\(message)): reads go to the network") }
    }

    // MARK: Start-up scan

    /// Lists what is on disk: removes temporary files and empty object folders, adopts blocks in
    /// the order they were written (oldest first in the LRU), then evicts down to the bound.
    private func scan() {
        var found: [(path: String, bytes: Int64, time: Int)] = []
        let objects = (try? FileManager.default.contentsOfDirectory(atPath: folder)) ?? []
        for object in objects where object.count == 32 && object.allSatisfy(\.isHexDigit) {
            let objectFolder = "\(folder)/\(object)"
            let names = (try? FileManager.default.contentsOfDirectory(atPath: objectFolder)) ?? []
            var kept = 0
            for name in names {
                let file = "\(objectFolder)/\(name)"
                guard Int64(name) != nil else {
                    if name.hasPrefix(".tmp-") { unlink(file) }
                    continue
                }
                var st = stat()
                guard stat(file, &st) == 0 else { continue }
                found.append((file, Int64(st.st_blocks) * 512, st.st_mtim.tv_sec * 1_000_000_000 + st.st_mtim.tv_nsec))
                kept += 1
            }
            if kept == 0 { rmdir(objectFolder) }
            lock.withLock { _ = knownObjectFolders.insert(object) }
        }
        found.sort { $0.time < $1.time }
        lock.lock()
        // Blocks adopted or written since start are newer than anything found here.
        var older: [Entry] = []
        var scannedBytes: Int64 = 0
        for item in found where entries[item.path] == nil {
            older.append(Entry(path: item.path, bytes: item.bytes))
            scannedBytes += item.bytes
        }
        for entry in older.reversed() { insertOldest(entry) }
        if boundIsDefault { boundValue = (freeAtStart + scannedBytes) / 2 }
        while totalBytes > boundValue, let victim = oldest { evict(victim) }
        scanned = true
        lock.broadcast()
        lock.unlock()
    }

    // MARK: LRU (all under lock)

    private func adopt(_ file: String, bytes: Int64) {
        insertNewest(Entry(path: file, bytes: bytes))
    }

    private func evict(_ entry: Entry) {
        unlink(entry.path)
        removeEntry(entry)
    }

    private func removeEntry(_ entry: Entry) {
        guard entries[entry.path] === entry else { return }
        entries.removeValue(forKey: entry.path)
        unlinkFromList(entry)
        totalBytes -= entry.bytes
    }

    private func insertNewest(_ entry: Entry) {
        entries[entry.path] = entry
        entry.older = newest
        entry.newer = nil
        newest?.newer = entry
        newest = entry
        if oldest == nil { oldest = entry }
        totalBytes += entry.bytes
    }

    private func insertOldest(_ entry: Entry) {
        entries[entry.path] = entry
        entry.newer = oldest
        entry.older = nil
        oldest?.older = entry
        oldest = entry
        if newest == nil { newest = entry }
        totalBytes += entry.bytes
    }

    private func unlinkFromList(_ entry: Entry) {
        if let older = entry.older { older.newer = entry.newer } else if oldest === entry { oldest = entry.newer }
        if let newer = entry.newer { newer.older = entry.older } else if newest === entry { newest = entry.older }
        entry.older = nil
        entry.newer = nil
    }

    private func moveToNewest(_ entry: Entry) {
        guard newest !== entry else { return }
        unlinkFromList(entry)
        totalBytes -= entry.bytes
        insertNewest(entry)
    }

    /// Logs `message` the first time trouble of this kind happens (under lock or not: `logged` is
    /// only touched with the lock held by the callers, or in init).
    private func noteOnce(_ kind: String, _ message: String) {
        guard logged.insert(kind).inserted else { return }
        logger.warning("\(message)")
    }

    // MARK: Files

    static func allocated(_ bytes: Int64) -> Int64 { (bytes + 4095) / 4096 * 4096 }

    private static func fileBytes(_ fd: Int32) -> Int64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int64(st.st_blocks) * 512 : allocated(blockSize + Int64(headerSize))
    }

    static func preadFully(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, offset: Int64) -> Bool {
        var done = 0
        while done < buffer.count {
            let n = pread(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }

    static func pwriteFully(_ fd: Int32, _ buffer: UnsafeRawBufferPointer, offset: Int64) -> Bool {
        var done = 0
        while done < buffer.count {
            let n = pwrite(fd, buffer.baseAddress! + done, buffer.count - done, off_t(offset) + off_t(done))
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { return false }
            done += n
        }
        return true
    }
}

/// The 64-byte header of a block file: "RSTDCB01", the first 8 bytes of the object hash, the
/// block index (UInt64 LE), the content length (UInt32 LE), the chunk count (UInt32 LE), then one
/// CRC32C (UInt32 LE) per 128 KiB chunk (8).
struct BlockHeader {
    static let magic = Array("RSTDCB01".utf8)
    var objectHash: UInt64
    var index: Int64
    var length: Int
    var chunkCRCs = [UInt32](repeating: 0, count: DiskDataCache.chunksPerBlock)

    init(objectHash: UInt64, index: Int64, length: Int) {
        self.objectHash = objectHash; self.index = index; self.length = length
    }

    init?(_ raw: UnsafeMutableRawBufferPointer) {
        guard raw.count >= DiskDataCache.headerSize, Array(raw[0..<8]) == Self.magic else { return nil }
        func u64(_ at: Int) -> UInt64 { raw.loadUnaligned(fromByteOffset: at, as: UInt64.self).littleEndian }
        func u32(_ at: Int) -> UInt32 { raw.loadUnaligned(fromByteOffset: at, as: UInt32.self).littleEndian }
        objectHash = u64(8)
        index = Int64(bitPattern: u64(16))
        length = Int(u32(24))
        guard u32(28) == UInt32(DiskDataCache.chunksPerBlock) else { return nil }
        chunkCRCs = (0..<DiskDataCache.chunksPerBlock).map { u32(32 + 4 * $0) }
    }

    func encoded() -> [UInt8] {
        var out = Self.magic
        func put<T: FixedWidthInteger>(_ v: T) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        put(objectHash)
        put(UInt64(bitPattern: index))
        put(UInt32(length))
        put(UInt32(DiskDataCache.chunksPerBlock))
        for crc in chunkCRCs { put(crc) }
        return out
    }

    static func hashPrefix(_ objectHash: String) -> UInt64 { UInt64(objectHash.prefix(16), radix: 16) ?? 0 }
}

/// The memory cache's source when the disk cache is on: reads answered from disk where the
/// blocks are cached, fetched from `upstream` (and kept) where they are not.
final class DiskCachedSource: RangeSource, @unchecked Sendable {
    let cache: DiskDataCache
    let upstream: RangeSource
    let objectKey: String
    let objectSize: Int64

    init(cache: DiskDataCache, upstream: RangeSource, objectKey: String, objectSize: Int64) {
        self.cache = cache; self.upstream = upstream; self.objectKey = objectKey; self.objectSize = objectSize
    }

    func read(offset: Int64, into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        try cache.read(objectKey: objectKey, objectSize: objectSize, offset: offset, into: buffer, source: upstream)
    }
}

/// The queue of uploaded files waiting to seed the disk cache, bounded in bytes so that a burst
/// of writes does not queue unbounded copying behind it.
final class DataCacheSeedBacklog: @unchecked Sendable {
    static let limit: Int64 = 1 << 30
    let queue = DispatchQueue(label: "roset-data-cache-seed", qos: .utility)
    private let lock = NSLock()
    private var waiting: Int64 = 0

    func reserve(_ bytes: Int64) -> Bool {
        lock.withLock {
            guard waiting + bytes <= Self.limit else { return false }
            waiting += bytes
            return true
        }
    }

    func release(_ bytes: Int64) { lock.withLock { waiting -= bytes } }
}
