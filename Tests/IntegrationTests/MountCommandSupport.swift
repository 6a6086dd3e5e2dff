// Plumbing for the tests of mount.roset as mount(8), fstab, mount.fuse3 and the original roset-fuse command line
// run it: commands with captured output, the daemon found by what it is (its executable and its
// mount point), the helper names in /sbin put in place for one test and restored afterwards.
// Invariants: `MountCommandFixture.close()` (called from `defer`) unmounts every mount point the
// fixture handed out (lazily if needed), ends every daemon of the built binary still serving one
// of them, by PID, restores /sbin exactly as it was, stops the server and removes the folders.
// The machine's /etc/fstab is never read or written: fstab tests use `mount --fstab FILE`.
import Foundation
import RosetClient
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// Whether real mounts through mount(8) can run here; suites are skipped (with this reason) otherwise.
enum MountCommandEnvironment {
    static let requirement = "needs root, /dev/fuse, util-linux mount, roset-server (ROSET_SERVER_BIN) and the built mount.roset"

    static var isAvailable: Bool {
        getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/fuse") && ServerProcess.isAvailable
            && FileManager.default.isExecutableFile(atPath: TestBinaries.path("mount.roset"))
            && FileManager.default.isExecutableFile(atPath: "/bin/mount")
    }
}

// MARK: - Commands

struct CommandResult: CustomStringConvertible {
    var status: Int32
    var stdout: String
    var stderr: String
    var timedOut: Bool

    var description: String { "status \(status)\(timedOut ? " (timed out)" : ""), stderr: \(stderr), stdout: \(stdout)" }
}

enum Command {
    /// The environment commands get: a fixed PATH and HOME, nothing inherited from the test run
    /// (a ROSET_API_KEY of the CI machine must not leak into a test).
    static let baseEnvironment = ["PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"]

    /// Runs `executable` to its end (killed by PID after `timeout`), output captured in files so
    /// that a daemon holding a copy of a pipe could never make the test hang.
    static func run(_ executable: String, _ arguments: [String], environment: [String: String] = [:],
                    timeout: Double = 120) -> CommandResult {
        let base = NSTemporaryDirectory() + "roset-cmd-\(UUID().uuidString.prefix(8))"
        let outPath = base + ".out", errPath = base + ".err"
        FileManager.default.createFile(atPath: outPath, contents: nil)
        FileManager.default.createFile(atPath: errPath, contents: nil)
        defer {
            try? FileManager.default.removeItem(atPath: outPath)
            try? FileManager.default.removeItem(atPath: errPath)
        }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        p.environment = baseEnvironment.merging(environment) { $1 }
        p.standardInput = FileHandle.nullDevice
        guard let out = FileHandle(forWritingAtPath: outPath), let err = FileHandle(forWritingAtPath: errPath) else {
            return CommandResult(status: -1, stdout: "", stderr: "cannot create output files", timedOut: false)
        }
        p.standardOutput = out
        p.standardError = err
        do { try p.run() } catch {
            return CommandResult(status: -1, stdout: "", stderr: "cannot run \(executable): \(error)", timedOut: false)
        }
        try? out.close()
        try? err.close()
        let deadline = Date().addingTimeInterval(timeout)
        while p.isRunning && Date() < deadline { usleep(20_000) }
        var timedOut = false
        if p.isRunning {
            // Foundation sees the exit only once every copy of its lifetime socket is closed, so a
            // daemon that kept an inherited descriptor looks like a command that never ends.
            timedOut = true
            kill(p.processIdentifier, SIGKILL)
            let grace = Date().addingTimeInterval(10)
            while p.isRunning && Date() < grace { usleep(20_000) }
        }
        let read = { (path: String) in (try? String(contentsOfFile: path, encoding: .utf8)) ?? "" }
        return CommandResult(status: p.isRunning ? -1 : p.terminationStatus, stdout: read(outPath), stderr: read(errPath),
                             timedOut: timedOut)
    }
}

// MARK: - Processes seen through /proc

