// One FUSE mount served by one FileSystemOperations: mount, run the multi-threaded loop, stop.
//
// Lifecycle: `mount()` once, then `run()` on one thread (it blocks until the loop ends and then
// unmounts and tears everything down), and `stop(grace:)` from any other thread. Invariants:
//  - fs.shutdown(grace) runs exactly once, whether the stop comes from a signal (`stop`), from
//    the kernel (umount/fusermount3 -u ends the connection; libfuse then calls destroy), or both;
//  - `stop` really ends `run`: fuse_session_exit alone is only noticed when the next request comes,
//    so the loop thread is also interrupted with `wakeupSignal` until it returns;
//  - the mount is gone when `run` returns (lazily detached if something still holds it).
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CFuse
import Logging
import RosetFS

public final class FUSESession: @unchecked Sendable {
    /// Sent to the loop thread to interrupt its wait; its handler does nothing. `run()` unblocks
    /// it in its own thread.
    public static let wakeupSignal: Int32 = SIGUSR2
    /// The libfuse this binary runs against, as the library reports it (for --version).
    public static var libfuseVersion: String { String(cString: fuse_pkgversion()) }

    public let mountpoint: String
    public let options: FUSEMountOptions
    private let dispatcher: RequestDispatcher
    private let dispatcherPointer: Unmanaged<RequestDispatcher>
    private let logger: Logger

    private let stateLock = NSLock()
    private var session: OpaquePointer?
    private var loopThread: pthread_t?
    private var loopFinished = false
    private var mounted = false
    private var stopRequested = false
    private var notifier: FUSEKernelNotifier?

    /// - Parameters:
    ///   - shutdownGrace: seconds given to fs.shutdown when the kernel ends the mount (umount).
    public init(fileSystem: FileSystemOperations, mountpoint: String, options: FUSEMountOptions,
                shutdownGrace: Double = 30, logger: Logger = Logger(label: "roset.fuse")) {
        self.mountpoint = mountpoint
        self.options = options
        self.logger = logger
        dispatcher = RequestDispatcher(fs: fileSystem, blockSizeOverride: options.blockSize, maxRead: options.effectiveMaxRead,
                                       shutdownGrace: shutdownGrace, logger: logger)
        dispatcherPointer = Unmanaged.passRetained(dispatcher)
        FUSELog.install(logger: logger)
    }

    deinit {
        // Mounted but never run: take the mount away too, not just the connection.
        if let session {
            notifier?.detach()
            fuse_session_unmount(session)
            fuse_session_destroy(session)
        }
        dispatcherPointer.release()
    }

    /// Checks the mount point, creates the session and mounts it. Throws FUSEMountError.
    public func mount() throws {
        try mount(mountinfo: MountTable.currentText)
    }

    /// `mountinfo` is where the mount point check reads the mount table (tests stack a real
    /// mount on a folder their fixture calls an automount point).
    func mount(mountinfo: () -> String) throws {
        let path = try Self.checkedMountpoint(mountpoint, mountinfo: mountinfo)
        var argvStrings = ["mount.roset", "-o", options.fuseOptionString]
        FUSELog.clearLastError()
        var ops = LowLevelOperations.makeTable()
        let created: OpaquePointer? = argvStrings.withCStringArray { argv in
            var args = fuse_args(argc: Int32(argvStrings.count), argv: argv, allocated: 0)
            defer { fuse_opt_free_args(&args) }
            return fuse_session_new(&args, &ops, MemoryLayout<fuse_lowlevel_ops>.size,
                                    dispatcherPointer.toOpaque())
        }
        argvStrings.removeAll()
        guard let created else { throw FUSEMountError.optionsRefused(FUSELog.lastError) }
        if fuse_session_mount(created, path) != 0 {
            let detail = FUSELog.lastError
            fuse_session_destroy(created)
            if detail.localizedCaseInsensitiveContains("permission") || detail.contains("EPERM") {
                throw FUSEMountError.permissionDenied(path, detail: detail)
            }
            throw FUSEMountError.mountFailed(path, detail: detail)
        }
        let notifier = FUSEKernelNotifier(session: created, logger: logger)
        stateLock.withLock { session = created; mounted = true; self.notifier = notifier }
        dispatcher.fs.attachKernelNotifier(notifier)
        logger.info("mounted on \(path) (\(options.fuseOptionString))")
        if let kilobytes = options.readAheadKB, kilobytes > 0 {
            setKernelReadAheadOnceInitialized(kilobytes: kilobytes, mountpoint: path)
        }
    }

    /// Serves requests until the mount ends (umount, `stop`, or a fatal error), then stops the
    /// filesystem, unmounts and releases the session. Returns libfuse's loop result (0 = clean).
    @discardableResult
    public func run() -> Int32 {
        _ = roset_install_interrupt_handler(Self.wakeupSignal)
        // The calling thread may have inherited a mask that blocks it (Dispatch threads block
        // every signal); the knock must get through to this thread.
        var wakeup = sigset_t()
        sigemptyset(&wakeup)
        sigaddset(&wakeup, Self.wakeupSignal)
        pthread_sigmask(SIG_UNBLOCK, &wakeup, nil)
        guard let (se, stopped) = stateLock.withLock({ () -> (OpaquePointer, Bool)? in
            loopThread = pthread_self()
            return session.map { ($0, stopRequested) }
        }) else { return -EINVAL }
        let threads = UInt32(max(options.maxThreads, 1))
        let idle = UInt32(min(max(options.maxIdleThreads, 1), Int(threads)))
        // A stop that came before the loop started is not lost.
        let result = stopped ? 0 : roset_session_loop_mt(se, idle, threads)
        stateLock.withLock { loopFinished = true }
        logger.info("FUSE loop ended (\(result))")
        // umount: the kernel ended the connection; the filesystem still gets its grace time.
        dispatcher.shutdownFileSystemOnce()
        stateLock.withLock { notifier }?.detach()
        fuse_session_unmount(se)
        stateLock.withLock {
            mounted = false
            session = nil
        }
        // destroy calls the `destroy` op (a no-op now: shutdown already ran).
        fuse_session_destroy(se)
        logger.info("unmounted \(mountpoint)")
        return result
    }

