// What `mount.roset status DIR` shows, and the two small files it reads besides the journal.
// Invariants:
// - `<spool folder>/STATUS` (SpoolStatusFile, JSON) is written by the daemon holding the lock,
//   always atomically (temporary file + rename); readers never see half a file. Its `state` is
//   `mounted` while the file system serves, `draining` once it stopped taking writes (unmounted,
//   uploads finishing within shutdown_grace) and `stopped` when the daemon let go of the lock.
// - The mount registry (`/run/roset/mounts/` for root, `$XDG_RUNTIME_DIR/roset/mounts/` else)
//   maps a mount point to its spool folder and daemon pid. It survives a crashed daemon, so the
//   status view still finds and lists the spool of a mount whose daemon is gone.
// - SpoolReport only reads: it never takes the spool lock and never changes a file, so it is safe
//   while a daemon runs (it may see a record a moment old).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct SpoolStatusFile: Codable, Sendable, Equatable {
    public enum State: String, Codable, Sendable { case mounted, draining, stopped }
    public var pid: Int32
    public var state: State
    public var updatedAt: Double
    /// Uploads confirmed by the control plane since this daemon started.
    public var uploadsConfirmed: Int = 0
    /// Upload attempts that failed (each retry counts) since this daemon started.
    public var uploadFailures: Int = 0
    public var lastError: String?
    public var lastErrorAt: Double?
    /// While draining: when the daemon gives up waiting for uploads (seconds since the epoch).
    public var drainUntil: Double?

    public static func read(folder: String) -> SpoolStatusFile? {
        guard let data = FileManager.default.contents(atPath: folder + "/STATUS") else { return nil }
        return try? JSONDecoder().decode(SpoolStatusFile.self, from: data)
    }

    func write(folder: String) {
        guard let data = try? JSONEncoder().encode(self) else { return }
        let tmp = folder + "/STATUS.tmp"
        if FileManager.default.createFile(atPath: tmp, contents: data) { rename(tmp, folder + "/STATUS") }
    }
}

/// Upload outcomes counted by the uploader, published in STATUS.
final class UploadCounters: @unchecked Sendable {
    private let lock = NSLock()
    private(set) var confirmed = 0
    private(set) var failures = 0
    private(set) var lastError: String?
    private(set) var lastErrorAt: Double?

    func recordSuccess() { lock.withLock { confirmed += 1 } }
    func recordFailure(_ error: Error, at date: Date) {
        lock.withLock { failures += 1; lastError = "\(error)"; lastErrorAt = date.timeIntervalSince1970 }
    }
    func snapshot() -> (Int, Int, String?, Double?) { lock.withLock { (confirmed, failures, lastError, lastErrorAt) } }
}

/// One line of the mount registry: which spool a mount point uses and which daemon serves it.
public struct MountRegistration: Codable, Sendable, Equatable {
    public var mountpoint: String
    public var spoolFolder: String
    public var pid: Int32
    public var mountId: String
    public var startedAt: Double

    public init(mountpoint: String, spoolFolder: String, pid: Int32, mountId: String, startedAt: Double) {
        self.mountpoint = mountpoint; self.spoolFolder = spoolFolder; self.pid = pid
        self.mountId = mountId; self.startedAt = startedAt
    }
}

public enum MountRegistry {
    /// `/run/roset/mounts` for root, `$XDG_RUNTIME_DIR/roset/mounts` (or /tmp/roset-UID/mounts).
    public static var folder: String {
        if let override = ProcessInfo.processInfo.environment["ROSET_RUNTIME_DIR"], !override.isEmpty {
            return override + "/mounts"
        }
        if getuid() == 0 { return "/run/roset/mounts" }
        if let xdg = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !xdg.isEmpty { return xdg + "/roset/mounts" }
        return "/tmp/roset-\(getuid())/mounts"
    }

