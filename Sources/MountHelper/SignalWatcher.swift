// SIGINT, SIGTERM and SIGHUP without async-signal-unsafe work: `blockTerminationSignals` (before
// any thread starts, so every thread inherits the mask) blocks them, and one dedicated thread
// takes them with sigwait and calls ordinary Swift code. The first SIGINT or SIGTERM asks for a
// graceful stop; any later one asks to leave at once. SIGHUP never stops anything: it calls the
// hang-up handler (the daemon reopens log_file=, what logrotate's `postrotate kill -HUP` wants)
// and does not count towards the stop. SIGPIPE is ignored (a closed socket is an error return,
// not a death).
import Foundation
import Logging
#if canImport(Glibc)
import Glibc
#endif

public final class SignalWatcher: @unchecked Sendable {
    public static let terminationSignals: [Int32] = [SIGINT, SIGTERM, SIGHUP]

    /// Call in the main thread before any other thread exists.
    public static func blockTerminationSignals() {
        var set = sigset_t()
        sigemptyset(&set)
        for s in terminationSignals { sigaddset(&set, s) }
        pthread_sigmask(SIG_BLOCK, &set, nil)
        signal(SIGPIPE, SIG_IGN)
    }

    private let lock = NSLock()
    private var handler: (_ signal: Int32, _ count: Int) -> Void
    private var hangupHandler: () -> Void = SignalWatcher.reopenLogFile

    /// `handler(signal, n)` runs on the watcher thread for the n-th signal (1 = graceful stop).
    /// It may block (a graceful stop does); later signals are still received meanwhile because
    /// each call after the first runs at once on the watcher thread while the first runs on its own.
    public init(handler: @escaping (_ signal: Int32, _ count: Int) -> Void) {
        self.handler = handler
    }

    public func setHandler(_ handler: @escaping (_ signal: Int32, _ count: Int) -> Void) {
        lock.withLock { self.handler = handler }
    }

    /// The default for SIGHUP: log_file= is opened again (a no-op for syslog and stderr).
    public static func reopenLogFile() {
        let logger = Logger(label: "roset.mount")
        do {
            try MountLogging.reopen()
            logger.info("SIGHUP: log file reopened")
        } catch {
            logger.error("SIGHUP: \(error); still logging to the previous file")
        }
    }

    /// What SIGHUP does instead (runs on the watcher thread; keep it short).
    public func setHangupHandler(_ handler: @escaping () -> Void) {
        lock.withLock { self.hangupHandler = handler }
    }

    public func start() {
        let thread = Thread { [self] in
            var set = sigset_t()
            sigemptyset(&set)
            for s in SignalWatcher.terminationSignals { sigaddset(&set, s) }
            var count = 0
            while true {
                var sig: Int32 = 0
                guard sigwait(&set, &sig) == 0 else { continue }
                if sig == SIGHUP {
                    lock.withLock { self.hangupHandler }()
                    continue
                }
                count += 1
                let handler = lock.withLock { self.handler }
                if count == 1 {
                    let n = count, received = sig
                    Thread.detachNewThread { handler(received, n) }
                } else {
                    handler(sig, count)
                }
            }
        }
        thread.name = "roset-signals"
        thread.start()
    }
}
