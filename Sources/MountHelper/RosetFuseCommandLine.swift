// The original `roset-fuse` command line (`roset-fuse MOUNTPOINT --api-key KEY ...`, see
// roset-fuse(1)), plus `--api-key-file` and the CSI launcher's `--mountpoint` form. Every flag
// maps onto a mount option, so both command lines share one validation. CSI flags with no
// meaning here are accepted with a warning, except --ref: a pinned snapshot the control plane
// cannot serve fails the mount, since mounting the live tree instead would hand a job other data.
import ArgumentParser
import Foundation

public struct RosetFuseCommandLine: ParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "roset-fuse",
        abstract: "Mount Roset-managed storage through FUSE.",
        discussion: """
            Environment: ROSET_API_URL, ROSET_API_KEY, ROSET_MOUNT_ID (used when the flag is absent).
            Daemonizes unless --foreground. The same binary is the mount(8) helper mount.roset;
            see mount.roset(8) for -o options.
            """)

    @Argument(help: ArgumentHelp("The mount point (an existing folder).", valueName: "mountpoint"))
    public var mountpointArgument: String?

    @Option(name: .customLong("mountpoint"), help: "The mount point (the CSI launcher's form).")
    public var mountpointOption: String?

    @Option(help: "The API key. Prefer --api-key-file: argv is scrubbed, but briefly visible. (default: ROSET_API_KEY)")
    public var apiKey: String?

    @Option(help: "A file holding the API key on its first line; must be mode 600. (default: none)")
    public var apiKeyFile: String?

    @Option(help: "The control plane's base URL. (default: ROSET_API_URL, else https://api.roset.dev)")
    public var apiUrl: String?

    @Option(help: "The mount to serve. (default: ROSET_MOUNT_ID, else the account's default mount)")
    public var mountId: String?

    @Flag(name: [.short, .long], help: "Stay in the foreground, logging to stderr. (default: off)")
    public var foreground = false

    @Flag(name: [.short, .long], help: "Debug logging and --foreground, as libfuse's -d (mount.roset's -o debug does not imply foreground). (default: off)")
    public var debug = false

    @Option(help: "error|warn|info|debug|trace: the log level, also in the background. (default: info)")
    public var logLevel: String?

    @Option(help: "Serve this folder of the mount as its root, as -o subdir=. (default: the whole mount)")
    public var subdir: String?

    @Option(help: "Metadata cache lifetime in seconds.")
    public var cacheTtl: Double = 300

    @Option(help: "Memory block cache size in MiB.")
    public var cacheSizeMb: Int = 256

    @Flag(help: "Let other users access the mount (FUSE allow_other). (default: off)")
    public var allowOther = false

    @Flag(help: "Mount read-only. (default: off)")
    public var readOnly = false

    @Option(name: .customLong("spool-dir"), help: "Write spool folder. (default: /var/lib/roset/spool for root, else ~/.local/state/roset/spool)")
    public var spoolDir: String?

    @Option(name: .customLong("staging-dir"), help: "The older name of --spool-dir. (default: as --spool-dir)")
    public var stagingDir: String?

    @Option(name: .short, help: ArgumentHelp("Extra mount options, as for mount.roset -o (repeatable). (default: none)", valueName: "options"))
    public var options: [String] = []

    // Accepted for compatibility; see `warnings`.
    @Option(help: "CSI: a pinned snapshot to mount; refused: roset-server has no snapshots, and the live tree is other data. (default: none)")
    public var ref: String?
    @Option(help: "CSI: local cache folder; becomes the write spool folder (spool_dir=) when neither --spool-dir, --staging-dir nor ROSET_STAGING_DIR is given. (default: none)")
    public var cacheDir: String?
    @Option(help: "CSI: disk cache size in GiB; ignored with a warning. (default: none)")
    public var cacheSizeGb: Double?
    @Option(help: "CSI: read-ahead size; ignored with a warning (read-ahead adapts itself). (default: none)")
    public var readAhead: String?
    @Flag(help: "Older scripts' flag: deprecated write-back flag; ignored with a warning. (default: off)")
    public var writeBackCache = false
    @Option(help: "Older scripts' flag: sync|async|sync-on-fsync; ignored with a warning (close seals to the spool, fsync waits for the upload). (default: none)")
    public var durability: String?
    @Option(help: "Older scripts' flag: signed-URL refresh margin in seconds; ignored with a warning. (default: none)")
    public var urlRefreshBuffer: Double?

    public init() {}

    /// The equivalent mount request: flags become mount options, validated by ConfigurationResolver.
    public func request(environment: [String: String]) throws -> MountRequest {
        if mountpointArgument != nil && mountpointOption != nil && mountpointArgument != mountpointOption {
            throw MountHelperError("give the mount point once: either as an argument or with --mountpoint")
        }
        guard let mountpoint = mountpointArgument ?? mountpointOption else {
            throw MountHelperError("a mount point is required (roset-fuse MOUNTPOINT ... or --mountpoint DIR)")
        }
        var opts: [MountOption] = []
        if let apiKeyFile { opts.append(MountOption("apikey_file", apiKeyFile)) }
        if let apiUrl { opts.append(MountOption("api_url", apiUrl)) }
        if let mountId { opts.append(MountOption("mount_id", mountId)) }
        if foreground { opts.append(MountOption("foreground")) }
        if debug { opts += [MountOption("debug"), MountOption("foreground")] }
        if let logLevel { opts.append(MountOption("log_level", logLevel)) }
        if let subdir { opts.append(MountOption("subdir", subdir)) }
        opts.append(MountOption("cache_ttl", String(cacheTtl)))
        opts.append(MountOption("cache_size_mb", String(cacheSizeMb)))
        if allowOther { opts.append(MountOption("allow_other")) }
        if readOnly { opts.append(MountOption("ro")) }
        var warnings: [String] = []
        let spool = spoolDir ?? stagingDir ?? environment["ROSET_STAGING_DIR"] ?? cacheDir
        if let spool { opts.append(MountOption("spool_dir", spool)) }
        for list in options { opts += try MountOptionList.parse(list) }
        if let ref {
            throw MountHelperError("--ref \(ref): mounting a pinned snapshot is not supported (the control plane serves only the live tree, "
                                   + "and mounting it instead would give the job other data); remove --ref to mount the live tree")
        }
        if cacheSizeGb != nil { warnings.append("--cache-size-gb is ignored; the memory cache is --cache-size-mb") }
        if readAhead != nil { warnings.append("--read-ahead is ignored; read-ahead grows with sequential reads") }
        if writeBackCache { warnings.append("--write-back-cache is ignored; every write goes through the spool") }
        if durability != nil {
            warnings.append("--durability is ignored; close seals to the spool, fsync waits for the upload (close_wait makes close wait too)")
        }
        if urlRefreshBuffer != nil { warnings.append("--url-refresh-buffer is ignored; signed URLs are refreshed on expiry") }
        var request = MountRequest(spec: nil, mountpoint: mountpoint, options: opts)
        request.apiKeyArgument = apiKey
        request.warnings = warnings
        return request
    }
}
