// What a mount of RosetFS is configured with. Invariant: every value has a default that gives a
// working read-write mount; the mount helper fills these from options > environment > defaults.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct FileSystemConfiguration: Sendable {
    /// Identity of the spool folder, together with `mountId`.
    public var apiURL: String
    public var mountId: String
    /// A folder path ("a/b") inside the mount served as the root (subdir=); nil serves the whole
    /// mount. Resolved once, when the filesystem is built.
    public var subdir: String? = nil
    /// Kernel entry/attribute timeouts and the daemon's metadata cache lifetime (seconds).
    public var cacheTTL: Double = 300
    /// How long a name found absent, and a folder listing's view of which names exist, is
    /// trusted (seconds): a name created on another machine shows within it (negative_ttl=).
    public var negativeTTL: Double = 5
    /// Close-to-open: opening a file whose cached node is older than `revalidateAfter` asks the
    /// control plane for it again, and drops the daemon's and the kernel's cached content when
    /// it changed. Read-only mounts and committed folders skip it (close_to_open=0 relaxes it).
    public var closeToOpen = true
    public var revalidateAfter: Double = 1
    /// Bound of the read block cache.
    public var cacheSizeMB: Int = 256
    /// Base folder of the disk data cache (DiskDataCache); the per-(apiURL, mountId) folder is
    /// derived inside it, named like the spool's. nil: no disk cache.
    public var dataCacheDirectory: String? = nil
    /// Bound of the disk data cache; nil: half of its file system's free space at mount plus what
    /// it already holds; 0 turns it off.
    public var dataCacheMaxMB: Int? = nil
    /// Free space the disk data cache leaves on its file system; nil: 10% of it, at least 1 GiB.
    public var dataCacheMinFreeMB: Int? = nil
    public var readOnly = false
    public var uid: UInt32
    public var gid: UInt32
    public var umask: UInt32 = 0o022
    /// Permission bits of files that carry no `posix.mode`; default 0o666 & ~umask.
    public var fileMode: UInt32? = nil
    /// Permission bits of folders that carry no `posix.mode`; default 0o777 & ~umask.
    public var dirMode: UInt32? = nil
    /// Base folder; the per-(apiURL, mountId) spool folder is derived inside it.
    public var spoolDirectory: String
    public var spoolMaxMB: Int = 4096
    /// Parts (and files) in flight at once.
    public var uploadConcurrency: Int = 4
    /// Grows so that no file needs more than 10,000 parts.
    public var partSizeMB: Int = 16
    /// close(2) waits for the upload too.
    public var closeWait = false
    /// Every open bypasses the kernel's page cache: reads go to the daemon (its block cache) at
    /// the reader's own size, one copy fewer per byte. For data sets read once or larger than
    /// memory; a re-read is served from the block cache (`cacheSizeMB`) only, and shared
    /// writable mmap is refused (ENODEV). Off by default: the page cache is kept across opens.
    public var directIO = false
    /// A sequential reader of a plain-http signed URL reads ahead into pipes that the FUSE layer
    /// splices into the kernel (PipeStream): the bytes never pass through this process.
    /// Where it cannot (https, a proxy, pipes refused) reads go through the block cache as before.
    public var spliceRead = true
    /// The kernel's read-ahead window (read_ahead_kb=; 128 KiB when the mount leaves it alone):
    /// how far ahead of a buffered reader the kernel asks, so how far out of order its reads come.
    public var kernelReadAheadKB = 4096
    /// Seconds of pause in the closes a file below the part size waits for before its upload
    /// starts (at most 20 times that in all); 0 uploads at once.
    public var uploadDelay: Double = 0.5
    /// The daemon checks mode bits itself (search on every path component, read/write on open,
    /// write on a folder to change it) and hands out entries with a timeout of 0: a mount other
    /// users reach without the kernel's default_permissions. Ownership rules are checked always.
    public var checksAccess = false
    /// Seconds pending uploads get at unmount.
    public var shutdownGrace: Double = 30

    public init(apiURL: String, mountId: String, spoolDirectory: String) {
        self.apiURL = apiURL
        self.mountId = mountId
        self.spoolDirectory = spoolDirectory
        self.uid = getuid()
        self.gid = getgid()
    }

    var effectiveFileMode: UInt32 { (fileMode ?? (0o666 & ~umask)) & 0o7777 }
    var effectiveDirMode: UInt32 { (dirMode ?? (0o777 & ~umask)) & 0o7777 }
}

/// Knobs that tests turn (tiny parts, fast retries, a fake clock); production uses the defaults.
struct FileSystemTuning: Sendable {
    var now: @Sendable () -> Date = { Date() }
    /// Overrides `partSizeMB` (bytes) so tests can exercise multipart with small files.
    var partSizeBytes: Int64? = nil
    var retryBaseDelay: Double = 0.5
    var retryMaxDelay: Double = 60
    /// Consecutive failed attempts after which fsync/close-wait waiters get EIO (the uploader
    /// keeps retrying in the background).
    var attemptsBeforeReporting = 5
    /// Full parts of a file written sequentially are uploaded before its close.
    var streamParts = true
    /// Chunk size of downloads that bring existing content into the spool.
    var materializeChunk = 4 << 20
}