struct ProcessStatus {
    var pid: pid_t
    var state: Character
    var ppid: pid_t
    var sessionId: pid_t
}

enum ProcFS {
    static var allPIDs: [pid_t] {
        ((try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []).compactMap { pid_t($0) }
    }

    /// argv as the kernel shows it (NUL-separated in /proc/PID/cmdline).
    static func commandLine(_ pid: pid_t) -> [String]? {
        guard let data = FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") else { return nil }
        return data.split(separator: 0, omittingEmptySubsequences: false).map { String(decoding: $0, as: UTF8.self) }
    }

    static func rawCommandLine(_ pid: pid_t) -> Data? { FileManager.default.contents(atPath: "/proc/\(pid)/cmdline") }

    static func link(_ path: String) -> String? { Posix.readlink(path) }

    /// State, parent and session from /proc/PID/stat (fields after the parenthesised name).
    static func status(_ pid: pid_t) -> ProcessStatus? {
        guard let text = try? String(contentsOfFile: "/proc/\(pid)/stat", encoding: .utf8),
              let close = text.lastIndex(of: ")") else { return nil }
        let fields = text[text.index(after: close)...].split(separator: " ")
        guard fields.count > 4, let state = fields[0].first, let ppid = pid_t(fields[1]), let sid = pid_t(fields[3])
        else { return nil }
        return ProcessStatus(pid: pid, state: state, ppid: ppid, sessionId: sid)
    }

    /// Alive = exists and is not a zombie waiting for a parent that may never reap it.
    static func isAlive(_ pid: pid_t) -> Bool {
        guard let s = status(pid) else { return false }
        return s.state != "Z" && s.state != "X"
    }

    @discardableResult
    static func waitUntilGone(_ pid: pid_t, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while isAlive(pid) && Date() < deadline { usleep(50_000) }
        return !isAlive(pid)
    }

    /// Processes running `binary` (by /proc/PID/exe) with `mountpoint` among their arguments:
    /// the daemon serving that mount point, whatever name it was started under.
    static func daemons(of binary: String, serving mountpoint: String) -> [pid_t] {
        let exe = MountCommandFixture.resolved(binary)
        let target = MountCommandFixture.resolved(mountpoint)
        return allPIDs.filter { pid in
            guard isAlive(pid), let e = link("/proc/\(pid)/exe"), e == exe || e == exe + " (deleted)",
                  let argv = commandLine(pid) else { return false }
            return argv.contains { $0 == mountpoint || $0 == target }
        }
    }

    /// Every process whose command line contains `needle` (the key-leak check).
    static func commandLinesContaining(_ needle: String) -> [(pid_t, String)] {
        let bytes = Data(needle.utf8)
        return allPIDs.compactMap { pid in
            guard let raw = rawCommandLine(pid), raw.range(of: bytes) != nil else { return nil }
            return (pid, (commandLine(pid) ?? []).joined(separator: " "))
        }
    }
}

/// The /proc/mounts line of a mount point (options are field 4), or nil.
func procMountsEntry(_ mountpoint: String) -> (source: String, type: String, options: Set<String>)? {
    guard let text = try? String(contentsOfFile: "/proc/mounts", encoding: .utf8) else { return nil }
    let target = MountCommandFixture.resolved(mountpoint)
    var found: (String, String, Set<String>)?
    for line in text.split(separator: "\n") {
        let f = line.split(separator: " ")
        guard f.count >= 4, MountProcess.unescape(String(f[1])) == target else { continue }
        found = (String(f[0]), String(f[2]), Set(f[3].split(separator: ",").map(String.init)))
    }
    return found
}

// MARK: - /sbin helper names

/// Puts `/sbin/NAME` (or DIR/NAME) in the state a test needs (a link to the built binary, or
/// absent) and puts back exactly what was there before: a link or file that existed is moved
/// aside and moved back.
///
/// Suites run in parallel: the first change takes an exclusive flock(2) on a lock file and
/// `restore` releases it, so only one test at a time owns these names (in this process or any
/// other test process that uses this class).
final class SbinNames: @unchecked Sendable {
    private var saved: [(path: String, backup: String?)] = []
    private var lockFD: Int32 = -1
    static let lockPath = "/run/lock/roset-fuse-tests-sbin.lock"

