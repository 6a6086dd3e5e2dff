// Where the daemon's log lines go: syslog (the default for a daemon), a file (log_file=), or
// stderr (foreground). syslog is called with the fixed format "%s" (CMount's roset_syslog), so a
// message can never be taken for a format string. Callers never put the key in a message.
// log_file= is reopened by `MountLogging.reopen()` (SIGHUP, after logrotate renamed it): lines
// written after the reopen go to the new file, none is lost or split between the two.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import CMount
import Logging

public struct SyslogLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String

    /// Opens the syslog connection once per process with `identity` (kept alive for syslog).
    public static func open(identity: String) {
        openlog(strdup(identity), LOG_PID | LOG_NDELAY, LOG_DAEMON)
    }

    public init(label: String) { self.label = label }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        roset_syslog(Self.priority(event.level), formatLine(event.message, event.metadata, metadata, label: nil))
    }

    static func priority(_ level: Logger.Level) -> Int32 {
        switch level {
        case .trace, .debug: return LOG_DEBUG
        case .info: return LOG_INFO
        case .notice: return LOG_NOTICE
        case .warning: return LOG_WARNING
        case .error: return LOG_ERR
        case .critical: return LOG_CRIT
        }
    }
}

/// Appends timestamped lines to a file (log_file=), or writes them to stderr.
public struct LineLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    private let label: String
    private let sink: LineSink

    public init(label: String, sink: LineSink) { self.label = label; self.sink = sink }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        let stamp = ISO8601DateFormatter.string(from: Date(), timeZone: TimeZone(identifier: "UTC")!,
                                                formatOptions: [.withInternetDateTime, .withFractionalSeconds])
        sink.write("\(stamp) \(event.level) \(formatLine(event.message, event.metadata, metadata, label: label))\n")
    }
}

/// One file descriptor shared by every handler; lines are written whole under a lock.
public final class LineSink: @unchecked Sendable {
    private var fd: Int32
    /// The file behind `fd` (log_file=), nil for stderr.
    private let path: String?
    private let lock = NSLock()

    public static let standardError = LineSink(fd: STDERR_FILENO, path: nil)

    init(fd: Int32, path: String?) { self.fd = fd; self.path = path }

    public static func appending(to path: String) throws -> LineSink {
        LineSink(fd: try open(path), path: path)
    }

    private static func open(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            throw MountHelperError("cannot open log_file \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Opens the path again (a new file when logrotate moved the old one away); on failure the
    /// old descriptor stays, so logging goes on into the renamed file rather than nowhere.
    func reopen() throws {
        guard let path else { return }
        let fresh = try Self.open(path)
        lock.withLock {
            let old = fd
            fd = fresh
            close(old)
        }
    }

    func write(_ line: String) { lock.withLock { writeAll(fd, line) } }
}

func formatLine(_ message: Logger.Message, _ eventMetadata: Logger.Metadata?, _ handlerMetadata: Logger.Metadata,
                label: String?) -> String {
    var merged = handlerMetadata
    if let eventMetadata { merged.merge(eventMetadata) { $1 } }
    let meta = merged.isEmpty ? "" : " " + merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
    return (label.map { "[\($0)] " } ?? "") + "\(message)\(meta)"
}

public enum MountLogging {
    nonisolated(unsafe) private static var fileSink: LineSink?

    /// swift-log's level for a log_level= word.
    static func loggerLevel(_ level: MountConfiguration.LogLevel) -> Logger.Level {
        switch level {
        case .error: return .error
        case .warn: return .warning
        case .info: return .info
        case .debug: return .debug
        case .trace: return .trace
        }
    }

    /// Reopens log_file= (what SIGHUP does); nothing to do when logging to syslog or stderr.
    public static func reopen() throws { try fileSink?.reopen() }

    /// Sends every Logger to stderr (foreground), log_file= or syslog, at the configuration's
    /// log_level. Call once, in the process that will do the work (after daemonizing).
    public static func bootstrap(configuration: MountConfiguration, foreground: Bool) throws {
        let level = loggerLevel(configuration.logLevel)
        let sink: LineSink?
        if let file = configuration.logFile {
            sink = try LineSink.appending(to: file)
            fileSink = sink
        } else if foreground {
            sink = .standardError
        } else {
            SyslogLogHandler.open(identity: "mount.roset")
            sink = nil
        }
        LoggingSystem.bootstrap { label in
            if let sink {
                var h = LineLogHandler(label: label, sink: sink)
                h.logLevel = level
                return h
            }
            var h = SyslogLogHandler(label: label)
            h.logLevel = level
            return h
        }
    }
}
