// Runs the built `mount.roset` in the foreground as a subprocess, the way integration tests mount:
// `mount.roset SPEC DIR -o foreground,api_url=URL,apikey_file=FILE,...`. Invariants: `start`
// returns only once DIR shows in /proc/self/mountinfo as fuse.roset (or throws with the helper's
// stderr); `stop` always leaves no process and no mount behind, whatever state the daemon is in.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum MountProcessError: Error, CustomStringConvertible {
    case exitedBeforeMounting(status: Int32, stderr: String)
    case notMountedInTime(stderr: String)

    public var description: String {
        switch self {
        case .exitedBeforeMounting(let s, let e): return "mount.roset exited (\(s)) before mounting: \(e)"
        case .notMountedInTime(let e): return "mount.roset did not mount in time: \(e)"
        }
    }
}

public final class MountProcess: @unchecked Sendable {
    public let process: Process
    public let mountpoint: String
    public let stderrFile: String
    public var pid: pid_t { process.processIdentifier }

    /// Starts `mount.roset SPEC DIR -o foreground,api_url=…,apikey_file=…[,options]` and waits
    /// until DIR is a fuse.roset mount. `options` are extra `-o` items (e.g. "cache_ttl=1").
    public static func start(spec: String = "default", mountpoint: String, apiURL: String, apiKeyFile: String,
                             options: [String] = [], environment: [String: String]? = nil,
                             binary: String = TestBinaries.path("mount.roset"),
                             timeout: Double = 60) throws -> MountProcess {
        let all = ["foreground", "api_url=\(apiURL)", "apikey_file=\(apiKeyFile)"] + options
        let m = try MountProcess(arguments: [spec, mountpoint, "-o", all.joined(separator: ",")],
                                 mountpoint: mountpoint, environment: environment, binary: binary)
        do {
            try m.waitUntilMounted(timeout: timeout)
        } catch {
            m.stop()
            throw error
        }
        return m
    }

    /// Starts the binary with raw arguments (for tests of bad input); does not wait for a mount.
    public init(arguments: [String], mountpoint: String, environment: [String: String]? = nil,
                binary: String = TestBinaries.path("mount.roset")) throws {
        self.mountpoint = MountProcess.resolved(mountpoint)
        process = Process()
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = arguments
        process.environment = environment ?? ProcessInfo.processInfo.environment
        stderrFile = NSTemporaryDirectory() + "mount-roset-\(UUID().uuidString.prefix(8)).stderr"
        _ = FileManager.default.createFile(atPath: stderrFile, contents: nil)
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: stderrFile))
        process.standardOutput = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        try process.run()
    }

    deinit { try? FileManager.default.removeItem(atPath: stderrFile) }

    /// What the helper wrote to stderr so far (its log in foreground mode).
    public var stderr: String { (try? String(contentsOfFile: stderrFile, encoding: .utf8)) ?? "" }

    public var isRunning: Bool { process.isRunning }

    public func waitUntilMounted(timeout: Double = 60) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if MountProcess.isRosetMount(mountpoint) { return }
            if !process.isRunning {
                throw MountProcessError.exitedBeforeMounting(status: process.terminationStatus, stderr: stderr)
            }
            usleep(50_000)
        }
        throw MountProcessError.notMountedInTime(stderr: stderr)
    }

    /// Waits (bounded) for the process to exit; returns its status, or nil if still running.
    @discardableResult
    public func waitForExit(timeout: Double) -> Int32? {
        let deadline = Date().addingTimeInterval(timeout)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        return process.isRunning ? nil : process.terminationStatus
    }

    /// SIGTERM by PID, a bounded wait, then lazy unmount if still mounted and SIGKILL if still
    /// alive. Returns the exit status when the process exited by itself after SIGTERM.
    @discardableResult
    public func stop(timeout: Double = 60) -> Int32? {
        var status: Int32?
        if process.isRunning {
            kill(pid, SIGTERM)
            status = waitForExit(timeout: timeout)
        } else {
            status = process.terminationStatus
        }
        MountProcess.forceUnmount(mountpoint)
        if process.isRunning {
            kill(pid, SIGKILL)
            waitForExit(timeout: 10)
            status = nil
        }
        return status
    }

    /// Crash test: the daemon dies at once, leaving its spool as it was; the dead mount is
    /// removed afterwards so the test can mount again.
    public func kill9() {
        if process.isRunning {
            kill(pid, SIGKILL)
            waitForExit(timeout: 10)
        }
        MountProcess.forceUnmount(mountpoint)
    }

    // MARK: - Mount table

    public static func isRosetMount(_ path: String) -> Bool {
        fsType(of: resolved(path)) == "fuse.roset"
    }

    /// The fstype of the mount at `path` in /proc/self/mountinfo (last mount wins), or nil.
    public static func fsType(of path: String) -> String? {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        var type: String?
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard f.count > 7, let dash = f.firstIndex(of: "-"), dash + 1 < f.count else { continue }
            if unescape(String(f[4])) == path { type = String(f[dash + 1]) }
        }
        return type
    }

    /// `umount -l`, then `fusermount3 -uz`, while the path is still a mount.
    public static func forceUnmount(_ path: String) {
        for tool in [["/bin/umount", "-l"], ["/bin/fusermount3", "-uz"]] where fsType(of: path) != nil {
            let p = Process()
            p.executableURL = URL(fileURLWithPath: tool[0])
            p.arguments = [tool[1], path]
            p.standardError = FileHandle.nullDevice
            p.standardOutput = FileHandle.nullDevice
            if (try? p.run()) != nil { p.waitUntilExit() }
        }
    }

    static func resolved(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }

    /// /proc/mounts and mountinfo escape space, tab, newline and backslash as \ooo.
    public static func unescape(_ s: String) -> String {
        guard s.contains("\\") else { return s }
        var out = [UInt8](), bytes = Array(s.utf8), i = 0
        while i < bytes.count {
            if bytes[i] == 92, i + 3 < bytes.count,
               let v = UInt8(String(decoding: bytes[(i + 1)...(i + 3)], as: UTF8.self), radix: 8) {
                out.append(v); i += 4
            } else { out.append(bytes[i]); i += 1 }
        }
        return String(decoding: out, as: UTF8.self)
    }
}
