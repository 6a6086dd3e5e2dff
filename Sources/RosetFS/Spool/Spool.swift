// The spool: every byte written through the mount lands here before it is uploaded.
//
// LAYOUT, version 2 (recovery reads exactly this; bump `Spool.layoutVersion` on change)
//
//   <spoolDirectory>/<first 16 hex of sha256(apiURL + "\n" + mountId)>/   mode 0700
//     LOCK                 flock(LOCK_EX) held by the one daemon using the folder; holds its pid.
//                          A new daemon finding it held waits only if STATUS says the holder is
//                          `draining` (unmounted, finishing uploads), else it is refused at once
//     STATUS               the holder's state and upload counters (SpoolStatusFile.swift); not
//                          needed by recovery, read by `mount.roset status`
//     IDENTITY             "roset-spool 2", the api URL (userinfo removed) and the mount id
//     data/<entryId>       the file's full content (entryId: lowercase UUID); its CRC32C is in
//                          the sealed record (a format-1 record kept its sha256 instead)
//     journal/<entryId>.rec  the entry's journal records (JournalRecord.swift), appended as
//                          frames (JournalLog.swift); layout 1 wrote one file per record,
//                          `<entryId>.<sequence, 10 digits>.rec`, which is still read
//     free/<n>             emptied journal and data files kept for reuse (as either); never
//                          read by recovery, emptied at start-up
//     dead/<entryId>/      dead letters: data, journal file and a `reason` file; never deleted
//                          (data checksum mismatch, no valid record, data without record,
//                          upload refused permanently as a bad request)
//
// Record states: open → sealed → uploading (token, expiry, part size, finished parts) → complete.
// The target is (parentId, name) for a new file, plus nodeId for a new version of an existing
// node (or of the node our own init created); baseEtag/baseVersionId detect remote changes.
//
// Invariants
// - A record is never rewritten in place: every change is a new frame appended to the entry's
//   journal file (fdatasync'd when durable; the journal folder is fsynced once, the first time
//   the file must be durable). A failed append is cut off again, so frames stay contiguous.
//   A journal file grown past `compactionThreshold` is replaced by one holding only the newest
//   record: written as <name>.tmp, synced, renamed over. Recovery takes the highest sequence
//   among the valid frames; a torn tail is reported and cut off, the data file is kept.
// - Sealing order: data fsynced, then the `sealed` record made durable. `open` records are
//   appended without fsync: the data they describe is not fsynced either, and recovery uploads
//   them under a recovered name.
// - A reused file is emptied before it is listed in free/ and opened with O_TRUNC again, so no
//   byte of an earlier entry ever appears under a new name. A data file leaves data/ (moved to
//   free/ or unlinked) when its entry is removed, but it is emptied and listed only once its
//   last reference is gone: a reader that still holds it keeps reading its bytes. A data
//   file's name is made durable (data folder fsynced) when the entry is sealed.
// - Completion order: `complete` record, then the data file, then the journal file leave their
//   folders (each moved to free/ or unlinked). A data file with no record at start-up goes to
//   dead/ ("no journal record"), never deleted.
import CPipes
import Foundation
import Metrics
import RosetMetrics
#if canImport(Glibc)
import Glibc
#endif
import RosetClient

struct SpoolError: Error, CustomStringConvertible {
    var description: String
}

/// The data file of one entry. The descriptor stays valid until the last reference goes, so a
/// reader that grabbed it keeps reading even if the entry completes meanwhile.
final class SpoolDataFile: @unchecked Sendable {
    let path: String
    let fd: Int32
    private let releaseLock = NSLock()
    /// Run with the descriptor when the last reference goes, before it is closed (Spool.retireData).
    private var lastRelease: ((Int32) -> Void)?

