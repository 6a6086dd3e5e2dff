// Turns a MountRequest into a MountConfiguration: classifies every option (VFS, FUSE, roset,
// passed along by mount(8)/systemd), validates values with messages that name the option, and
// applies the precedence options > environment > defaults. Unknown options are refused unless
// mount(8)'s sloppy flag (-s) was given; a literal key in the options is always refused.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum ConfigurationResolver {
    /// Options mount(8), fstab and systemd pass along or that only matter to mount(8) itself.
    static let passedAlong: Set<String> = ["_netdev", "nofail", "user", "users", "nouser", "auto", "noauto",
                                            "defaults", "owner", "group", "comment"]
    static let keyOptionNames: Set<String> = ["apikey", "api_key", "apiKey", "api-key", "key"]

    public static func resolve(_ request: MountRequest, environment: [String: String],
                               identity: ProcessIdentity = .current) throws -> MountConfiguration {
        var settings = OptionSettings()
        var warnings = request.warnings
        for option in request.options {
            try settings.apply(option, sloppy: request.sloppy, warnings: &warnings)
        }

        guard !request.mountpoint.isEmpty else { throw MountHelperError("no mount point given") }
        let mountpoint = URL(fileURLWithPath: request.mountpoint).standardizedFileURL.path

        // mount id: mount_id= > SPEC > ROSET_MOUNT_ID > the account's default mount.
        // SPEC may name a folder too, as s3fs's bucket:/path: `ID:/datasets/train` is
        // `ID` with subdir=datasets/train (subdir= wins), and /proc/mounts shows it as given.
        var mountId = settings.mountId
        var specSubdir: String?
        if let spec = request.spec {
            var id = spec.hasPrefix("roset:") ? String(spec.dropFirst("roset:".count)) : spec
            if let colon = id.range(of: ":/") {
                specSubdir = try OptionSettings.subdirPath(String(id[colon.upperBound...]))
                id = String(id[..<colon.lowerBound])
            }
            if mountId == nil, !id.isEmpty && id != "default" && id != "roset" { mountId = id }
        }
        if mountId == nil, let env = environment["ROSET_MOUNT_ID"], !env.isEmpty { mountId = env }

        // api_url: api_url= > ROSET_API_URL > https://api.roset.dev.
        let apiURL: URL
        if let u = settings.apiURL {
            apiURL = u
        } else if let env = environment["ROSET_API_URL"], !env.isEmpty {
            apiURL = try parseAPIURL(env, name: "ROSET_API_URL")
        } else {
            apiURL = MountConfiguration.defaultAPIURL
        }

        // key: apikey_file= > --api-key (roset-fuse form) > ROSET_API_KEY.
        let key: APIKey
        if let file = settings.apiKeyFile {
            key = try APIKeyFile.read(file, mountingUID: identity.uid)
        } else if let k = request.apiKeyArgument, !k.isEmpty {
            key = APIKey(k, source: "--api-key")
        } else if let env = environment["ROSET_API_KEY"]?.trimmingCharacters(in: .whitespacesAndNewlines), !env.isEmpty {
            key = APIKey(env, source: "ROSET_API_KEY")
        } else {
            throw MountHelperError(
                "no API key: give -o apikey_file=FILE (a file only you can read, chmod 600) or set ROSET_API_KEY")
        }

        let spool = settings.spoolDirectory ?? defaultSpoolDirectory(identity: identity, environment: environment)
        var config = MountConfiguration(mountpoint: mountpoint, mountId: mountId, apiURL: apiURL, apiKey: key,
                                        uid: settings.uid ?? identity.uid, gid: settings.gid ?? identity.gid,
                                        spoolDirectory: spool)
        if let v = settings.cacheTTL { config.cacheTTL = v }
        if let v = settings.cacheSizeMB { config.cacheSizeMB = v }
        if let v = settings.negativeTTL { config.negativeTTL = v }
        config.closeToOpen = settings.closeToOpen
        config.metrics = settings.metrics
        config.readOnly = settings.readOnly
        if let v = settings.umask { config.umask = v }
        config.fileMode = settings.fileMode ?? (0o666 & ~config.umask)
        config.dirMode = settings.dirMode ?? (0o777 & ~config.umask)
        if let v = settings.spoolMaxMB { config.spoolMaxMB = v }
        if let v = settings.dataCacheDirectory { config.dataCacheDirectory = v }
        config.dataCacheMaxMB = settings.dataCacheMaxMB
        config.dataCacheMinFreeMB = settings.dataCacheMinFreeMB
        if let v = settings.uploadConcurrency { config.uploadConcurrency = v }
        if let v = settings.partSizeMB { config.partSizeMB = v }
        config.closeWait = settings.closeWait
        config.directIO = settings.directIO
        config.spliceRead = settings.spliceRead
        if let v = settings.uploadDelayMs { config.uploadDelayMs = v }
        if let v = settings.shutdownGrace { config.shutdownGrace = v }
        if let v = settings.requestTimeout { config.requestTimeout = v }
        if let v = settings.retries { config.maxAttempts = v + 1 }
        config.allowOther = settings.allowOther
        config.allowRoot = settings.allowRoot
        // A mount other users can reach gets the kernel's permission checks unless the admin
        // turns them off by name: the daemon's own checks then stand alone (mount.roset(8)).
        let reachableByOthers = settings.allowOther || settings.allowRoot
        config.defaultPermissions = settings.defaultPermissions ?? reachableByOthers
        if reachableByOthers && settings.defaultPermissions == false {
            warnings.append("no_default_permissions: the kernel does not check permissions on this "
                            + "\(settings.allowOther ? "allow_other" : "allow_root") mount; mount.roset checks them itself")
        }
        config.vfsFlags = settings.vfsFlags
        config.maxRead = settings.maxRead
        config.blockSize = settings.blockSize
        if let v = settings.maxThreads { config.maxThreads = v }
        if let v = settings.readAheadKB { config.readAheadKB = v }
        // `debug` is log_level=debug and no longer implies foreground: an fstab line or a
        // systemd unit can log at debug level to syslog or log_file= (mount.roset(8), debug).
        config.debug = settings.debug
        config.foreground = settings.foreground
        config.logFile = settings.logFile
        config.verbose = request.verbose
        var level = settings.logLevel ?? (settings.debug ? .debug : .info)
        if request.verbose { level = level.raised }
        config.logLevel = level
        config.subdir = settings.subdir ?? specSubdir
        config.fake = request.fake
        config.mountNamespace = request.mountNamespace
        if let spec = request.spec, !spec.isEmpty { config.source = spec }
        if config.allowOther && config.allowRoot {
            throw MountHelperError("allow_other and allow_root cannot be used together")
        }
        config.warnings = warnings
        return config
    }

    static func defaultSpoolDirectory(identity: ProcessIdentity, environment: [String: String]) -> String {
        if identity.uid == 0 { return "/var/lib/roset/spool" }
        if let state = environment["XDG_STATE_HOME"], state.hasPrefix("/") { return state + "/roset/spool" }
        return (identity.home ?? "/tmp") + "/.local/state/roset/spool"
    }

    static func parseAPIURL(_ text: String, name: String) throws -> URL {
        guard let url = URL(string: text), let scheme = url.scheme?.lowercased(),
              scheme == "http" || scheme == "https", let host = url.host, !host.isEmpty else {
            throw MountHelperError("bad value for \(name): \"\(text)\" is not an http:// or https:// URL")
        }
        return url
    }
}

