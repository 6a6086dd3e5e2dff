// `mount.roset status DIR`: finds DIR's spool through the mount registry and prints what the
// spool holds (pending uploads, their bytes, the oldest pending age, failures, dead letters,
// torn records) and whether the daemon still runs. Reads only; works when the daemon is gone.
// Exit status: 0 when shown, 1 when DIR has no registered roset mount.
import Foundation
import MountHelper
import RosetFS

enum StatusCommand {
    struct JSONOutput: Codable {
        var mountpoint: String
        var spoolFolder: String
        var subdir: String?
        var daemonRunning: Bool
        var daemonPid: Int32?
        var state: String
        var pendingFiles: Int
        var pendingBytes: Int64
        var oldestPendingAgeSeconds: Double?
        var uploadFailures: Int
        /// Uploads that replaced another machine's newer version (docs/SEMANTICS.md).
        var concurrentWrites: Int
        var lastError: String?
        var deadLetters: Int
        var tornRecords: Int
        var dataCache: DiskDataCache.Snapshot?
        var dataCacheHitRatio: Double?
        var report: SpoolReport
    }

    static func run(_ request: StatusRequest) -> Int32 {
        let dir = MountRegistry.canonical(request.directory)
        guard let registration = MountRegistry.lookup(mountpoint: dir) else {
            FileHandle.standardError.write(Data("mount.roset: no roset mount is registered for \(dir) (looked in \(MountRegistry.folder))\n".utf8))
            return 1
        }
        let report = SpoolReport.read(folder: registration.spoolFolder)
        let now = Date().timeIntervalSince1970
        let running = report.lockHolderPid != nil
        let state: String
        if let holder = report.lockHolderPid {
            state = report.status?.pid == holder ? (report.status?.state.rawValue ?? "mounted") : "mounted"
        } else {
            state = "not running"
        }
        let oldest = report.pending.map(\.createdAt).min().map { max(0, now - $0) }
        let failures = report.status?.uploadFailures ?? 0
        if request.json {
            let out = JSONOutput(mountpoint: dir, spoolFolder: registration.spoolFolder, subdir: registration.subdir, daemonRunning: running,
                                 daemonPid: report.lockHolderPid, state: state, pendingFiles: report.pending.count,
                                 pendingBytes: report.pendingBytes, oldestPendingAgeSeconds: oldest,
                                 uploadFailures: failures, concurrentWrites: report.status?.concurrentWrites ?? 0,
                                 lastError: report.status?.lastError,
                                 deadLetters: report.deadLetters.count, tornRecords: report.tornRecords.count,
                                 dataCache: report.status?.dataCache, dataCacheHitRatio: report.status?.dataCache?.hitRatio,
                                 report: report)
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            let data = (try? encoder.encode(out)) ?? Data("{}".utf8)
            FileHandle.standardOutput.write(data + Data("\n".utf8))
            return 0
        }
        var lines: [String] = []
        lines.append("roset mount \(registration.mountId)" + (registration.subdir.map { " (subdir /\($0))" } ?? "") + " on \(dir)")
        if let pid = report.lockHolderPid {
            let detail = state == "draining" ? "unmounted, finishing its uploads" : state
            lines.append("  daemon:       pid \(pid), \(detail)")
        } else {
            lines.append("  daemon:       not running (last pid \(registration.pid)); the spool waits for the next mount")
        }
        lines.append("  spool:        \(registration.spoolFolder)")
        let age = oldest.map { "; oldest pending \(format(seconds: $0))" } ?? ""
        lines.append("  pending:      \(report.pending.count) file(s), \(report.pendingBytes) bytes\(age)")
        for p in report.pending {
            lines.append("    \(p.state.padding(toLength: 9, withPad: " ", startingAt: 0)) \(String(p.bytes).leftPadded(12)) B  \(format(seconds: max(0, now - p.createdAt)).leftPadded(8))  \(p.name)")
        }
        var failureLine = "  failures:     \(failures) failed upload attempt(s)"
        if let last = report.status?.lastError {
            let when = report.status?.lastErrorAt.map { " (\(format(seconds: max(0, now - $0))) ago)" } ?? ""
            failureLine += "; last\(when): \(last)"
        }
        lines.append(failureLine)
        let concurrent = report.status?.concurrentWrites ?? 0
        lines.append("  concurrent:   \(concurrent)" + (concurrent > 0
            ? " upload(s) replaced a version another machine wrote meanwhile (kept in the file's version history; see the log)" : ""))
        lines.append("  dead letters: \(report.deadLetters.count)")
        for d in report.deadLetters { lines.append("    \(d.path): \(d.reason) (\(d.bytes) B)") }
        if !report.tornRecords.isEmpty {
            lines.append("  torn records: \(report.tornRecords.count) (their data is kept; the next mount moves it to dead letters)")
            for t in report.tornRecords { lines.append("    \(t)") }
        }
        if running, let cache = report.status?.dataCache {
            lines.append(dataCacheLine(cache))
        }
        FileHandle.standardOutput.write(Data((lines.joined(separator: "\n") + "\n").utf8))
        return 0
    }

    /// "data cache: 812 MiB of 35840 MiB (floor 25600 MiB free) in DIR; hit ratio 97.2% (…)".
    static func dataCacheLine(_ cache: DiskDataCache.Snapshot) -> String {
        guard cache.usable else { return "  data cache:   \(cache.folder) unusable (see the daemon's log); reads go to the network" }
        let ratio = cache.hitRatio.map { String(format: "%.1f%%", $0 * 100) } ?? "n/a"
        return "  data cache:   \(cache.bytes >> 20) MiB of \(cache.boundBytes >> 20) MiB bound (keeps \(cache.minFreeBytes >> 20) MiB free), "
            + "\(cache.blocks) block(s) in \(cache.folder); hit ratio \(ratio) (\(cache.hits) block reads from disk, \(cache.misses) fetched)"
    }

    static func format(seconds: Double) -> String {
        let s = Int(seconds)
        if s < 120 { return "\(s) s" }
        if s < 7200 { return "\(s / 60) min" }
        return "\(s / 3600) h"
    }
}

extension String {
    func leftPadded(_ width: Int) -> String { count >= width ? self : String(repeating: " ", count: width - count) + self }
}
