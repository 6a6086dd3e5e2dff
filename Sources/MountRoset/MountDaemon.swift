// The mounting process's work, once MountHelper has parsed the command line and daemonized.
// Order: signals are already blocked (MountProgram), the process is tuned, the signal thread
// starts, the mount point is checked, the filesystem is built (authenticate, resolve the root,
// recover the spool), the kernel mount is made, and only then is success reported to mount(8).
import Foundation
import Logging
import MountHelper
import RosetFS
import RosetFUSE
import RosetMetrics
#if canImport(Glibc)
import Glibc
#endif

enum MountDaemon {
    static func serve(_ config: MountConfiguration, _ reporter: ReadinessReporter) -> Int32 {
        ProcessTuning.apply()
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
            let message = MountFailureMessage.mountpoint(error)
            logger.error("\(message)")
            reporter.failed(message, exitStatus: MountHelperError.mountFailureStatus)
            return MountHelperError.mountFailureStatus
        }
        // metrics=: bound before anything records a metric (swift-metrics is bootstrapped once, and
        // objects made before stay no-ops), served from a thread started here, after the forks.
        var measured = false
        if let address = config.metrics {
            let export = PrometheusExport()
            do {
                let endpoint = try MetricsEndpoint(host: address.host, port: address.port, render: { export.render() })
                export.bootstrap()
                endpoint.start()
                measured = true
                logger.notice("metrics in Prometheus' text format on http://\(address)/metrics")
            } catch {
                logger.error("\(error)")
                reporter.failed("\(error)", exitStatus: MountHelperError.mountFailureStatus)
                return MountHelperError.mountFailureStatus
            }
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
        let session = FUSESession(fileSystem: measured ? MeasuredFileSystem(fs) : fs, mountpoint: config.mountpoint, options: FUSEMountOptions(config),
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
                                                     mountId: config.mountId ?? "default", startedAt: Date().timeIntervalSince1970,
                                                     subdir: config.subdir))
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
}
