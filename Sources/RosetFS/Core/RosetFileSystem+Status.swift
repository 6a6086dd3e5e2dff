// The running file system's side of `mount.roset status`: it rewrites the spool's STATUS file
// every second while it serves (`startStatusPublisher`, called by the daemon once mounted);
// shutdown publishes `draining`, then `stopped`. Read-only mounts publish nothing: they do not
// touch the spool.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

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
