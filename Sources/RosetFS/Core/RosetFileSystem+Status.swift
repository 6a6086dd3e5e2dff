// The running file system's side of `mount.roset status`: it rewrites the spool's STATUS file
// every second while it serves (`startStatusPublisher`, called by the daemon once mounted);
// shutdown publishes `draining`, then `stopped`. Read-only mounts publish nothing: they do not
// touch the spool.
import Foundation
import Metrics
import RosetMetrics
#if canImport(Glibc)
import Glibc
#endif

extension RosetFileSystem {
    /// The folder this file system's spool lives in (for the mount registry).
    public var spoolFolder: String { spool.folder }

    func publishStatus(_ state: SpoolStatusFile.State, drainUntil: Date? = nil) {
        guard !config.readOnly else { return }
        publishSpoolGauges()
        let (confirmed, failures, lastError, lastErrorAt) = uploader.counters.snapshot()
        SpoolStatusFile(pid: getpid(), state: state, updatedAt: Date().timeIntervalSince1970,
                        uploadsConfirmed: confirmed, uploadFailures: failures, lastError: lastError,
                        lastErrorAt: lastErrorAt, concurrentWrites: concurrentWriteCount,
                        drainUntil: drainUntil?.timeIntervalSince1970,
                        dataCache: dataCache?.snapshot).write(folder: spool.folder)
    }

    /// The spool's pending files, bytes and oldest age as gauges (metrics=), from the live entries.
    func publishSpoolGauges() {
        var files = 0, bytes: Int64 = 0
        var oldest: Double?
        for e in liveEntries {
            let (live, size, created) = e.cond.withLock { (e.isLive, e.record.size, e.record.createdAt) }
            guard live else { continue }
            files += 1
            bytes += size
            oldest = min(oldest ?? created, created)
        }
        Gauge(label: RosetMetricNames.spoolPendingFiles).record(files)
        Gauge(label: RosetMetricNames.spoolPendingBytes).record(bytes)
        Gauge(label: RosetMetricNames.spoolOldestPendingAge).record(oldest.map { max(0, Date().timeIntervalSince1970 - $0) } ?? 0)
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
