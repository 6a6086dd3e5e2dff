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
        return try wholeContent(of: node, api: api)
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

// MARK: - Added for the FS* suites

extension MountedRoset {
    /// What the daemon logged so far (foreground mode logs to stderr).
    var daemonLog: String { mount?.stderr ?? "" }

    /// Whether the daemon process is still running.
    var daemonIsAlive: Bool { mount?.isRunning ?? false }

    /// Puts a file on the server behind the mount's back (single PUT from a local file), the way
    /// another client would. Returns the new node.
    @discardableResult
    func uploadRemote(name: String, parentId: String? = nil, contentsOf localPath: String) throws -> Node {
        let size = Int64((try FileManager.default.attributesOfItem(atPath: localPath)[.size] as? NSNumber)?.int64Value ?? 0)
        let parent = try parentId ?? rootId
        let grant = try api.initUpload(UploadRequest(parentId: parent, name: name, size: size, multipart: false))
        let fd = open(localPath, O_RDONLY)
        guard fd >= 0 else { throw POSIXError(.ENOENT) }
        defer { Glibc.close(fd) }
        let etag = try api.write(url: grant.uploadURL ?? "", fileDescriptor: fd, offset: 0, length: size)
        return try api.commitUpload(token: grant.uploadToken, etag: etag, size: size)
    }

    /// Same, from bytes in memory; a new version when `name` exists (replace through `nodeId`).
    @discardableResult
    func uploadRemote(name: String, parentId: String? = nil, bytes: [UInt8], replacing nodeId: String? = nil) throws -> Node {
        let local = scratch.url.appendingPathComponent("upload-\(UUID().uuidString.prefix(8))").path
        _ = FileManager.default.createFile(atPath: local, contents: Data(bytes))
        defer { try? FileManager.default.removeItem(atPath: local) }
        if let nodeId {
            let size = Int64(bytes.count)
            let grant = try api.initUpload(UploadRequest(nodeId: nodeId, size: size, multipart: false))
            let fd = open(local, O_RDONLY)
            defer { Glibc.close(fd) }
            let etag = try api.write(url: grant.uploadURL ?? "", fileDescriptor: fd, offset: 0, length: size)
            return try api.commitUpload(token: grant.uploadToken, etag: etag, size: size)
        }
        return try uploadRemote(name: name, parentId: parentId, contentsOf: local)
    }

    /// The server's SQLite database (test plumbing for states the API refuses to create).
    var serverDatabase: String? {
        let dir = server.dataDirectory.path
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.first { $0.hasSuffix(".sqlite") || $0.hasSuffix(".db") || $0.hasSuffix(".sqlite3") }.map { dir + "/" + $0 }
    }

    /// Runs one SQL statement on the server's database with sqlite3(1); true on success.
    func serverSQL(_ sql: String) -> Bool {
        guard let db = serverDatabase, FileManager.default.isExecutableFile(atPath: "/usr/bin/sqlite3") else { return false }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        p.arguments = ["-cmd", ".timeout 10000", db, sql]
        p.standardOutput = FileHandle.nullDevice
        p.standardError = FileHandle.nullDevice
        guard (try? p.run()) != nil else { return false }
        p.waitUntilExit()
        return p.terminationStatus == 0
    }
}

extension MountedRoset {
    /// Runs `body` with a fresh fixture that is always closed afterwards; prints why and does
    /// nothing when real mounts cannot run here.
    static func with(options: [String] = [], serverArguments: [String] = [], _ body: (MountedRoset) throws -> Void) throws {
        guard isAvailable else {
            print("skipped: real mounts need root, /dev/fuse, roset-server (ROSET_SERVER_BIN) and mount.roset built")
            return
        }
        // ROSET_IT_LOG=1 prints the daemon's log (with `debug` on) when the fixture closes.
        let printLog = ProcessInfo.processInfo.environment["ROSET_IT_LOG"] == "1"
        let fixture = try MountedRoset(serverArguments: serverArguments, options: options + (printLog ? ["debug"] : []))
        defer {
            if printLog { print("---- daemon log ----\n\(fixture.daemonLog.suffix(20_000))\n---- end ----") }
            fixture.close()
        }
        try body(fixture)
    }

    /// Spool files that hold written data or journal records (not LOCK/IDENTITY).
    func spoolEntryFiles() -> [String] {
        spoolFiles().filter { $0.contains("data/") || $0.contains("journal/") }
    }

    /// The node's metadata value under `key`, as the control plane has it.
    func remoteMetadata(_ relative: String, _ key: String) throws -> JSONValue? {
        try remoteNode(relative)?.metadata[key]
    }
}

extension MountedRoset {
    /// Non-throwing forms for use inside `#expect` (a failed request reads as "absent").
    func remoteNodeIfAny(_ relative: String) -> Node? { (try? remoteNode(relative)) ?? nil }
    func remoteContentIfAny(_ relative: String) -> [UInt8]? { (try? remoteContent(relative)) ?? nil }
    func remoteMetadataIfAny(_ relative: String, _ key: String) -> JSONValue? { (try? remoteMetadata(relative, key)) ?? nil }
}

/// A file node's whole content, read through its signed URL.
func wholeContent(of node: Node, api: RosetAPIClient) throws -> [UInt8] {
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
