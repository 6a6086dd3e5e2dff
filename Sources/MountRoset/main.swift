// mount.roset (also answering as mount.fuse.roset, roset and roset-fuse): MountHelper parses
// the command line and daemonizes, RosetFUSE serves the mount, RosetFS is the filesystem.
// Order inside the mounting process: signals are already blocked (MountProgram), the signal
// thread starts, the mount point is checked, the filesystem is built (authenticate, resolve the root, recover the spool),
// the kernel mount is made, and only then is success reported to mount(8).
import CMalloc
import Foundation
import Logging
import MountHelper
import RosetClient
import RosetFS
import RosetFUSE
#if canImport(Glibc)
import Glibc
#endif

/// Builds the filesystem for `config`: authenticates, resolves the root and recovers the spool
/// (all inside RosetFileSystem.init), so that a wrong key or an unreachable control plane fails
/// the mount with a message instead of mounting a broken tree. Runs in the daemon, after the
/// forks: libcurl's and the uploader's threads start here, never earlier.
func makeFileSystem(_ config: MountConfiguration) throws -> FileSystemOperations {
    func client(maxAttempts: Int) -> RosetAPIClient {
        RosetAPIClient(configuration: ClientConfiguration(
            apiURL: config.apiURL.absoluteString, apiKey: config.apiKey.value, mountId: config.mountId,
            connectTimeout: config.connectTimeout, requestTimeout: config.requestTimeout, maxAttempts: maxAttempts,
            logger: Logger(label: "roset.client")))
    }
    // A wrong key or an unreachable control plane fails the mount after the client's usual few
    // attempts. Once mounted, a failed call becomes an errno in some application, so the
    // mount's own client tries harder: with 20% of answers failing (a flaky store), the default
    // 10 attempts (retries=9) leave about one call in four million failing, where 5 left one in
    // two thousand.
    do {
        _ = try client(maxAttempts: min(5, config.maxAttempts)).resolveRoot()
    } catch let error as RosetError {
        throw MountHelperError(startupMessage(for: error, config: config), exitStatus: MountHelperError.mountFailureStatus)
    }
    let client = client(maxAttempts: config.maxAttempts)
    var fs = FileSystemConfiguration(apiURL: client.configuration.apiURL, mountId: config.mountId ?? "default",
                                     spoolDirectory: config.spoolDirectory)
    fs.cacheTTL = config.cacheTTL
    fs.cacheSizeMB = config.cacheSizeMB
    fs.readOnly = config.readOnly
    fs.uid = config.uid
    fs.gid = config.gid
    fs.umask = config.umask
    fs.fileMode = config.fileMode
    fs.dirMode = config.dirMode
    fs.spoolMaxMB = config.spoolMaxMB
    fs.spoolMinFreeMB = config.spoolMinFreeMB
    fs.uploadConcurrency = config.uploadConcurrency
    fs.partSizeMB = config.partSizeMB
    fs.closeWait = config.closeWait
    fs.directIO = config.directIO
    fs.spliceRead = config.spliceRead
    fs.kernelReadAheadKB = config.readAheadKB > 0 ? config.readAheadKB : 128
    fs.uploadDelay = Double(config.uploadDelayMs) / 1000
    fs.shutdownGrace = config.shutdownGrace
    do {
        return try RosetFileSystem(configuration: fs, controlPlane: client, store: client,
                                   logger: Logger(label: "roset.fs"))
    } catch let error as RosetError {
        throw MountHelperError(startupMessage(for: error, config: config), exitStatus: MountHelperError.mountFailureStatus)
    }
}

/// What mount(8) prints when the control plane refuses the mount.
func startupMessage(for error: RosetError, config: MountConfiguration) -> String {
    let url = config.apiURL.absoluteString
    switch error.kind {
    case .unauthorized:
        return "the control plane at \(url) refused the API key (HTTP 401): check the key file or ROSET_API_KEY"
    case .forbidden:
        return "the API key is not allowed to use mount \(config.mountId ?? "default") at \(url) (HTTP 403)"
    case .notFound:
        return "mount \(config.mountId ?? "default") does not exist at \(url) (\(error.code ?? "HTTP 404"))"
    case .network:
        return "cannot reach the control plane at \(url): \(error.message)"
    default:
        return "the control plane at \(url) failed while mounting: \(error)"
    }
}

/// What mount(8) prints when the mount point is unusable. A dead mount there is most often this
/// program's own daemon after a crash (kill -9, OOM): its unsent files wait in the spool, and the
/// admin about to unmount and mount again is told where to see them. The kernel answers a stat of
/// a dead mount's root from its attribute cache (cache_ttl), so a dead roset mount can look alive
/// (`alreadyMounted`); the mount registry names the spool of the daemon that mounted it, and the
/// spool's lock says whether that daemon still runs.
func mountpointMessage(for error: Error) -> String {
    guard let mountError = error as? FUSEMountError else { return "\(error)" }
    switch mountError {
    case .deadMount(let dir) where isRosetMount(dir),
         .alreadyMounted(let dir) where isRosetMount(dir) && registeredDaemonIsGone(dir):
        return "\(FUSEMountError.deadMount(dir)); `mount.roset status \(dir)` shows what its spool holds for the next mount"
    default:
        return "\(mountError)"
    }
}

private func isRosetMount(_ dir: String) -> Bool {
    FUSESession.mountType(at: MountRegistry.canonical(dir)) == "fuse.roset"
}

/// Nobody holds the lock of the spool registered for `dir`: a killed daemon's descriptors close
/// when it dies, while its pid stays taken until init reaps the zombie.
private func registeredDaemonIsGone(_ dir: String) -> Bool {
    guard let registered = MountRegistry.lookup(mountpoint: dir) else { return false }
    return SpoolReport.lockHolder(folder: registered.spoolFolder) == nil
}

