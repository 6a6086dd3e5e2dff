// Everything a mount needs, resolved once from the command line, the environment and the
// defaults (in that order of precedence). Invariant: nothing in `description` reveals the key.
import Foundation

public struct MountConfiguration: Sendable, CustomStringConvertible {
    /// log_level= values, least verbose first; syslog's priorities for the same words.
    public enum LogLevel: String, Sendable, CaseIterable, Comparable {
        case error, warn, info, debug, trace

        /// One step more verbose (what -v adds); trace stays trace.
        public var raised: LogLevel { LogLevel.allCases[min(LogLevel.allCases.firstIndex(of: self)! + 1, LogLevel.allCases.count - 1)] }

        public static func < (a: LogLevel, b: LogLevel) -> Bool {
            allCases.firstIndex(of: a)! < allCases.firstIndex(of: b)!
        }
    }

    /// Kernel VFS flags, as mount(8) spells them.
    public enum VFSFlag: String, Sendable, Hashable, CaseIterable {
        case nosuid, suid, nodev, dev, noexec, exec, noatime, atime, relatime, sync, async, dirsync
    }

    public static let defaultAPIURL = URL(string: "https://api.roset.dev")!

    // Where and what
    public var mountpoint: String
    /// nil = the account's default mount.
    public var mountId: String?

    // Control plane (RosetAPIClient)
    public var apiURL: URL
    public var apiKey: APIKey
    public var connectTimeout: Double = 10
    /// One attempt of a control-plane call (request_timeout=).
    public var requestTimeout: Double = 60
    /// Attempts per call once mounted, the first included (retries= plus one). A call that
    /// fails them all becomes EIO in the application that made it.
    public var maxAttempts: Int = 10

    // Filesystem (RosetFS.FileSystemConfiguration)
    public var cacheTTL: Double = 300
    /// How long a missing name (and a folder listing) is trusted (negative_ttl=).
    public var negativeTTL: Double = 5
    /// Opening a file revalidates it with the control plane (close_to_open=, default on).
    public var closeToOpen: Bool = true
    /// Where the Prometheus endpoint listens (metrics=); nil: no endpoint.
    public var metrics: MetricsAddress?

    /// `HOST:PORT`, `[IPV6]:PORT` or a bare `PORT` (on 127.0.0.1: loopback unless the admin
    /// names another address).
    public struct MetricsAddress: Equatable, Sendable, CustomStringConvertible {
        public var host: String
        public var port: UInt16
        public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }

