// How the process that does the mounting tells whoever waits (mount(8) through the original
// parent, or the terminal) that the mount is live, or why it failed. Reports once; later calls
// are ignored. In daemon mode the message travels through a pipe: "OK\n" or "ERR <status> <text>".
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public final class ReadinessReporter: @unchecked Sendable {
    enum Channel {
        case pipe(Int32)
        case standardError
    }

    private let channel: Channel
    private let lock = NSLock()
    private var reported = false

    init(channel: Channel) { self.channel = channel }

    /// A reporter for foreground runs: errors go to stderr, success is silent.
    public static func foreground() -> ReadinessReporter { ReadinessReporter(channel: .standardError) }

    public var hasReported: Bool { lock.withLock { reported } }

    /// Call only once the mount is live.
    public func ready() { send("OK\n", stderrText: nil) }

    public func failed(_ message: String, exitStatus: Int32 = MountHelperError.mountFailureStatus) {
        let oneLine = message.replacingOccurrences(of: "\n", with: " ")
        send("ERR \(exitStatus) \(oneLine)\n", stderrText: "mount.roset: \(message)\n")
    }

    private func send(_ pipeText: String, stderrText: String?) {
        let first: Bool = lock.withLock {
            if reported { return false }
            reported = true
            return true
        }
        guard first else { return }
        switch channel {
        case .pipe(let fd):
            writeAll(fd, pipeText)
            close(fd)
        case .standardError:
            if let stderrText { writeAll(STDERR_FILENO, stderrText) }
        }
    }
}

func writeAll(_ fd: Int32, _ text: String) {
    var bytes = Array(text.utf8)
    var offset = 0
    while offset < bytes.count {
        let n = bytes.withUnsafeMutableBytes { write(fd, $0.baseAddress! + offset, $0.count - offset) }
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { return }
        offset += n
    }
    bytes.removeAll()
}
