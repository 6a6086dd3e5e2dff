// A real mount for integration tests: a `roset-server` on loopback (ServerProcess) and the
// built `mount.roset` in the foreground (MountProcess), with its own spool folder. `close()`
// stops both by PID and unmounts, lazily if needed; tests call it from `defer`, so nothing is
// left behind when an expectation fails. `api` is a RosetAPIClient on the same server, for
// checking what actually reached the control plane.
import Foundation
import RosetClient
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class MountedRoset: @unchecked Sendable {
    let server: ServerProcess
    let scratch: TemporaryDirectory
    let api: RosetAPIClient
    private(set) var mount: MountProcess?
    private(set) var options: [String]

    var mountpoint: String { scratch.url.appendingPathComponent("mnt").path }
    var spoolDirectory: String { scratch.url.appendingPathComponent("spool").path }
    var keyFile: String { server.dataDirectory.url.appendingPathComponent("apikey").path }
    func path(_ relative: String) -> String { mountpoint + "/" + relative }

    /// Whether real mounts can run here (root, /dev/fuse, the binaries built).
    static var isAvailable: Bool {
        getuid() == 0 && FileManager.default.fileExists(atPath: "/dev/fuse") && ServerProcess.isAvailable
            && FileManager.default.isExecutableFile(atPath: TestBinaries.path("mount.roset"))
    }

    /// Starts a server and mounts it with `options` (extra `-o` items).
    init(serverArguments: [String] = [], options: [String] = []) throws {
        server = try ServerProcess(extraArguments: serverArguments)
        do {
            scratch = try TemporaryDirectory(prefix: "roset-it")
        } catch {
            server.stop()
            throw error
        }
        api = RosetAPIClient(configuration: ClientConfiguration(apiURL: server.baseURL, apiKey: server.apiKey,
                                                                maxAttempts: 8))
        self.options = options
        do {
            try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
            try mountAgain()
        } catch {
            close()
            throw error
        }
    }

    /// Mounts (again) on the same mount point with the same spool; `options` replaces the
    /// extra options when given.
    /// `environment` is added to the daemon's (e.g. ROSET_TEST_CRASH_POINT).
    func mountAgain(options newOptions: [String]? = nil, environment: [String: String] = [:]) throws {
        if let newOptions { options = newOptions }
        mount = try MountProcess.start(mountpoint: mountpoint, apiURL: server.baseURL, apiKeyFile: keyFile,
                                       options: ["spool_dir=\(spoolDirectory)"] + options,
                                       environment: environment.isEmpty ? nil
                                           : ProcessInfo.processInfo.environment.merging(environment) { $1 })
    }

    /// Graceful unmount (SIGTERM to the daemon); returns its exit status.
    @discardableResult
    func unmount() -> Int32? {
        defer { mount = nil }
        return mount?.stop()
    }

    /// The daemon dies at once (crash test); its mount is cleaned away afterwards.
    func crash() {
        mount?.kill9()
        mount = nil
    }

    /// The daemon's PID while mounted.
    var daemonPID: pid_t? { mount?.pid }

    /// Stops everything this fixture started and removes its folders. Idempotent.
    func close() {
        unmount()
        MountProcess.forceUnmount(mountpoint)
        server.stop()
        scratch.remove()
    }

    // MARK: - Remote state

    var rootId: String { get throws { try api.resolveRoot().id } }

    /// The node at a '/'-separated path below the root, as the control plane has it (nil if absent).
    func remoteNode(_ relative: String) throws -> Node? {
        var node = try api.resolveRoot()
        for part in relative.split(separator: "/") {
            guard let child = try api.resolve(name: String(part), in: node.id) else { return nil }
            node = child
        }
        return node
    }

    /// The content of a remote file through its signed URL.
    func remoteContent(_ relative: String) throws -> [UInt8]? {
        guard let node = try remoteNode(relative) else { return nil }
        let reader = try SignedURLReader(nodeId: node.id, controlPlane: api, store: api)
        var out = [UInt8](repeating: 0, count: Int(reader.size))
        var done = 0
        while done < out.count {
            let n = try out.withUnsafeMutableBytes {
                try reader.read(offset: Int64(done), into: UnsafeMutableRawBufferPointer(rebasing: $0[done...]))
            }
            if n == 0 { break }
            done += n
        }
        return Array(out[0..<done])
    }

    /// Polls until `condition` holds (uploads are asynchronous), up to `timeout` seconds.
    @discardableResult
    func eventually(timeout: Double = 60, _ condition: () throws -> Bool) rethrows -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        repeat {
            if try condition() { return true }
            usleep(50_000)
        } while Date() < deadline
        return try condition()
    }

    /// Peak resident memory of the daemon (VmHWM), in bytes.
    var daemonPeakRSS: Int? {
        guard let pid = daemonPID,
              let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
              let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
              let kb = Int(line.split(separator: " ", omittingEmptySubsequences: true).dropFirst().first ?? "")
        else { return nil }
        return kb * 1024
    }

    /// The spool's files (data and journal) below the spool folder, for checking that nothing
    /// (or something) is pending.
    func spoolFiles() -> [String] {
        guard let e = FileManager.default.enumerator(atPath: spoolDirectory) else { return [] }
        return e.compactMap { $0 as? String }.filter {
            var isDir: ObjCBool = false
            FileManager.default.fileExists(atPath: spoolDirectory + "/" + $0, isDirectory: &isDir)
            return !isDir.boolValue
        }
    }
}