    private func acquire() {
        guard lockFD < 0 else { return }
        let dir = (Self.lockPath as NSString).deletingLastPathComponent
        let path = FileManager.default.fileExists(atPath: dir) ? Self.lockPath : "/tmp/roset-fuse-tests-sbin.lock"
        lockFD = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o600)
        if lockFD >= 0 { while flock(lockFD, LOCK_EX) != 0 && errno == EINTR {} }
    }

    func link(_ name: String, to target: String, in directory: String = "/sbin") throws {
        let path = try clear(name, in: directory)
        try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: target)
    }

    /// Makes sure DIR/NAME does not exist for the test's duration; returns its path.
    @discardableResult
    func clear(_ name: String, in directory: String = "/sbin") throws -> String {
        acquire()
        let path = directory + "/" + name
        var backup: String?
        if Posix.exists(path) {
            let b = directory + "/.\(name).roset-test-\(getpid())"
            guard rename(path, b) == 0 else {
                throw ServerProcessError.requestFailed("cannot move \(path) aside: \(String(cString: strerror(errno)))")
            }
            backup = b
        }
        saved.append((path, backup))
        return path
    }

    /// Removes what the tests put in place and moves back what was there. Idempotent.
    func restore() {
        for entry in saved.reversed() {
            if Posix.exists(entry.path) { unlink(entry.path) }
            if let backup = entry.backup { rename(backup, entry.path) }
        }
        saved.removeAll()
        if lockFD >= 0 {
            flock(lockFD, LOCK_UN)
            Glibc.close(lockFD)
            lockFD = -1
        }
    }
}

// MARK: - Fixture

/// A roset-server, a scratch folder with a key file (mode 600), mount points on demand, and the
/// cleanup of everything a mount test can leave behind.
final class MountCommandFixture: @unchecked Sendable {
    let server: ServerProcess
    let scratch: TemporaryDirectory
    let keyFile: String
    let binary = TestBinaries.path("mount.roset")
    let sbin = SbinNames()
    private var mountpoints: [String] = []
    private var extraPIDs: [pid_t] = []

    /// `serverArguments` e.g. ["--mount", "datasets"] for a second mount.
    init(serverArguments: [String] = []) throws {
        server = try ServerProcess(extraArguments: serverArguments)
        do {
            scratch = try TemporaryDirectory(prefix: "roset-mnt")
        } catch {
            server.stop()
            throw error
        }
        keyFile = scratch.url.appendingPathComponent("key").path
        do {
            try writeKeyFile(keyFile, key: server.apiKey)
        } catch {
            close()
            throw error
        }
    }

    var key: String { server.apiKey }

    /// A client of the same server, to check what reached the control plane.
    private(set) lazy var api = RosetAPIClient(configuration: ClientConfiguration(
        apiURL: server.baseURL, apiKey: server.apiKey, maxAttempts: 8))

    /// A folder at the root of the default mount, made through the API (not through a mount).
    func createRemoteFolder(_ name: String) throws {
        _ = try api.createFolder(name: name, parentId: try api.resolveRoot().id, metadata: nil)
    }

    /// The content of a file at the root of the default mount, through its signed URL; nil if absent.
    func remoteContent(_ name: String) throws -> [UInt8]? {
        guard let node = try api.resolve(name: name, in: try api.resolveRoot().id) else { return nil }
        return try wholeContent(of: node, api: api)
    }
    var apiURL: String { server.baseURL }

    func writeKeyFile(_ path: String, key: String, mode: Int = 0o600) throws {
        try Data((key + "\n").utf8).write(to: URL(fileURLWithPath: path))
        try FileManager.default.setAttributes([.posixPermissions: mode], ofItemAtPath: path)
    }