    init(path: String, create: Bool) throws {
        self.path = path
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0o600)
        guard fd >= 0 else { throw FSError(errno) }
        self.fd = fd
    }

    deinit {
        releaseLock.withLock { lastRelease }?(fd)
        Glibc.close(fd)
    }

    /// Sets what the last release does with the descriptor; false when something is already set.
    func whenLastReleased(_ action: @escaping (Int32) -> Void) -> Bool {
        releaseLock.withLock {
            guard lastRelease == nil else { return false }
            lastRelease = action
            return true
        }
    }

    func size() -> Int64 {
        var st = stat()
        return fstat(fd, &st) == 0 ? Int64(st.st_size) : 0
    }

    func pread(offset: Int64, count: Int) throws -> [UInt8] {
        var out = [UInt8](repeating: 0, count: count)
        var filled = 0
        while filled < count {
            let n = out.withUnsafeMutableBytes { Glibc.pread(fd, $0.baseAddress! + filled, count - filled, off_t(offset) + off_t(filled)) }
            if n < 0 { if errno == EINTR { continue }; throw FSError(EIO) }
            if n == 0 { break }
            filled += n
        }
        out.removeSubrange(filled...)
        return out
    }

    /// Written bytes go to the disk in windows of this size as each window fills (write-behind), so
    /// the fsync that seals a file at close waits for its last window, not for the whole file. On
    /// the benchmark machine a 1 GiB write and its fsync took 1.0-1.9 s, and 0.72-0.77 s with it.
    static let writeBehindWindow: Int64 = 8 << 20

    func pwrite(_ data: UnsafeRawBufferPointer, offset: Int64) throws {
        defer { startWriteBack(windowsEndingIn: offset, count: data.count) }
        var done = 0
        while done < data.count {
            let n = Glibc.pwrite(fd, data.baseAddress! + done, data.count - done, off_t(offset) + off_t(done))
            if n < 0 {
                if errno == EINTR { continue }
                throw FSError(errno == ENOSPC || errno == EDQUOT ? ENOSPC : EIO)
            }
            done += n
        }
    }

    /// Starts write-back (without waiting) of every whole window that a write of [offset,
    /// offset + count) completed. Its errors are the fsync's to report: the kernel keeps them.
    private func startWriteBack(windowsEndingIn offset: Int64, count: Int) {
        let window = Self.writeBehindWindow
        let first = offset / window, last = (offset + Int64(count)) / window
        guard last > first else { return }
        _ = roset_start_writeback(fd, first * window, (last - first) * window)
    }

    /// Drops [offset, offset + count) from the page cache where it is already on disk (clean
    /// pages; dirty ones stay), in whole folios: ext4 caches a file in folios of up to 2 MiB,
    /// naturally aligned, so a range is dropped entirely when its ends are 2 MiB aligned (the
    /// default 16 MiB parts are; with an odd `part_size_mb` a folio across a boundary stays until
    /// the upload completes). Called once the store has confirmed a range: the uploader is done with it, and a
    /// reader of the pending file still gets it from the disk. Otherwise a large file written
    /// through the mount keeps a second copy of itself cached until its upload completes, which
    /// pushes the machine's other cached data out and, in a VM whose freed memory goes back to
    /// the host, makes every later write land in memory the host must hand out afresh.
    func dropFromPageCache(offset: Int64, count: Int64) {
        _ = posix_fadvise(fd, off_t(offset), off_t(count), POSIX_FADV_DONTNEED)
    }

    func truncate(to size: Int64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else {
            let failure = errno
            // EFBIG: larger than the spool's own file system can hold a file; the caller's error, not I/O.
            throw FSError(failure == ENOSPC || failure == EFBIG ? failure : EIO)
        }
    }

    func sync() throws { guard fsync(fd) == 0 else { throw FSError(EIO) } }

    /// CRC32C of the whole file, read back from disk.
    func crc32c() throws -> String {
        var sum = CRC32C()
        try readBack { sum.update($0) }
        return sum.hexDigest()
    }

    /// Whether the file holds what `record` was sealed with: its size, and its `crc32c` (or, in
    /// a format-1 record, its `sha256`). A record with neither matches nothing.
    func matches(_ record: JournalRecord) -> Bool {
        guard size() == record.size else { return false }
        if let expected = record.crc32c { return (try? crc32c()) == expected }
        guard let expected = record.sha256 else { return false }
        var hasher = SHA256Hasher()
        guard (try? readBack { hasher.update($0) }) != nil else { return false }
        return hasher.hexDigest() == expected
    }

    private func readBack(_ consume: ([UInt8]) -> Void) throws {
        var offset: Int64 = 0
        while true {
            let chunk = try pread(offset: offset, count: 1 << 20)
            if chunk.isEmpty { break }
            consume(chunk)
            offset += Int64(chunk.count)
        }
    }
}

