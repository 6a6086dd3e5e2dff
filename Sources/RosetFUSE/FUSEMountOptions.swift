// What the kernel mount looks like: its name in /proc/mounts, who may use it, its VFS flags, and
// the size of libfuse's worker pool. Turned into the `-o` list fuse_session_new understands; no
// option here ever carries a secret (the list is visible in /proc/mounts).

public struct FUSEMountOptions: Sendable, Hashable {
    /// Kernel VFS flags as mount(8) spells them. `relatime`/`atime` are the kernel's default and
    /// `suid`/`dev`/`exec`/`async` undo libfuse's defaults (libfuse mounts nosuid,nodev by default).
    public enum KernelFlag: String, Sendable, Hashable, CaseIterable {
        case nosuid, suid, nodev, dev, noexec, exec, noatime, atime, relatime, sync, async, dirsync
    }

    /// First field of /proc/mounts, e.g. `roset:<mountId>`.
    public var fsName: String
    /// /proc/mounts shows the type as `fuse.<subtype>`.
    public var subtype: String
    public var readOnly: Bool
    public var allowOther: Bool
    public var allowRoot: Bool
    public var defaultPermissions: Bool
    public var kernelFlags: Set<KernelFlag>
    /// Largest read request the kernel sends (max_read=); nil = `defaultMaxRead`.
    public var maxRead: UInt32?
    /// 992 KiB rather than the kernel's 1 MiB: a reply spliced from pipes (a sequential reader's
    /// read-ahead) goes through a pipe of libfuse's that cannot grow past
    /// /proc/sys/fs/pipe-max-size (1 MiB) without CAP_SYS_RESOURCE, and must fit in it with its
    /// header and a page per piece; a 1 MiB reply would be copied through memory instead.
    public static let defaultMaxRead: UInt32 = 992 * 1024
    /// The max_read the mount uses.
    public var effectiveMaxRead: UInt32 { maxRead ?? Self.defaultMaxRead }
    /// Reported as st_blksize of every file and folder (blksize=). The kernel accepts the option
    /// itself only for fuseblk, so it is applied in the replies instead.
    public var blockSize: UInt32?
    /// libfuse's worker pool: at most `maxThreads` requests in progress, `maxIdleThreads` kept
    /// waiting so parallel reads and lookups do not wait for a thread to start.
    public var maxThreads: Int
    public var maxIdleThreads: Int
    /// The kernel's read-ahead window for buffered readers, in KiB (see KernelReadAhead); nil or
    /// 0 leaves the kernel's default of 128 KiB. Not a libfuse option: applied through sysfs.
    public var readAheadKB: Int?

    public init(fsName: String, subtype: String = "roset", readOnly: Bool = false, allowOther: Bool = false,
                allowRoot: Bool = false, defaultPermissions: Bool = false, kernelFlags: Set<KernelFlag> = [],
                maxRead: UInt32? = nil, blockSize: UInt32? = nil, maxThreads: Int = 64, maxIdleThreads: Int = 16,
                readAheadKB: Int? = nil) {
        self.fsName = fsName; self.subtype = subtype; self.readOnly = readOnly
        self.allowOther = allowOther; self.allowRoot = allowRoot; self.defaultPermissions = defaultPermissions
        self.kernelFlags = kernelFlags; self.maxRead = maxRead; self.blockSize = blockSize
        self.maxThreads = maxThreads; self.maxIdleThreads = maxIdleThreads; self.readAheadKB = readAheadKB
    }

    /// The option list for fuse_session_new. libfuse (fuse_opt) treats `\,` as a literal comma.
    var fuseOptionString: String {
        func escaped(_ s: String) -> String {
            s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: ",", with: "\\,")
        }
        var items = ["fsname=\(escaped(fsName))", "subtype=\(escaped(subtype))"]
        items.append(readOnly ? "ro" : "rw")
        if allowOther { items.append("allow_other") }
        if allowRoot { items.append("allow_root") }
        if defaultPermissions { items.append("default_permissions") }
        // atime/relatime are the kernel default; libfuse does not know them by name.
        for flag in KernelFlag.allCases where kernelFlags.contains(flag) && flag != .atime && flag != .relatime {
            items.append(flag.rawValue)
        }
        items.append("max_read=\(effectiveMaxRead)")
        return items.joined(separator: ",")
    }

    /// The `-o` list handed to libfuse (for tests and logs).
    public var fuseOptionStringForTesting: String { fuseOptionString }
}