    /// A fresh, empty folder to mount on (canonical path), unmounted and cleaned at `close`.
    func mountpoint(_ name: String) throws -> String {
        let path = Self.resolved(scratch.path) + "/" + name
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        mountpoints.append(path)
        return path
    }

    /// Registers a path that a test mounts without creating it here (cleanup only).
    func track(_ path: String) { mountpoints.append(path) }

    /// Registers a process the test started itself, so `close` ends it by PID.
    func track(pid: pid_t) { extraPIDs.append(pid) }

    /// A spool folder of its own per mount point (two mounts of one server must not share one).
    func spoolDirectory(for mountpoint: String) -> String {
        scratch.path + "/spool-" + (mountpoint as NSString).lastPathComponent
    }

    /// `api_url=…,apikey_file=…,spool_dir=…` plus `extra`, as one -o string.
    func options(for mountpoint: String, _ extra: [String] = []) -> String {
        (["api_url=\(apiURL)", "apikey_file=\(keyFile)", "spool_dir=\(spoolDirectory(for: mountpoint))"] + extra)
            .joined(separator: ",")
    }

    func daemons(serving mountpoint: String) -> [pid_t] { ProcFS.daemons(of: binary, serving: mountpoint) }

    func isMounted(_ mountpoint: String) -> Bool { MountProcess.isRosetMount(mountpoint) }

    /// Runs util-linux mount(8).
    func mount(_ arguments: [String], environment: [String: String] = [:]) -> CommandResult {
        Command.run("/bin/mount", arguments, environment: environment)
    }

    /// Runs the built binary under `name` (a symlink in the scratch folder) with `arguments`.
    func runBinary(as name: String = "mount.roset", _ arguments: [String], environment: [String: String] = [:]) throws -> CommandResult {
        Command.run(try alias(name), arguments, environment: environment)
    }

    /// A symlink NAME → the built binary in scratch/bin (for `roset-fuse`, `roset`, ...).
    func alias(_ name: String) throws -> String {
        let dir = scratch.path + "/bin"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let path = dir + "/" + name
        if !Posix.exists(path) { try FileManager.default.createSymbolicLink(atPath: path, withDestinationPath: binary) }
        return path
    }

    var aliasDirectory: String { scratch.path + "/bin" }

    /// Waits until the daemon serving `mountpoint` has gone (after umount, SIGTERM, ...).
    func waitUntilNoDaemon(_ mountpoint: String, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while !daemons(serving: mountpoint).isEmpty && Date() < deadline { usleep(50_000) }
        return daemons(serving: mountpoint).isEmpty
    }

    /// Waits until `mountpoint` is no longer a mount (the daemon unmounted it).
    func waitUntilUnmounted(_ mountpoint: String, timeout: Double = 60) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while MountProcess.fsType(of: mountpoint) != nil && Date() < deadline { usleep(50_000) }
        return MountProcess.fsType(of: mountpoint) == nil
    }

    /// Ends everything: daemons by PID (SIGTERM, then SIGKILL), lazy unmounts, /sbin restored,
    /// the server stopped, the scratch folder removed. Idempotent.
    func close() {
        var pids = extraPIDs
        for m in mountpoints { pids += daemons(serving: m) }
        for pid in Set(pids) where ProcFS.isAlive(pid) { kill(pid, SIGTERM) }
        for pid in Set(pids) where !ProcFS.waitUntilGone(pid, timeout: 40) { kill(pid, SIGKILL) }
        for m in mountpoints { MountProcess.forceUnmount(m) }
        for pid in Set(pids) { ProcFS.waitUntilGone(pid, timeout: 10) }
        mountpoints.removeAll()
        extraPIDs.removeAll()
        sbin.restore()
        server.stop()
        scratch.remove()
    }

    static func resolved(_ path: String) -> String {
        guard let r = realpath(path, nil) else { return path }
        defer { free(r) }
        return String(cString: r)
    }

    /// A loopback port on which nothing listens (bound, then released).
    static func closedLoopbackPort() -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { Glibc.close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafePointer(to: &addr) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) } }
        _ = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &len) }
        }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}