func fuseOptions(_ config: MountConfiguration) -> FUSEMountOptions {
    FUSEMountOptions(
        fsName: config.fsName, subtype: "roset", readOnly: config.readOnly, allowOther: config.allowOther,
        allowRoot: config.allowRoot, defaultPermissions: config.defaultPermissions,
        kernelFlags: Set(config.vfsFlags.compactMap { FUSEMountOptions.KernelFlag(rawValue: $0.rawValue) }),
        maxRead: config.maxRead, blockSize: config.blockSize, maxThreads: config.maxThreads,
        readAheadKB: config.readAheadKB)
}

/// RLIMIT_NOFILE, whose Glibc type (`__rlimit_resource`) differs between C library versions.
let RLIMIT_NOFILE_ = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)

func serve(_ config: MountConfiguration, _ reporter: ReadinessReporter) -> Int32 {
    // glibc keeps freed memory in per-thread arenas (up to 8 per core). Before any thread of ours
    // exists, so every thread gets both settings:
    // - four arenas: with libfuse's worker threads each allocating ~1 MiB read replies, the arenas
    //   alone held ~17 MiB beyond cache_size_mb while reading one large file (measured: VmHWM
    //   81 -> 69 MiB, cache_size_mb=16);
    // - a fixed 128 KiB mmap threshold: glibc raises it after each large free, so 1 MiB buffers
    //   (reads served by copy, spool reads of pending files) came from the arenas and stayed
    //   there; 4 parallel readers held 26-30 MiB more (VmHWM 317-321 -> 291 MiB, cache 256 MiB).
    _ = mallopt(M_ARENA_MAX, 4)
    _ = mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    // Sequential readers hold their read-ahead in pipes, two descriptors per MiB: the soft limit
    // of open files (often 1,024) goes up to the hard one.
    var files = rlimit()
    if getrlimit(RLIMIT_NOFILE_, &files) == 0, files.rlim_cur < files.rlim_max {
        files.rlim_cur = files.rlim_max
        _ = setrlimit(RLIMIT_NOFILE_, &files)
    }
    let logger = Logger(label: "roset.mount")
    for warning in config.warnings { logger.warning("\(warning)") }
    // Until the session exists a signal just ends the process: nothing is mounted yet and the
    // spool holds only sealed entries.
    let signals = SignalWatcher { signal, _ in _exit(128 + signal) }
    signals.start()

    // The mount point first: "already mounted" must not turn into "the spool is in use" (the
    // mount there holds the same spool), and a typo in DIR must not cost a round trip.
    do {
        _ = try FUSESession.checkMountpoint(config.mountpoint)
    } catch {
        let message = mountpointMessage(for: error)
        logger.error("\(message)")
        reporter.failed(message, exitStatus: MountHelperError.mountFailureStatus)
        return MountHelperError.mountFailureStatus
    }
    let fs: FileSystemOperations
    do {
        fs = try makeFileSystem(config)
    } catch {
        let status = (error as? MountHelperError)?.exitStatus ?? MountHelperError.mountFailureStatus
        logger.error("\(error)")
        reporter.failed("\(error)", exitStatus: status)
        return status
    }
    let session = FUSESession(fileSystem: fs, mountpoint: config.mountpoint, options: fuseOptions(config),
                              shutdownGrace: config.shutdownGrace, logger: Logger(label: "roset.fuse"))
    signals.setHandler { signal, count in
        if count == 1 {
            logger.notice("signal \(signal): stopping (up to \(config.shutdownGrace) s for uploads); send it again to exit at once")
            session.stop(grace: config.shutdownGrace)
        } else {
            logger.warning("signal \(signal) again: exiting now; sealed files stay in the spool \(config.spoolDirectory)")
            session.exitImmediately(status: 128 + signal)
        }
    }
    do {
        try session.mount()
    } catch {
        logger.error("\(error)")
        fs.shutdown(grace: 0)
        reporter.failed("\(error)", exitStatus: MountHelperError.mountFailureStatus)
        return MountHelperError.mountFailureStatus
    }
    logger.notice("mounted \(config.fsName) on \(config.mountpoint)")
    // The registry lets `mount.roset status DIR` find this spool, also after a crash.
    let rosetFS = fs as? RosetFileSystem
    let mountpoint = MountRegistry.canonical(config.mountpoint)
    if let rosetFS, !config.readOnly {
        MountRegistry.register(MountRegistration(mountpoint: mountpoint, spoolFolder: rosetFS.spoolFolder, pid: getpid(),
                                                 mountId: config.mountId ?? "default", startedAt: Date().timeIntervalSince1970))
        rosetFS.startStatusPublisher()
    }
    reporter.ready()
    let result = session.run()
    // Kept while the spool still holds something: status then shows what waits for the next mount.
    if let rosetFS, !config.readOnly, SpoolReport.read(folder: rosetFS.spoolFolder).pending.isEmpty {
        MountRegistry.unregister(mountpoint: mountpoint, pid: getpid())
    }
    return result == 0 ? 0 : 1
}

// Asked for by bug reports and packaging scripts; answered before any option parsing, so it
// works under every name the binary has.
if CommandLine.arguments.count == 2, ["--version", "-V"].contains(CommandLine.arguments[1]) {
    print("mount.roset \(RosetClientVersion.current) (libfuse \(FUSESession.libfuseVersion))")
    exit(0)
}
if let status = StatusCommandLine.parse(Array(CommandLine.arguments.dropFirst())) {
    exit(StatusCommand.run(status))
}
MountProgram.run(work: serve)