    /// The mount point's absolute path with its parent's symlinks resolved. The mount point
    /// itself is never touched (no stat, no realpath): the daemon registers before it serves
    /// requests (a stat would wait for itself), and after a crash it answers ENOTCONN.
    public static func canonical(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var parts: [Substring] = []
        for part in absolute.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        guard let name = parts.popLast() else { return "/" }
        let parent = "/" + parts.joined(separator: "/")
        guard let resolved = realpath(parent, nil) else { return parent + (parts.isEmpty ? "" : "/") + name }
        defer { free(resolved) }
        let base = String(cString: resolved)
        return (base == "/" ? "" : base) + "/" + name
    }

    static func file(for mountpoint: String) -> String {
        folder + "/" + String(SHA256Hasher.hex(of: Array(canonical(mountpoint).utf8)).prefix(16)) + ".json"
    }

    public static func register(_ r: MountRegistration) {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        guard let data = try? JSONEncoder().encode(r) else { return }
        let path = file(for: r.mountpoint)
        if FileManager.default.createFile(atPath: path + ".tmp", contents: data) { rename(path + ".tmp", path) }
    }

    public static func lookup(mountpoint: String) -> MountRegistration? {
        guard let data = FileManager.default.contents(atPath: file(for: mountpoint)) else { return nil }
        return try? JSONDecoder().decode(MountRegistration.self, from: data)
    }

    /// Removes the registration, only if it is still this daemon's.
    public static func unregister(mountpoint: String, pid: Int32) {
        if lookup(mountpoint: mountpoint)?.pid == pid { unlink(file(for: mountpoint)) }
    }
}

/// What a spool folder holds, read without the lock.
public struct SpoolReport: Codable, Sendable {
    public struct Pending: Codable, Sendable {
        public var entryId: String
        public var name: String
        public var state: String
        public var bytes: Int64
        public var createdAt: Double
        /// Bytes the store has confirmed in the file's upload session (streamed parts).
        public var sentBytes: Int64 = 0
        /// Bytes still to send (`bytes` minus `sentBytes`).
        public var unsentBytes: Int64 = 0
        /// Disk the data file takes now (released parts are holes).
        public var spooledBytes: Int64 = 0
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
            let found = stat(folder + "/data/" + id, &st) == 0
            let size = found ? Int64(st.st_size) : record.size
            var sent: Int64 = 0
            if let upload = record.upload, upload.multipart {
                for part in upload.parts {
                    sent += max(0, min(upload.partSize, size - Int64(part.partNumber - 1) * upload.partSize))
                }
            }
            var pending = Pending(entryId: id, name: record.target.name, state: record.state.rawValue,
                                  bytes: size, createdAt: record.createdAt)
            pending.sentBytes = sent
            pending.unsentBytes = max(0, size - sent)
            pending.spooledBytes = found ? Int64(st.st_blocks) * 512 : record.spooledBytes
            report.pending.append(pending)
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

extension RosetFileSystem {
    /// The folder this file system's spool lives in (for the mount registry).
    public var spoolFolder: String { spool.folder }

    func publishStatus(_ state: SpoolStatusFile.State, drainUntil: Date? = nil) {
        guard !config.readOnly else { return }
        let (confirmed, failures, lastError, lastErrorAt) = uploader.counters.snapshot()
        SpoolStatusFile(pid: getpid(), state: state, updatedAt: Date().timeIntervalSince1970,
                        uploadsConfirmed: confirmed, uploadFailures: failures, lastError: lastError,
                        lastErrorAt: lastErrorAt, drainUntil: drainUntil?.timeIntervalSince1970).write(folder: spool.folder)
    }

    /// Rewrites STATUS every second while the file system serves (the daemon calls it once mounted).
    public func startStatusPublisher() {
        guard !config.readOnly else { return }
        publishStatus(.mounted)
        let t = Thread { [weak self] in
            while true {
                let serving: Bool = {
                    guard let fs = self, !fs.stateLock.withLock({ fs.shuttingDown }) else { return false }
                    fs.publishStatus(.mounted)
                    return true
                }()
                if !serving { return }
                Thread.sleep(forTimeInterval: 1)
            }
        }
        t.name = "roset-status"
        t.start()
    }
}
