// log_file= receives whole, timestamped lines at the configured level; syslog priorities map.
import Foundation
import Logging
import Testing
@testable import MountHelper
#if canImport(Glibc)
import Glibc
#endif

@Suite struct LoggingTests {
    @Test func lineHandlerWritesToTheLogFile() throws {
        let path = NSTemporaryDirectory() + "roset-log-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let sink = try LineSink.appending(to: path)
        var handler = LineLogHandler(label: "roset.test", sink: sink)
        handler.logLevel = .info
        let logger = Logger(label: "roset.test") { _ in handler }
        logger.debug("hidden at info level")
        logger.info("mounted", metadata: ["mountpoint": "/mnt/x"])
        logger.error("upload failed")
        let text = try String(contentsOfFile: path, encoding: .utf8)
        let lines = text.split(separator: "\n")
        #expect(lines.count == 2)
        #expect(lines[0].contains("info [roset.test] mounted mountpoint=/mnt/x"))
        #expect(lines[1].contains("error [roset.test] upload failed"))
        #expect(!text.contains("hidden"))
        var st = stat()
        #expect(stat(path, &st) == 0 && st.st_mode & 0o077 == 0)   // the log is private to its owner
    }

    /// logrotate renames the file, then SIGHUP reopens it: later lines go to a new file at the
    /// same path, earlier ones stay whole in the renamed one.
    @Test func reopenFollowsTheRenamedPath() throws {
        let path = NSTemporaryDirectory() + "roset-log-\(UUID().uuidString.prefix(8)).log"
        defer { try? FileManager.default.removeItem(atPath: path); try? FileManager.default.removeItem(atPath: path + ".1") }
        let sink = try LineSink.appending(to: path)
        sink.write("before\n")
        #expect(rename(path, path + ".1") == 0)
        sink.write("still old\n")
        try sink.reopen()
        sink.write("after\n")
        #expect(try String(contentsOfFile: path + ".1", encoding: .utf8) == "before\nstill old\n")
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "after\n")
    }

    @Test func logLevelWordsMapToSwiftLog() {
        #expect(MountLogging.loggerLevel(.error) == .error)
        #expect(MountLogging.loggerLevel(.warn) == .warning)
        #expect(MountLogging.loggerLevel(.info) == .info)
        #expect(MountLogging.loggerLevel(.debug) == .debug)
        #expect(MountLogging.loggerLevel(.trace) == .trace)
    }

    @Test func unwritableLogFileIsAClearError() {
        let e = refusal { try LineSink.appending(to: "/nonexistent-dir/roset.log") }
        #expect(e?.message.contains("log_file /nonexistent-dir/roset.log") == true)
    }

    @Test func syslogPriorities() {
        #expect(SyslogLogHandler.priority(.debug) == LOG_DEBUG)
        #expect(SyslogLogHandler.priority(.info) == LOG_INFO)
        #expect(SyslogLogHandler.priority(.warning) == LOG_WARNING)
        #expect(SyslogLogHandler.priority(.error) == LOG_ERR)
        #expect(SyslogLogHandler.priority(.critical) == LOG_CRIT)
    }
}