final class Spool: @unchecked Sendable {
    static let layoutVersion = 2
    /// A journal file larger than this is rewritten with only its newest record (multipart
    /// records list every finished part, so appending them forever would grow quadratically).
    static let compactionThreshold = 256 << 10

    let folder: String
    let dataFolder: String
    let journalFolder: String
    let deadFolder: String
    /// Emptied journal and data files kept for reuse. Creating and deleting a few files per written file made the
    /// file system allocate and free inodes at a high rate, which ext4 without a journal pays for
    /// with a scan of recently freed inodes on every allocation (half of the daemon's time in a
    /// small-file benchmark); taking a file from here is a rename. PostgreSQL recycles its WAL
    /// segments for the same kind of reason.
    let freeFolder: String
    static let freeFileLimit = 512
    private var lockFD: Int32
    private let lock = NSLock()
    /// Journal files whose name (directory entry) was made durable by a folder fsync; guarded by `lock`.
    private var journalNamesSynced = Set<String>()
    /// Names in free/ (each an empty file); guarded by `lock`.
    private var freeFiles: [String] = []
    /// Names in free/ not listed yet: files being emptied, or data files still referenced.
    private var freeFilesReserved = 0
    private var freeFileCounter = 0
    /// Tests only (power-loss simulation): called at every point where the folder stands in a
    /// state a crash or power cut could leave — after each record is durable, after each unlink.
    var crashPointHook: ((String) -> Void)?

    static func folderName(apiURL: String, mountId: String) -> String {
        String(SHA256Hasher.hex(of: Array("\(apiURL)\n\(mountId)".utf8)).prefix(16))
    }

