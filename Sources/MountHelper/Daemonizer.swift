// Double-fork daemonizing for mount(8): fork, setsid, fork. The original parent stays until the
// daemon reports through a pipe, so mount(8) gets exit status 0 only once the mount is live, and
// the daemon's own error message otherwise.
//
// CALLERS MUST NOT START ANY THREAD BEFORE `daemonize` (no Dispatch queues, no URLSession, no
// Thread, no libcurl/libfuse init): fork copies only the calling thread, and locks held by other
// threads would stay locked forever in the daemon.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CMount

public enum Daemonizer {
    /// Runs `work` in a detached grandchild (new session, cwd "/", stdio on /dev/null) and makes
    /// the calling process exit with 0 once `work` reported ready, or print the error and exit
    /// non-zero. `work`'s return value is the daemon's exit status.
    public static func daemonize(work: (ReadinessReporter) -> Int32) -> Never {
        var fds: [Int32] = [-1, -1]
        guard pipe(&fds) == 0 else { fail("cannot create a pipe: \(String(cString: strerror(errno)))") }
        let child = roset_fork()
        if child < 0 { fail("cannot fork: \(String(cString: strerror(errno)))") }
        if child > 0 {
            close(fds[1])
            var status: Int32 = 0
            while waitpid(child, &status, 0) < 0 && errno == EINTR {}
            exit(waitForReport(fds[0]))
        }
        // First child: leave the terminal's session, then fork again so the daemon can never
        // reacquire a controlling terminal.
        close(fds[0])
        _ = setsid()
        let grandchild = roset_fork()
        if grandchild < 0 {
            writeAll(fds[1], "ERR 32 cannot fork the daemon: \(String(cString: strerror(errno)))\n")
            _exit(1)
        }
        if grandchild > 0 { _exit(0) }

        _ = fcntl(fds[1], F_SETFD, FD_CLOEXEC)
        _ = chdir("/")
        let devNull = open("/dev/null", O_RDWR)
        if devNull >= 0 {
            dup2(devNull, STDIN_FILENO); dup2(devNull, STDOUT_FILENO); dup2(devNull, STDERR_FILENO)
            if devNull > STDERR_FILENO { close(devNull) }
        }
        let reporter = ReadinessReporter(channel: .pipe(fds[1]))
        let status = work(reporter)
        if !reporter.hasReported {
            reporter.failed("the daemon stopped before the mount was ready (exit status \(status))")
        }
        exit(status)
    }

    /// The original parent: reads the daemon's report. EOF without a report means it died.
    static func waitForReport(_ fd: Int32) -> Int32 {
        var data = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress!, $0.count) }
            if n < 0 && errno == EINTR { continue }
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        close(fd)
        return interpret(String(decoding: data, as: UTF8.self))
    }

    /// "OK" → 0; "ERR <status> <text>" → prints the text, returns the status; nothing → 32.
    static func interpret(_ report: String) -> Int32 {
        let line = report.split(separator: "\n").first.map(String.init) ?? ""
        if line == "OK" { return 0 }
        if line.hasPrefix("ERR ") {
            let rest = line.dropFirst(4)
            let parts = rest.split(separator: " ", maxSplits: 1)
            let status = parts.first.flatMap { Int32($0) } ?? MountHelperError.mountFailureStatus
            let text = parts.count > 1 ? String(parts[1]) : "unknown error"
            writeAll(STDERR_FILENO, "mount.roset: \(text)\n")
            return status == 0 ? MountHelperError.mountFailureStatus : status
        }
        writeAll(STDERR_FILENO, "mount.roset: the daemon exited without reporting (see syslog or log_file)\n")
        return MountHelperError.mountFailureStatus
    }

    private static func fail(_ message: String) -> Never {
        writeAll(STDERR_FILENO, "mount.roset: \(message)\n")
        exit(MountHelperError.mountFailureStatus)
    }
}
