// libfuse's own messages (bad options, fusermount3 failures) go to our logger instead of stderr,
// and the last error is kept so a failed mount can say why.
import Foundation
import CFuse
import Logging

enum FUSELog {
    private static let lock = NSLock()
    nonisolated(unsafe) private static var logger = Logger(label: "roset.fuse")
    nonisolated(unsafe) private static var last = ""

    static func install(logger: Logger) {
        lock.withLock { Self.logger = logger }
        roset_set_fuse_log_sink { level, message in
            guard let message else { return }
            let text = String(cString: message).trimmingCharacters(in: .whitespacesAndNewlines)
            FUSELog.record(level: level, text)
        }
    }

    static func record(level: Int32, _ text: String) {
        let logger: Logger = lock.withLock {
            if level <= Int32(FUSE_LOG_ERR.rawValue) { last = last.isEmpty ? text : last + "; " + text }
            return Self.logger
        }
        if level <= Int32(FUSE_LOG_ERR.rawValue) {
            logger.error("libfuse: \(text)")
        } else {
            logger.debug("libfuse: \(text)")
        }
    }

    static var lastError: String { lock.withLock { last } }
    static func clearLastError() { lock.withLock { last = "" } }
}