/// The options' values while they are being read; later options override earlier ones.
struct OptionSettings {
    var readOnly = false
    var vfsFlags: Set<MountConfiguration.VFSFlag> = []
    var allowOther = false, allowRoot = false
    /// nil: not given (on when allow_other or allow_root is); false: no_default_permissions.
    var defaultPermissions: Bool?
    var maxRead: UInt32?, blockSize: UInt32?
    var apiKeyFile: String?, apiURL: URL?, mountId: String?
    var cacheTTL: Double?, cacheSizeMB: Int?
    var negativeTTL: Double?, closeToOpen = true
    var metrics: MountConfiguration.MetricsAddress?
    var spoolDirectory: String?, spoolMaxMB: Int?
    var dataCacheDirectory: String?, dataCacheMaxMB: Int?, dataCacheMinFreeMB: Int?
    var uid: UInt32?, gid: UInt32?, umask: UInt32?, fileMode: UInt32?, dirMode: UInt32?
    var uploadConcurrency: Int?, partSizeMB: Int?, closeWait = false, uploadDelayMs: Int?
    var directIO = false
    var spliceRead = true
    var foreground = false, debug = false, logFile: String?, shutdownGrace: Double?
    var logLevel: MountConfiguration.LogLevel?, subdir: String?
    var maxThreads: Int?, readAheadKB: Int?
    var requestTimeout: Double?, retries: Int?

