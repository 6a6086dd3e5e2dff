// `<spool folder>/STATUS`: the state and upload counters of the daemon holding the spool's lock,
// read by `mount.roset status`. Invariants: written only by that daemon, always atomically
// (temporary file + rename), so readers never see half a file; its `state` is `mounted` while the
// file system serves, `draining` once it stopped taking writes (unmounted, uploads finishing
// within shutdown_grace) and `stopped` when the daemon let go of the lock. Recovery never needs it.
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
    /// Uploads that replaced a version another machine made after this one opened the file
    /// (docs/SEMANTICS.md); absent in files of older daemons.
    public var concurrentWrites: Int?
    /// While draining: when the daemon gives up waiting for uploads (seconds since the epoch).
    public var drainUntil: Double?
    /// The disk data cache's size, bound and hits (absent when it is off, or from older daemons).
    public var dataCache: DiskDataCache.Snapshot?

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
