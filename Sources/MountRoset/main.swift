// mount.roset (also answering as mount.fuse.roset, roset and roset-fuse): MountHelper parses
// the command line and daemonizes, RosetFUSE serves the mount, RosetFS is the filesystem.
// Order inside the mounting process: signals are already blocked (MountProgram), the signal
// thread starts, the filesystem is built (authenticate, resolve the root, recover the spool),
// the kernel mount is made, and only then is success reported to mount(8).
import Foundation
import Logging
import MountHelper
import RosetFS
import RosetFUSE
#if canImport(Glibc)
import Glibc
#endif

// ─── The lead replaces this body at merge (RosetAPIClient + RosetFileSystem). ───────────────────
/// Builds the filesystem for `config`: must authenticate, resolve the root and recover the spool,
/// throwing an error whose description is the message mount(8) prints (wrong key, unreachable
/// api_url, ...). A MountHelperError's exitStatus is used as the exit status.
func makeFileSystem(_ config: MountConfiguration) throws -> FileSystemOperations {
    throw MountHelperError("the filesystem is not wired yet (makeFileSystem in Sources/MountRoset/main.swift)",
                           exitStatus: MountHelperError.mountFailureStatus)
}
// ────────────────────────────────────────────────────────────────────────────────────────────────

func fuseOptions(_ config: MountConfiguration) -> FUSEMountOptions {
    FUSEMountOptions(
        fsName: config.fsName, subtype: "roset", readOnly: config.readOnly, allowOther: config.allowOther,
        allowRoot: config.allowRoot, defaultPermissions: config.defaultPermissions,
        kernelFlags: Set(config.vfsFlags.compactMap { FUSEMountOptions.KernelFlag(rawValue: $0.rawValue) }),
        maxRead: config.maxRead, blockSize: config.blockSize, maxThreads: config.maxThreads)
}

func serve(_ config: MountConfiguration, _ reporter: ReadinessReporter) -> Int32 {
    let logger = Logger(label: "roset.mount")
    for warning in config.warnings { logger.warning("\(warning)") }
    // Until the session exists a signal just ends the process: nothing is mounted yet and the
    // spool holds only sealed entries.
    let signals = SignalWatcher { signal, _ in _exit(128 + signal) }
    signals.start()

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
    reporter.ready()
    let result = session.run()
    return result == 0 ? 0 : 1
}

MountProgram.run(work: serve)