    /// Creates or opens the folder of (apiURL, mountId) under `base` and takes its lock.
    /// `attach: false` (read-only mounts) only computes the paths: no folder, no lock.
    /// A holder that is draining (unmounted, finishing uploads) is waited for; `onWait` is told.
    init(base: String, apiURL: String, mountId: String, attach: Bool = true,
         onWait: (String) -> Void = { _ in }) throws {
        folder = (base as NSString).appendingPathComponent(Spool.folderName(apiURL: apiURL, mountId: mountId))
        dataFolder = folder + "/data"
        journalFolder = folder + "/journal"
        deadFolder = folder + "/dead"
        freeFolder = folder + "/free"
        lockFD = -1
        guard attach else { return }
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: base, withIntermediateDirectories: true)
            for dir in [folder, dataFolder, journalFolder, deadFolder, freeFolder] {
                try fm.createDirectory(atPath: dir, withIntermediateDirectories: true,
                                       attributes: [.posixPermissions: 0o700])
            }
        } catch {
            throw SpoolError(description: "cannot create the spool folder \(folder): \(error.localizedDescription)")
        }
        chmod(folder, 0o700)
        let fd = Glibc.open(folder + "/LOCK", O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw SpoolError(description: "cannot open the spool lock \(folder)/LOCK: \(String(cString: strerror(errno)))")
        }
        if flock(fd, LOCK_EX | LOCK_NB) != 0, !Spool.waitForDrainingHolder(fd: fd, folder: folder, onWait: onWait) {
            let holder = (try? String(contentsOfFile: folder + "/LOCK", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? ""
            Glibc.close(fd)
            throw SpoolError(description: "the spool folder \(folder) is in use by another roset mount"
                             + (holder.isEmpty ? "" : " (pid \(holder))")
                             + "; a mount id can be mounted only once per spool folder")
        }
        lockFD = fd
        ftruncate(fd, 0)
        let pid = Array("\(getpid())\n".utf8)
        _ = pid.withUnsafeBytes { Glibc.pwrite(fd, $0.baseAddress, $0.count, 0) }
        // A crash may have left a file in free/ that was not emptied yet: start with an empty pool.
        for file in (try? fm.contentsOfDirectory(atPath: freeFolder)) ?? [] { unlink("\(freeFolder)/\(file)") }
        let identity = "roset-spool \(Spool.layoutVersion)\napi_url \(Spool.redacted(apiURL))\nmount_id \(mountId)\n"
        try? identity.write(toFile: folder + "/IDENTITY", atomically: true, encoding: .utf8)
    }

    deinit { unlock() }

    /// The lock is held: when its holder published `draining` (it was unmounted and only finishes
    /// uploads), waits until it lets go, at most until its drain deadline plus a margin. A holder
    /// still mounted is not waited for. True once the lock is ours.
    private static func waitForDrainingHolder(fd: Int32, folder: String, onWait: (String) -> Void) -> Bool {
        var told = false
        let hardLimit = Date().addingTimeInterval(600)
        while true {
            guard let status = SpoolStatusFile.read(folder: folder), status.state != .mounted else { return false }
            let until = min(hardLimit.timeIntervalSince1970, (status.drainUntil ?? Date().timeIntervalSince1970) + 15)
            if Date().timeIntervalSince1970 > until { return false }
            if !told {
                onWait("the previous daemon (pid \(status.pid)) of spool folder \(folder) is finishing its uploads; "
                       + "waiting up to \(Int(until - Date().timeIntervalSince1970)) s for it to let go")
                told = true
            }
            usleep(100_000)
            if flock(fd, LOCK_EX | LOCK_NB) == 0 { return true }
        }
    }

    /// Releases the folder for another daemon.
    func unlock() {
        lock.withLock {
            if lockFD >= 0 { flock(lockFD, LOCK_UN); Glibc.close(lockFD); lockFD = -1 }
        }
    }

    private static func redacted(_ url: String) -> String {
        guard var c = URLComponents(string: url) else { return url }
        c.user = nil; c.password = nil; c.query = nil
        return c.string ?? url
    }

    func dataPath(_ entryId: String) -> String { "\(dataFolder)/\(entryId)" }

    /// Opens a new, empty data file for `entryId`, reusing an emptied file when there is one.
    func createDataFile(_ entryId: String) throws -> SpoolDataFile {
        let path = dataPath(entryId)
        _ = takeFreeFile(to: path)
        return try SpoolDataFile(path: path, create: true)
    }

    /// Moves an emptied file from free/ to `path` (which must not exist). False when none is left.
    private func takeFreeFile(to path: String) -> Bool {
        guard let name = lock.withLock({ freeFiles.popLast() }) else { return false }
        if Glibc.rename("\(freeFolder)/\(name)", path) == 0 { return true }
        unlink("\(freeFolder)/\(name)")
        return false
    }

    /// Emptied files listed for reuse now (not counting data files still referenced).
    var reusableFileCount: Int { lock.withLock { freeFiles.count } }

    /// A new name in free/ for a file about to be pooled, counted against the pool's limit until
    /// `listFreeFile` lists it or gives it up; nil when the pool is full.
    private func reserveFreeFile() -> String? {
        lock.withLock {
            guard freeFiles.count + freeFilesReserved < Self.freeFileLimit else { return nil }
            freeFileCounter += 1
            freeFilesReserved += 1
            return String(freeFileCounter)
        }
    }

    /// Ends a reservation: an emptied file is listed for reuse, any other is deleted.
    private func listFreeFile(_ name: String, emptied: Bool) {
        lock.withLock {
            freeFilesReserved -= 1
            if emptied { freeFiles.append(name) }
        }
        if !emptied { unlink("\(freeFolder)/\(name)") }
    }

    /// Moves the file at `path` into free/ under a reserved name, not listed yet; when the pool is
    /// full or the move fails it is unlinked instead, and nil is returned.
    private func moveToFreeFolder(_ path: String) -> String? {
        guard let name = reserveFreeFile() else { unlink(path); return nil }
        guard Glibc.rename(path, "\(freeFolder)/\(name)") == 0 else {
            unlink(path)
            listFreeFile(name, emptied: false)
            return nil
        }
        return name
    }

    /// Deletes the file at `path`, keeping its inode in free/ (emptied) while there is room.
    private func discard(_ path: String) {
        guard let name = moveToFreeFolder(path) else { return }
        // Emptied before it is listed: a reused file never carries an earlier entry's bytes.
        listFreeFile(name, emptied: Glibc.truncate("\(freeFolder)/\(name)", 0) == 0)
    }

    /// Deletes an entry's data file as far as recovery can tell: its name leaves data/ at once, as
    /// an unlink would. `file`, the entry's open data file, keeps its bytes for whoever still holds
    /// it (a reader, an upload on its way out); its inode joins free/, emptied, once the last
    /// reference is gone. Without `file` (recovery) nobody can hold it, and it is pooled now.
    private func retireData(_ entryId: String, file: SpoolDataFile?) {
        let path = dataPath(entryId)
        guard let file, file.path == path else { discard(path); return }
        guard let name = moveToFreeFolder(path) else { return }
        // The descriptor, not the path, is emptied: a daemon restarted meanwhile (tests) has
        // emptied free/ and may have put another file under this name.
        let set = file.whenLastReleased { [weak self] fd in
            let emptied = ftruncate(fd, 0) == 0
            self?.listFreeFile(name, emptied: emptied)
        }
        if !set { listFreeFile(name, emptied: false) }
    }

    func journalPath(_ entryId: String) -> String { "\(journalFolder)/\(JournalLog.fileName(entryId))" }

    /// Appends `record` to its entry's journal file; `durable` adds the syncs. Callers serialise
    /// the writes of one entry (they hold the entry's cond, or own it during recovery).
    func write(_ record: JournalRecord, durable: Bool) throws {
        let frame = try JournalLog.frame(record)
        let path = journalPath(record.entryId)
        // A new entry's journal starts empty, whether it is a new file or a reused one.
        var flags = O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC
        if record.sequence == 0 {
            _ = takeFreeFile(to: path)
            flags |= O_TRUNC
        }
        let fd = Glibc.open(path, flags, 0o600)
        guard fd >= 0 else { throw FSError(errno == ENOSPC || errno == EDQUOT ? ENOSPC : EIO) }
        var st = stat()
        let before = fstat(fd, &st) == 0 ? st.st_size : -1
        if before > Self.compactionThreshold {
            Glibc.close(fd)
            try replaceJournal(path: path, with: frame, durable: durable)
        } else {
            var failure: Int32 = 0
            let written = frame.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) }
            if written != frame.count {
                failure = written < 0 ? errno : ENOSPC
                // A partial frame would hide every later one from recovery: cut it off.
                if before >= 0 { ftruncate(fd, before) }
            } else if durable && fdatasync(fd) != 0 {
                failure = errno
            }
            Glibc.close(fd)
            if failure != 0 { throw FSError(failure == ENOSPC || failure == EDQUOT ? ENOSPC : EIO) }
            // The file's name is made durable once, at its first durable record (usually the
            // seal; the `open` record before it created the file without any sync).
            if durable, lock.withLock({ journalNamesSynced.insert(record.entryId).inserted }) {
                syncFolder(journalFolder)
            }
        }
        crashPointHook?("\(record.state.rawValue) record \(record.sequence) of \(record.entryId) written")
    }

    /// Replaces a journal file by one holding `contents`: temporary file, sync, rename, folder sync.
    private func replaceJournal(path: String, with contents: [UInt8], durable: Bool) throws {
        let tmp = path + ".tmp"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FSError(errno == ENOSPC ? ENOSPC : EIO) }
        var ok = contents.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == contents.count
        if ok && durable { ok = fdatasync(fd) == 0 }
        Glibc.close(fd)
        guard ok, Glibc.rename(tmp, path) == 0 else {
            let code = errno
            unlink(tmp)
            throw FSError(code == ENOSPC ? ENOSPC : EIO)
        }
        if durable { syncFolder(journalFolder) }
    }

    func syncFolder(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); Glibc.close(fd) }
    }

    private func journalFiles() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: journalFolder)) ?? []
    }

    /// Deletes a finished entry: data first, then its journal file. `data`: the entry's open data
    /// file, which is reused only after its last reference is gone (see retireData); nil during
    /// recovery. `strayFiles`: the entry also has files of layout 1, found by a folder scan.
    func remove(entryId: String, data: SpoolDataFile?, strayFiles: Bool = false) {
        retireData(entryId, file: data)
        crashPointHook?("data of \(entryId) deleted")
        discard(journalPath(entryId))
        if strayFiles {
            for file in journalFiles() where JournalLog.entryId(ofFile: file) == entryId { unlink("\(journalFolder)/\(file)") }
        }
        lock.withLock { _ = journalNamesSynced.remove(entryId) }
        crashPointHook?("journal of \(entryId) deleted")
    }

    /// Moves everything of `entryId` to dead/<entryId>/ with a reason file. Returns the folder.
    @discardableResult
    func moveToDeadLetter(entryId: String, reason: String) -> String {
        Counter(label: RosetMetricNames.deadLetters).increment()
        let target = "\(deadFolder)/\(entryId)"
        try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        Glibc.rename(dataPath(entryId), "\(target)/data")
        for file in journalFiles() where JournalLog.entryId(ofFile: file) == entryId {
            Glibc.rename("\(journalFolder)/\(file)", "\(target)/\(file)")
        }
        lock.withLock { _ = journalNamesSynced.remove(entryId) }
        try? (reason + "\n").write(toFile: "\(target)/reason", atomically: true, encoding: .utf8)
        syncFolder(deadFolder)
        return target
    }

    struct Scan {
        var records: [JournalRecord] = []
        /// Journal files with a torn frame; the entry goes on from the newest valid one, if any.
        var tornRecords: [(entryId: String, file: String, problem: String)] = []
        /// Entries with journal files but no valid record.
        var unreadableEntries: [String] = []
        /// Data files with no record at all.
        var orphanData: [String] = []
        /// Entries with journal files of layout 1: their removal must find them by a folder scan.
        var entriesWithLayout1Files: Set<String> = []
    }

    /// Reads the journal: the newest valid record per entry, plus what is wrong. Recovery only
    /// (it repairs): deletes leftover temporary files and cuts torn tails off, so that the next
    /// append is readable.
    func scan() -> Scan {
        var scan = Scan()
        var byEntry: [String: [String]] = [:]
        for file in journalFiles() {
            if file.hasSuffix(".tmp") { unlink("\(journalFolder)/\(file)"); continue }
            guard let entryId = JournalLog.entryId(ofFile: file) else { continue }
            byEntry[entryId, default: []].append(file)
        }
        for (entryId, files) in byEntry {
            if files.contains(where: { $0 != JournalLog.fileName(entryId) }) { scan.entriesWithLayout1Files.insert(entryId) }
            var found: JournalRecord?
            for file in files {
                let path = "\(journalFolder)/\(file)"
                let contents = JournalLog.read(path: path, entryId: entryId)
                if let problem = contents.problem {
                    scan.tornRecords.append((entryId, file, problem))
                    if contents.newest != nil { Glibc.truncate(path, off_t(contents.validLength)) }
                }
                if let record = contents.newest, found.map({ $0.sequence < record.sequence }) ?? true { found = record }
            }
            if let found { scan.records.append(found) } else { scan.unreadableEntries.append(entryId) }
        }
        let dataFiles = (try? FileManager.default.contentsOfDirectory(atPath: dataFolder)) ?? []
        for file in dataFiles where byEntry[file] == nil { scan.orphanData.append(file) }
        return scan
    }

    /// Bytes currently held in data files (the spool's fill level at start-up).
    func dataBytes() -> Int64 {
        let files = (try? FileManager.default.contentsOfDirectory(atPath: dataFolder)) ?? []
        var total: Int64 = 0
        for file in files {
            var st = stat()
            if stat("\(dataFolder)/\(file)", &st) == 0 { total += Int64(st.st_size) }
        }
        return total
    }
}