    static let opposites: [MountConfiguration.VFSFlag: MountConfiguration.VFSFlag] = [
        .nosuid: .suid, .suid: .nosuid, .nodev: .dev, .dev: .nodev, .noexec: .exec, .exec: .noexec,
        .noatime: .atime, .atime: .noatime, .relatime: .noatime, .sync: .async, .async: .sync,
    ]

    mutating func apply(_ option: MountOption, sloppy: Bool, warnings: inout [String]) throws {
        let name = option.name
        if let flag = MountConfiguration.VFSFlag(rawValue: name) {
            try noValue(option)
            vfsFlags.insert(flag)
            if let opposite = Self.opposites[flag] { vfsFlags.remove(opposite) }
            if flag == .noatime { vfsFlags.remove(.relatime) }
            return
        }
        switch name {
        case "ro": try noValue(option); readOnly = true
        case "rw": try noValue(option); readOnly = false
        case "allow_other": allowOther = try flag(option)
        case "allow_root": allowRoot = try flag(option)
        case "default_permissions": defaultPermissions = try flag(option)
        case "no_default_permissions": try noValue(option); defaultPermissions = false
        case "max_read": maxRead = UInt32(try integer(option, minimum: 4096, maximum: Int(UInt32.max)))
        case "blksize": blockSize = UInt32(try integer(option, minimum: 512, maximum: 1 << 30))
        case "apikey_file": apiKeyFile = try text(option)
        case "api_url": apiURL = try ConfigurationResolver.parseAPIURL(try text(option), name: "api_url")
        case "mount_id": mountId = try text(option)
        case "cache_ttl": cacheTTL = try seconds(option)
        case "negative_ttl": negativeTTL = try seconds(option)
        case "metrics": metrics = try MountConfiguration.MetricsAddress.parse(try text(option))
        case "close_to_open": closeToOpen = try flag(option)
        case "no_close_to_open": try noValue(option); closeToOpen = false
        case "cache_size_mb": cacheSizeMB = try integer(option, minimum: 0)
        case "spool_dir": spoolDirectory = try text(option)
        case "spool_max_mb": spoolMaxMB = try integer(option, minimum: 0)
        case "data_cache_dir": dataCacheDirectory = try text(option)
        case "data_cache_max_mb": dataCacheMaxMB = try integer(option, minimum: 0)
        case "data_cache_min_free_mb": dataCacheMinFreeMB = try integer(option, minimum: 0)
        case "uid": uid = try owner(option, lookup: { name in getpwnam(name).map { $0.pointee.pw_uid } })
        case "gid": gid = try owner(option, lookup: { name in getgrnam(name).map { $0.pointee.gr_gid } })
        case "umask": umask = try mode(option)
        case "file_mode": fileMode = try mode(option)
        case "dir_mode": dirMode = try mode(option)
        case "upload_concurrency": uploadConcurrency = try integer(option, minimum: 1, maximum: 256)
        case "part_size_mb": partSizeMB = try integer(option, minimum: 1, maximum: 5120)
        case "close_wait": closeWait = try flag(option)
        case "direct_io": directIO = try flag(option)
        case "splice_read": spliceRead = try flag(option)
        case "upload_delay_ms": uploadDelayMs = try integer(option, minimum: 0, maximum: 60_000)
        case "foreground": foreground = try flag(option)
        case "debug": debug = try flag(option)
        case "log_file": logFile = try text(option)
        case "log_level":
            let word = try text(option)
            guard let level = MountConfiguration.LogLevel(rawValue: word) else {
                throw MountHelperError("bad value for log_level: \"\(word)\" (use error, warn, info, debug or trace)")
            }
            logLevel = level
        case "subdir": subdir = try Self.subdirPath(try text(option))
        case "shutdown_grace": shutdownGrace = try seconds(option)
        case "max_threads": maxThreads = try integer(option, minimum: 1, maximum: 1024)
        case "read_ahead_kb": readAheadKB = try integer(option, minimum: 0, maximum: 1 << 20)
        case "request_timeout":
            let s = try seconds(option)
            guard s > 0 else { throw MountHelperError("bad value for request_timeout: 0 would fail every call; give seconds > 0") }
            requestTimeout = s
        case "retries": retries = try integer(option, minimum: 0, maximum: 100)
        default:
            if ConfigurationResolver.keyOptionNames.contains(name) {
                throw MountHelperError(
                    "the API key must not be given as a mount option (\(name)=…): options are visible in ps and "
                        + "in mount's logs; put the key in a file only you can read (chmod 600 FILE) and use apikey_file=FILE")
            }
            if ConfigurationResolver.passedAlong.contains(name) || name.hasPrefix("x-") || name.hasPrefix("X-") {
                return   // handled by mount(8)/systemd; nothing to do here
            }
            if sloppy {
                warnings.append("ignoring unknown mount option '\(option)'")
            } else {
                throw MountHelperError("unknown mount option '\(option)' (use -s to ignore unknown options)")
            }
        }
    }

