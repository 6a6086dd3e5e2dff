// The spool: every byte written through the mount lands here before it is uploaded.
//
// FORMAT, version 1 (recovery reads exactly this; bump `JournalRecord.currentFormat` on change)
//
//   <spoolDirectory>/<first 16 hex of sha256(apiURL + "\n" + mountId)>/   mode 0700
//     LOCK                 flock(LOCK_EX) held by the one daemon using the folder; holds its pid.
//                          A new daemon finding it held waits only if STATUS says the holder is
//                          `draining` (unmounted, finishing uploads), else it is refused at once
//     STATUS               the holder's state and upload counters (SpoolStatus.swift); not
//                          needed by recovery, read by `mount.roset status`
//     IDENTITY             "roset-spool 1", the api URL (userinfo removed) and the mount id
//     data/<entryId>       the file's full content (entryId: lowercase UUID)
//     journal/<entryId>.<sequence, 10 digits>.rec   one journal record (JournalRecord.swift):
//                          JSON body + "\nsha256 <hex of body>\n"
//     dead/<entryId>/      dead letters: data, records and a `reason` file; never deleted
//                          (data checksum mismatch, no valid record, data without record,
//                          upload refused permanently as a bad request)
//
// Record states: open → sealed → uploading (token, expiry, part size, finished parts) → complete.
// The target is (parentId, name) for a new file, plus nodeId for a new version of an existing
// node (or of the node our own init created); baseEtag/baseVersionId detect remote changes.
//
// Invariants
// - A record is never rewritten in place: every change is a new file with a higher sequence,
//   written as <name>.tmp, fsynced, renamed, then the journal folder fsynced; older records of the
//   entry are deleted only afterwards. Recovery takes the highest sequence whose checksum holds;
//   a torn record is reported and the data file it belongs to is kept.
// - Sealing order: data fsynced, then the `sealed` record (carrying the data's sha256) made
//   durable. `open` records are written atomically but without fsync: the data they describe is
//   not fsynced either, and recovery uploads them under a recovered name.
// - Completion order: `complete` record, then the data file, then the records are deleted. A data
//   file with no record at start-up goes to dead/ ("no journal record"), never deleted.
import Foundation
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

    init(path: String, create: Bool) throws {
        self.path = path
        let fd = Glibc.open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0o600)
        guard fd >= 0 else { throw FSError(errno) }
        self.fd = fd
    }

    deinit { Glibc.close(fd) }

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

    func pwrite(_ data: UnsafeRawBufferPointer, offset: Int64) throws {
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

    func truncate(to size: Int64) throws {
        guard ftruncate(fd, off_t(size)) == 0 else { throw FSError(errno == ENOSPC ? ENOSPC : EIO) }
    }

    func sync() throws { guard fsync(fd) == 0 else { throw FSError(EIO) } }

    /// sha256 of the whole file, read back from disk.
    func digest() throws -> String {
        var hasher = SHA256Hasher()
        var offset: Int64 = 0
        while true {
            let chunk = try pread(offset: offset, count: 1 << 20)
            if chunk.isEmpty { break }
            hasher.update(chunk)
            offset += Int64(chunk.count)
        }
        return hasher.hexDigest()
    }
}