    /// The INIT reply would clamp the window back, so it is set once the mount has answered a
    /// request: the kernel holds every request until INIT is done, and this stat of the root is
    /// answered once `run` serves the mount (or fails when it is unmounted unserved). On a thread
    /// of its own, so neither `mount` nor `run` waits for it.
    private func setKernelReadAheadOnceInitialized(kilobytes: Int, mountpoint: String) {
        let logger = self.logger
        let thread = Thread {
            var st = Glibc.stat()
            _ = stat(mountpoint, &st)
            KernelReadAhead.apply(kilobytes: kilobytes, mountpoint: mountpoint, logger: logger)
        }
        thread.name = "roset-readahead"
        thread.start()
    }

    /// Graceful stop from another thread: the filesystem stops taking writes and gets up to
    /// `grace` seconds for pending uploads, then the loop is ended and `run` unmounts.
    /// Blocks until `run` has left the loop (or returns at once if it never started).
    public func stop(grace: Double) {
        dispatcher.shutdownFileSystemOnce(grace: grace)
        requestExit()
    }

    /// Ends the loop without the filesystem's grace time (it still runs inside `run` if not yet).
    public func requestExit() {
        guard let (se, thread) = stateLock.withLock({ () -> (OpaquePointer, pthread_t?)? in
            stopRequested = true
            guard let session, !loopFinished else { return nil }
            return (session, loopThread)
        }) else { return }
        fuse_session_exit(se)
        // The loop thread may be between its exit check and sem_wait: keep knocking until it left.
        while !stateLock.withLock({ loopFinished }) {
            if let thread { pthread_kill(thread, Self.wakeupSignal) }
            usleep(20_000)
            if stateLock.withLock({ loopThread == nil }) { break }
        }
    }

    /// Second signal: leave now. Detaches the mount (root) so the folder is not left as
    /// "Transport endpoint is not connected", then exits. Sealed spool entries stay on disk.
    public func exitImmediately(status: Int32) -> Never {
        if geteuid() == 0 { _ = umount2(mountpoint, Int32(MNT_DETACH)) }
        _exit(status)
    }

    /// Whether the session is mounted right now.
    public var isMounted: Bool { stateLock.withLock { mounted } }

    // MARK: - Mount point checks

    /// The fstype (`fuse.roset`, `ext4`, ...) of the topmost mount on `path`, from
    /// /proc/self/mountinfo; nil when nothing is mounted there. Never touches `path` itself.
    public static func mountType(at path: String) -> String? {
        MountTable.entries().last { $0.mountPoint == path }?.fsType
    }

    /// The mount point checks `mount()` makes, for callers that want them before doing anything
    /// costly (authenticating, taking the spool's lock) and for `mount -f`: a missing folder, a
    /// file, or a folder that is already a mount fail here with their own message; an automount
    /// point (topmost mount `autofs`) passes, the mount stacks on it. Returns the canonical path.
    public static func checkMountpoint(_ raw: String) throws -> String {
        try checkedMountpoint(raw, mountinfo: MountTable.currentText)
    }

    static func checkedMountpoint(_ raw: String, mountinfo: () -> String) throws -> String {
        var st = Glibc.stat()
        if stat(raw, &st) != 0 {
            switch errno {
            case ENOENT: throw FUSEMountError.mountpointMissing(raw)
            case ENOTCONN: throw FUSEMountError.deadMount(raw)   // a dead FUSE mount is still a mount
            case EACCES, EPERM: throw FUSEMountError.permissionDenied(raw, detail: String(cString: strerror(errno)))
            default: throw FUSEMountError.mountFailed(raw, detail: String(cString: strerror(errno)))
            }
        }
        guard st.st_mode & S_IFMT == S_IFDIR else { throw FUSEMountError.mountpointNotAFolder(raw) }
        guard let resolved = realpath(raw, nil) else { throw FUSEMountError.mountpointMissing(raw) }
        defer { free(resolved) }
        let path = String(cString: resolved)
        switch MountTable.occupancy(of: path, in: mountinfo()) {
        case .free, .automountPoint: break
        case .mounted: throw FUSEMountError.alreadyMounted(path)
        }
        if geteuid() != 0 && access(path, W_OK) != 0 {
            throw FUSEMountError.permissionDenied(path, detail: "the mounting user cannot write to it")
        }
        return path
    }
}

extension Array where Element == String {
    /// Runs `body` with a NULL-terminated, mutable C argv (what fuse_args wants).
    func withCStringArray<R>(_ body: (UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> R) -> R {
        let cStrings = map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        var argv = cStrings + [nil]
        return argv.withUnsafeMutableBufferPointer { body($0.baseAddress!) }
    }
}
