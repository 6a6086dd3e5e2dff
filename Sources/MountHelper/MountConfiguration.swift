// Everything a mount needs, resolved once from the command line, the environment and the
// defaults (in that order of precedence). Invariant: nothing in `description` reveals the key.
import Foundation

public struct MountConfiguration: Sendable, CustomStringConvertible {
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
    /// Free space the spool's file system keeps; writers wait (or get ENOSPC) below it.
    public var spoolMinFreeMB: Int = 0
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
    public var logFile: String?
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
    }

    /// mount(8)'s SPEC exactly as given (nil in the roset-fuse form).
    public var source: String?

    /// First field of /proc/mounts: SPEC as mount(8) passed it, because `mount -a` (libmount)
    /// knows an fstab line is already mounted only when source and target both match; otherwise
    /// `roset:<mount id>` (roset-fuse form).
    public var fsName: String { source ?? "roset:\(mountId ?? "default")" }

    public var description: String {
        func octal(_ v: UInt32) -> String { "0" + String(v, radix: 8) }
        var parts = [
            "mountpoint=\(mountpoint)", "mount_id=\(mountId ?? "(default mount)")", "api_url=\(apiURL.absoluteString)",
            "key=\(apiKey)", "cache_ttl=\(cacheTTL)", "cache_size_mb=\(cacheSizeMB)", "ro=\(readOnly)",
            "uid=\(uid)", "gid=\(gid)", "umask=\(octal(umask))", "file_mode=\(octal(fileMode))",
            "dir_mode=\(octal(dirMode))", "spool_dir=\(spoolDirectory)", "spool_max_mb=\(spoolMaxMB)", "spool_min_free_mb=\(spoolMinFreeMB)",
            "upload_concurrency=\(uploadConcurrency)", "part_size_mb=\(partSizeMB)", "close_wait=\(closeWait)", "direct_io=\(directIO)", "splice_read=\(spliceRead)",
            "request_timeout=\(requestTimeout)", "retries=\(maxAttempts - 1)",
            "upload_delay_ms=\(uploadDelayMs)", "shutdown_grace=\(shutdownGrace)", "allow_other=\(allowOther)", "allow_root=\(allowRoot)",
            "default_permissions=\(defaultPermissions)", "max_threads=\(maxThreads)", "read_ahead_kb=\(readAheadKB)",
            "vfs=\(vfsFlags.map(\.rawValue).sorted().joined(separator: "+"))",
            "foreground=\(foreground)", "debug=\(debug)",
        ]
        if let maxRead { parts.append("max_read=\(maxRead)") }
        if let blockSize { parts.append("blksize=\(blockSize)") }
        if let logFile { parts.append("log_file=\(logFile)") }
        return "MountConfiguration(" + parts.joined(separator: ", ") + ")"
    }
}