    /// subdir=PATH as "a/b": leading and trailing "/" dropped, "." and empty parts skipped;
    /// ".." is refused (the mount's root must stay inside the mount), "/" alone is the whole mount.
    static func subdirPath(_ raw: String) throws -> String? {
        let parts = raw.split(separator: "/").filter { $0 != "." }
        if parts.contains("..") {
            throw MountHelperError("bad value for subdir: \"\(raw)\" contains \"..\"; give a folder path inside the mount, e.g. subdir=datasets/train")
        }
        return parts.isEmpty ? nil : parts.joined(separator: "/")
    }

    // MARK: - Value parsers; every message names the option.

    private func noValue(_ o: MountOption) throws {
        if o.value != nil { throw MountHelperError("mount option \(o.name) takes no value (got \(o))") }
    }

    private func flag(_ o: MountOption) throws -> Bool {
        guard let v = o.value else { return true }
        switch v.lowercased() {
        case "1", "yes", "true", "on": return true
        case "0", "no", "false", "off": return false
        default: throw MountHelperError("bad value for \(o.name): \"\(v)\" is not yes/no")
        }
    }

    private func text(_ o: MountOption) throws -> String {
        guard let v = o.value, !v.isEmpty else { throw MountHelperError("mount option \(o.name)= needs a value") }
        return v
    }

    private func integer(_ o: MountOption, minimum: Int, maximum: Int = Int.max) throws -> Int {
        let v = try text(o)
        guard let n = Int(v) else {
            throw MountHelperError("bad value for \(o.name): \"\(v)\" is not a whole number")
        }
        if n < minimum {
            throw MountHelperError("bad value for \(o.name): \(n) is " + (n < 0 ? "negative" : "below the minimum \(minimum)"))
        }
        if n > maximum { throw MountHelperError("bad value for \(o.name): \(n) is above the maximum \(maximum)") }
        return n
    }

    private func seconds(_ o: MountOption) throws -> Double {
        let v = try text(o)
        guard let s = Double(v), s.isFinite else {
            throw MountHelperError("bad value for \(o.name): \"\(v)\" is not a number of seconds")
        }
        guard s >= 0 else { throw MountHelperError("bad value for \(o.name): \(v) is negative") }
        return s
    }

    private func mode(_ o: MountOption) throws -> UInt32 {
        let v = try text(o)
        guard let m = UInt32(v, radix: 8), m <= 0o7777 else {
            throw MountHelperError("bad value for \(o.name): \"\(v)\" is not an octal mode (e.g. 0644)")
        }
        return m
    }

    /// mount(8) turns user and group names into numbers before calling helpers; names are
    /// accepted too for direct calls.
    private func owner(_ o: MountOption, lookup: (String) -> UInt32?) throws -> UInt32 {
        let v = try text(o)
        if let n = UInt32(v) { return n }
        if v.first != "-", let id = lookup(v) { return id }
        throw MountHelperError("bad value for \(o.name): \"\(v)\" is neither a number nor a known "
                                   + (o.name == "uid" ? "user" : "group"))
    }
}
