// What a spool folder holds, as `mount.roset status DIR` shows it: pending entries (from the
// journal's newest records), dead letters, torn records, the STATUS file and the lock holder.
// Invariant: it only reads. It never takes the spool lock and never changes a file, so it is safe
// while a daemon runs (it may see a record a moment old) and works when the daemon is gone.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// What a spool folder holds, read without the lock.
public struct SpoolReport: Codable, Sendable {
    public struct Pending: Codable, Sendable {
        public var entryId: String
        public var name: String
        public var state: String
        public var bytes: Int64
        public var createdAt: Double
    }
    public struct DeadLetter: Codable, Sendable {
        public var path: String
        public var reason: String
        public var bytes: Int64
    }
    public var folder: String
    public var pending: [Pending] = []
    public var deadLetters: [DeadLetter] = []
    /// Journal files with a torn record (checksum does not hold): reported until recovery handles them.
    public var tornRecords: [String] = []
    public var status: SpoolStatusFile?
    /// Whether a process holds the spool lock right now (its pid from LOCK).
    public var lockHolderPid: Int32?

    public var pendingBytes: Int64 { pending.reduce(0) { $0 + $1.bytes } }

    public static func read(folder: String) -> SpoolReport {
        var report = SpoolReport(folder: folder)
        let fm = FileManager.default
        let journal = folder + "/journal"
        var newest: [String: JournalRecord] = [:]
        for file in (try? fm.contentsOfDirectory(atPath: journal)) ?? [] {
            guard let id = JournalLog.entryId(ofFile: file) else { continue }
            let contents = JournalLog.read(path: journal + "/" + file, entryId: id)
            if contents.problem != nil { report.tornRecords.append(journal + "/" + file) }
            if let record = contents.newest, newest[id].map({ $0.sequence < record.sequence }) ?? true { newest[id] = record }
        }
        for (id, record) in newest {
            if record.state == .complete { continue }
            var st = stat()
            let size = stat(folder + "/data/" + id, &st) == 0 ? Int64(st.st_size) : record.size
            report.pending.append(Pending(entryId: id, name: record.target.name, state: record.state.rawValue,
                                          bytes: size, createdAt: record.createdAt))
        }
        report.pending.sort { $0.createdAt < $1.createdAt }
        report.tornRecords.sort()
        for id in ((try? fm.contentsOfDirectory(atPath: folder + "/dead")) ?? []).sorted() {
            let dir = folder + "/dead/" + id
            let reason = (try? String(contentsOfFile: dir + "/reason", encoding: .utf8))?
                .trimmingCharacters(in: .whitespacesAndNewlines) ?? "(no reason file)"
            var st = stat()
            let size = stat(dir + "/data", &st) == 0 ? Int64(st.st_size) : 0
            report.deadLetters.append(DeadLetter(path: dir, reason: reason, bytes: size))
        }
        report.status = SpoolStatusFile.read(folder: folder)
        report.lockHolderPid = Self.lockHolder(folder: folder)
        return report
    }

    /// The pid of the process holding the LOCK flock, found in /proc/locks by the file's inode
    /// (taking the lock to test it could make a starting daemon fail).
    public static func lockHolder(folder: String) -> Int32? {
        var st = stat()
        guard stat(folder + "/LOCK", &st) == 0,
              let locks = try? String(contentsOfFile: "/proc/locks", encoding: .utf8) else { return nil }
        let inodeSuffix = ":\(st.st_ino)"
        for line in locks.split(separator: "\n") where line.contains("FLOCK") {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            // "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF"
            guard fields.count >= 6, fields[5].hasSuffix(inodeSuffix), let pid = Int32(fields[4]) else { continue }
            return pid
        }
        return nil
    }
}