        public static func parse(_ text: String) throws -> MetricsAddress {
            func bad(_ why: String) -> MountHelperError {
                MountHelperError("bad value for metrics: \"\(text)\" \(why) (give HOST:PORT, e.g. metrics=127.0.0.1:9464)")
            }
            var host = "127.0.0.1"
            var portText = Substring(text)
            if text.hasPrefix("[") {
                guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else {
                    throw bad("is not [ADDRESS]:PORT")
                }
                host = String(text[text.index(after: text.startIndex)..<close])
                portText = text[text.index(close, offsetBy: 2)...]
            } else if let colon = text.lastIndex(of: ":") {
                host = String(text[..<colon])
                portText = text[text.index(after: colon)...]
            }
            guard !host.isEmpty else { throw bad("names no host") }
            guard let port = UInt16(portText), port > 0 else { throw bad("has no port from 1 to 65535") }
            return MetricsAddress(host: host, port: port)
        }
    }
    public var cacheSizeMB: Int = 256
    public var readOnly: Bool = false
    public var uid: UInt32
    public var gid: UInt32
    public var umask: UInt32 = 0o022
    /// Permission bits of files and folders without `posix.mode` metadata; set from `umask`
    /// unless file_mode=/dir_mode= were given.
    public var fileMode: UInt32 = 0o644
    public var dirMode: UInt32 = 0o755
    public var spoolDirectory: String
    public var spoolMaxMB: Int = 10_240
    /// The disk data cache's base folder (data_cache_dir=); default `data-cache` beside the spool
    /// folder.
    public var dataCacheDirectory: String
    /// data_cache_max_mb=; nil: half of the free space of its file system (see mount.roset(8)).
    public var dataCacheMaxMB: Int?
    /// data_cache_min_free_mb=; nil: 10% of its file system, at least 1 GiB.
    public var dataCacheMinFreeMB: Int?
    public var uploadConcurrency: Int = 8
    public var partSizeMB: Int = 16
    public var closeWait: Bool = false
    /// Reads bypass the kernel's page cache (see `FileSystemConfiguration.directIO`).
    public var directIO: Bool = false
    /// Sequential reads of plain-http URLs go socket -> pipe -> kernel (see
    /// `FileSystemConfiguration.spliceRead`).
    public var spliceRead: Bool = true
    /// A closed file below the part size waits for this long a pause in the closes before its
    /// upload starts (at most 20 times that); 0 uploads at once.
    public var uploadDelayMs: Int = 500
    public var shutdownGrace: Double = 30

    // FUSE session
    public var allowOther: Bool = false
    public var allowRoot: Bool = false
    public var defaultPermissions: Bool = false
    public var vfsFlags: Set<VFSFlag> = []
    public var maxRead: UInt32?
    public var blockSize: UInt32?
    /// libfuse worker threads at most (max_threads=).
    public var maxThreads: Int = 64
    /// The kernel's read-ahead window for buffered readers, in KiB (read_ahead_kb=); 0 leaves
    /// the kernel's 128 KiB. 4 MiB measured best for cold sequential reads (1-16 MiB alike).
    public var readAheadKB: Int = 4096

    // Process
    public var foreground: Bool = false
    public var debug: Bool = false
    public var verbose: Bool = false
    /// The daemon's log level (log_level=; `debug` is log_level=debug; each -v one step more).
    public var logLevel: LogLevel = .info
    public var logFile: String?
    /// A folder of the namespace served as the mount's root (subdir=), "/"-separated, without
    /// leading or trailing "/"; nil serves the whole mount.
    public var subdir: String?
    /// mount(8)'s -N: a mount namespace to enter before mounting.
    public var mountNamespace: String?
    /// mount(8)'s -f: validate, do not mount.
    public var fake: Bool = false
    /// Non-fatal notes from parsing (ignored options, sloppy mode); printed or logged by the caller.
    public var warnings: [String] = []

    public init(mountpoint: String, mountId: String?, apiURL: URL, apiKey: APIKey, uid: UInt32, gid: UInt32,
                spoolDirectory: String) {
        self.mountpoint = mountpoint; self.mountId = mountId; self.apiURL = apiURL; self.apiKey = apiKey
        self.uid = uid; self.gid = gid; self.spoolDirectory = spoolDirectory
        self.dataCacheDirectory = Self.defaultDataCacheDirectory(spoolDirectory: spoolDirectory)
    }

    /// `data-cache` beside the spool's base folder: both live in the daemon's state folder.
    public static func defaultDataCacheDirectory(spoolDirectory: String) -> String {
        let parent = URL(fileURLWithPath: spoolDirectory).deletingLastPathComponent().path
        return (parent == "/" ? "" : parent) + "/data-cache"
    }

    /// mount(8)'s SPEC exactly as given (nil in the roset-fuse form).
    public var source: String?

    /// First field of /proc/mounts: SPEC as mount(8) passed it, because `mount -a` (libmount)
    /// knows an fstab line is already mounted only when source and target both match; otherwise
    /// `roset:<mount id>` (roset-fuse form), followed by `:/<subdir>` when a subdir= is served.
    public var fsName: String {
        source ?? "roset:\(mountId ?? "default")" + (subdir.map { ":/" + $0 } ?? "")
    }

    public var description: String {
        func octal(_ v: UInt32) -> String { "0" + String(v, radix: 8) }
        var parts = [
            "mountpoint=\(mountpoint)", "mount_id=\(mountId ?? "(default mount)")", "api_url=\(apiURL.absoluteString)",
            "key=\(apiKey)", "cache_ttl=\(cacheTTL)", "negative_ttl=\(negativeTTL)", "close_to_open=\(closeToOpen)", "metrics=\(metrics.map { "\($0)" } ?? "off")", "cache_size_mb=\(cacheSizeMB)", "ro=\(readOnly)",
            "uid=\(uid)", "gid=\(gid)", "umask=\(octal(umask))", "file_mode=\(octal(fileMode))",
            "dir_mode=\(octal(dirMode))", "spool_dir=\(spoolDirectory)", "spool_max_mb=\(spoolMaxMB)",
            "data_cache_dir=\(dataCacheDirectory)", "data_cache_max_mb=\(dataCacheMaxMB.map(String.init) ?? "auto")",
            "data_cache_min_free_mb=\(dataCacheMinFreeMB.map(String.init) ?? "auto")",
            "upload_concurrency=\(uploadConcurrency)", "part_size_mb=\(partSizeMB)", "close_wait=\(closeWait)", "direct_io=\(directIO)", "splice_read=\(spliceRead)",
            "request_timeout=\(requestTimeout)", "retries=\(maxAttempts - 1)",
            "upload_delay_ms=\(uploadDelayMs)", "shutdown_grace=\(shutdownGrace)", "allow_other=\(allowOther)", "allow_root=\(allowRoot)",
            "default_permissions=\(defaultPermissions)", "max_threads=\(maxThreads)", "read_ahead_kb=\(readAheadKB)",
            "vfs=\(vfsFlags.map(\.rawValue).sorted().joined(separator: "+"))",
            "foreground=\(foreground)", "debug=\(debug)", "log_level=\(logLevel.rawValue)",
        ]
        if let subdir { parts.append("subdir=\(subdir)") }
        if let maxRead { parts.append("max_read=\(maxRead)") }
        if let blockSize { parts.append("blksize=\(blockSize)") }
        if let logFile { parts.append("log_file=\(logFile)") }
        return "MountConfiguration(" + parts.joined(separator: ", ") + ")"
    }
}