final class Spool: @unchecked Sendable {
    let folder: String
    let dataFolder: String
    let journalFolder: String
    let deadFolder: String
    private var lockFD: Int32
    private let lock = NSLock()
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
        lockFD = -1
        guard attach else { return }
        let fm = FileManager.default
        do {
            try fm.createDirectory(atPath: base, withIntermediateDirectories: true)
            for dir in [folder, dataFolder, journalFolder, deadFolder] {
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
        let identity = "roset-spool \(JournalRecord.currentFormat)\napi_url \(Spool.redacted(apiURL))\nmount_id \(mountId)\n"
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

    private func recordName(_ entryId: String, _ sequence: Int) -> String {
        "\(entryId).\(String(format: "%010d", sequence)).rec"
    }

    /// Writes `record` as a new file (never over an old one); `durable` adds the fsyncs.
    func write(_ record: JournalRecord, durable: Bool) throws {
        let bytes = try record.encoded()
        let name = recordName(record.entryId, record.sequence)
        let tmp = "\(journalFolder)/\(name).tmp"
        let fd = Glibc.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw FSError(errno == ENOSPC ? ENOSPC : EIO) }
        var ok = bytes.withUnsafeBytes { Glibc.write(fd, $0.baseAddress, $0.count) } == bytes.count
        if ok && durable { ok = fsync(fd) == 0 }
        Glibc.close(fd)
        guard ok, Glibc.rename(tmp, "\(journalFolder)/\(name)") == 0 else {
            let code = errno
            unlink(tmp)
            throw FSError(code == ENOSPC ? ENOSPC : EIO)
        }
        if durable { syncFolder(journalFolder) }
        crashPointHook?("\(record.state.rawValue) record \(name) written")
        // The previous record, by name: no folder scan per write (thousands of entries pending).
        if record.sequence > 0 {
            unlink("\(journalFolder)/\(recordName(record.entryId, record.sequence - 1))")
            crashPointHook?("record \(record.sequence - 1) of \(record.entryId) deleted")
        }
    }

    func syncFolder(_ path: String) {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd >= 0 { fsync(fd); Glibc.close(fd) }
    }

    private func recordFiles() -> [String] {
        (try? FileManager.default.contentsOfDirectory(atPath: journalFolder)) ?? []
    }

    /// Deletes a finished entry: data first, then its records. With `sequence`, only that
    /// record is deleted by name; without, every record file of the entry (a folder scan).
    func remove(entryId: String, sequence: Int? = nil) {
        unlink(dataPath(entryId))
        crashPointHook?("data of \(entryId) deleted")
        if let sequence {
            unlink("\(journalFolder)/\(recordName(entryId, sequence))")
        } else {
            for file in recordFiles() where file.hasPrefix(entryId + ".") { unlink("\(journalFolder)/\(file)") }
        }
    }

    /// Moves everything of `entryId` to dead/<entryId>/ with a reason file. Returns the folder.
    @discardableResult
    func moveToDeadLetter(entryId: String, reason: String) -> String {
        let target = "\(deadFolder)/\(entryId)"
        try? FileManager.default.createDirectory(atPath: target, withIntermediateDirectories: true)
        Glibc.rename(dataPath(entryId), "\(target)/data")
        for file in recordFiles() where file.hasPrefix(entryId + ".") {
            Glibc.rename("\(journalFolder)/\(file)", "\(target)/\(file)")
        }
        try? (reason + "\n").write(toFile: "\(target)/reason", atomically: true, encoding: .utf8)
        syncFolder(deadFolder)
        return target
    }

    struct Scan {
        var records: [JournalRecord] = []
        /// Entries whose newest record is torn but an older one was valid or none was.
        var tornRecords: [(entryId: String, file: String, problem: String)] = []
        /// Entries with records but none valid.
        var unreadableEntries: [String] = []
        /// Data files with no record at all.
        var orphanData: [String] = []
        /// Entries with more than one record file: a crash came between writing a record and
        /// deleting its predecessor. Their removal must delete every record file, not one by name.
        var entriesWithSeveralRecords: Set<String> = []
    }

    /// Reads the journal: the newest valid record per entry, plus what is wrong.
    func scan() -> Scan {
        var scan = Scan()
        var byEntry: [String: [(Int, String)]] = [:]
        for file in recordFiles() {
            if file.hasSuffix(".tmp") { unlink("\(journalFolder)/\(file)"); continue }
            let parts = file.split(separator: ".")
            guard parts.count == 3, parts[2] == "rec", let seq = Int(parts[1]) else { continue }
            byEntry[String(parts[0]), default: []].append((seq, file))
        }
        for (entryId, files) in byEntry {
            if files.count > 1 { scan.entriesWithSeveralRecords.insert(entryId) }
            var found: JournalRecord?
            for (_, file) in files.sorted(by: { $0.0 > $1.0 }) {
                let bytes = (FileManager.default.contents(atPath: "\(journalFolder)/\(file)")).map { Array($0) } ?? []
                do {
                    found = try JournalRecord.decode(bytes)
                    break
                } catch {
                    scan.tornRecords.append((entryId, file, "\(error)"))
                }
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
