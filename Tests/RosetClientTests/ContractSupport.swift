// Shared plumbing for the contract tests: a real roset-server per test, a client pointed at it,
// random files, and a control plane adapter that hands out a stale grant once.
import Foundation
import Logging
import RosetClient
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

enum Contract {
    static let serverMissing = "roset-server binary not found (build it, or set ROSET_SERVER_BIN)"

    /// Starts a server, runs `body`, stops the server by PID whatever happens.
    static func withServer(_ extraArguments: [String] = [], _ body: (ServerProcess) throws -> Void) throws {
        let server = try ServerProcess(extraArguments: extraArguments)
        defer { server.stop() }
        try body(server)
    }

    static func client(_ server: ServerProcess, apiKey: String? = nil, maxAttempts: Int = 5,
                       mountId: String? = nil) -> RosetAPIClient {
        var logger = Logger(label: "roset.client.test")
        logger.logLevel = ProcessInfo.processInfo.environment["ROSET_TEST_DEBUG"] != nil ? .debug : .warning
        return RosetAPIClient(configuration: ClientConfiguration(
            apiURL: server.baseURL + "/", apiKey: apiKey ?? server.apiKey, mountId: mountId,
            connectTimeout: 5, lowSpeedLimit: 1, lowSpeedTime: 30, requestTimeout: 30,
            maxAttempts: maxAttempts, backoffBase: 0.005, backoffCap: 0.05, retryAfterCap: 5, logger: logger))
    }

    /// A temporary file of `size` random bytes, opened read-only.
    final class RandomFile {
        let path: String
        let fd: Int32
        let data: Data

        init(size: Int) throws {
            var bytes = [UInt8](repeating: 0, count: size)
            var generator = SystemRandomNumberGenerator()
            var i = 0
            while i + 8 <= size {
                withUnsafeBytes(of: generator.next() as UInt64) { raw in
                    for j in 0..<8 { bytes[i + j] = raw[j] }
                }
                i += 8
            }
            while i < size { bytes[i] = UInt8.random(in: 0...255); i += 1 }
            data = Data(bytes)
            path = NSTemporaryDirectory() + "roset-client-\(UUID().uuidString.prefix(8))"
            guard FileManager.default.createFile(atPath: path, contents: data) else {
                throw POSIXError(.EIO)
            }
            fd = open(path, O_RDONLY)
            guard fd >= 0 else { throw POSIXError(.EIO) }
        }

        deinit {
            close(fd)
            unlink(path)
        }
    }

    /// SHA-256 (hex) of `data`, through the coreutils `sha256sum` on a temporary file.
    static func sha256(_ data: Data) throws -> String {
        let path = NSTemporaryDirectory() + "roset-sha-\(UUID().uuidString.prefix(8))"
        try data.write(to: URL(fileURLWithPath: path))
        defer { unlink(path) }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/usr/bin/sha256sum")
        p.arguments = [path]
        let pipe = Pipe()
        p.standardOutput = pipe
        try p.run()
        let out = pipe.fileHandleForReading.readDataToEndOfFile()
        p.waitUntilExit()
        return String(decoding: out, as: UTF8.self).split(separator: " ").first.map(String.init) ?? ""
    }

    /// Multipart upload of `file` in parts of `partSize` bytes; returns the completed node.
    static func upload(_ client: RosetAPIClient, file: RandomFile, name: String, parentId: String,
                       partSize: Int) throws -> Node {
        let grant = try client.initUpload(UploadRequest(parentId: parentId, name: name, size: 0, multipart: true))
        var parts: [UploadedPart] = []
        var offset = 0
        var number = 1
        repeat {
            let length = min(partSize, file.data.count - offset)
            let url = try client.partUploadURL(token: grant.uploadToken, partNumber: number)
            let etag = try client.write(url: url, fileDescriptor: file.fd, offset: Int64(offset), length: Int64(length))
            parts.append(UploadedPart(partNumber: number, etag: etag))
            offset += length
            number += 1
        } while offset < file.data.count
        return try client.completeUpload(token: grant.uploadToken, parts: parts)
    }

    /// Reads a whole node through `SignedURLReader` in `chunk`-sized reads.
    static func readAll(_ reader: SignedURLReader, chunk: Int = 1 << 20) throws -> Data {
        var out = Data(count: Int(reader.size))
        var offset = 0
        try out.withUnsafeMutableBytes { raw in
            while offset < raw.count {
                let end = min(offset + chunk, raw.count)
                let n = try reader.read(offset: Int64(offset), into: UnsafeMutableRawBufferPointer(rebasing: raw[offset..<end]))
                guard n > 0 else { break }
                offset += n
            }
        }
        return out.prefix(offset)
    }
}

/// Delegates to the real client, but hands out `staleGrant` (an expired URL claimed valid for
/// an hour) on the first `download` call: the store's 403 must then trigger a refresh.
final class StaleFirstGrant: ControlPlane, @unchecked Sendable {
    let real: RosetAPIClient
    private let lock = NSLock()
    private var stale: DownloadGrant?
    private(set) var downloadCalls = 0

    init(real: RosetAPIClient, staleGrant: DownloadGrant) { self.real = real; self.stale = staleGrant }

    func download(id: String) throws -> DownloadGrant {
        let first: DownloadGrant? = lock.withLock {
            downloadCalls += 1
            defer { stale = nil }
            return stale
        }
        return try first ?? real.download(id: id)
    }

    func resolveRoot() throws -> Node { try real.resolveRoot() }
    func resolve(name: String, in parentId: String) throws -> Node? { try real.resolve(name: name, in: parentId) }
    func node(id: String) throws -> Node { try real.node(id: id) }
    func children(of folderId: String) throws -> [Node] { try real.children(of: folderId) }
    func manifest(of folderId: String) throws -> [Node] { try real.manifest(of: folderId) }
    func createFolder(name: String, parentId: String, metadata: [String: JSONValue]?) throws -> Node {
        try real.createFolder(name: name, parentId: parentId, metadata: metadata)
    }
    func updateNode(id: String, parentId: String?, name: String?, metadata: [String: JSONValue]?) throws -> Node {
        try real.updateNode(id: id, parentId: parentId, name: name, metadata: metadata)
    }
    func deleteNode(id: String) throws { try real.deleteNode(id: id) }
    func initUpload(_ request: UploadRequest) throws -> UploadGrant { try real.initUpload(request) }
    func partUploadURL(token: String, partNumber: Int) throws -> String { try real.partUploadURL(token: token, partNumber: partNumber) }
    func completeUpload(token: String, parts: [UploadedPart]) throws -> Node { try real.completeUpload(token: token, parts: parts) }
    func commitUpload(token: String, etag: String?, size: Int64) throws -> Node { try real.commitUpload(token: token, etag: etag, size: size) }
    func abortUpload(token: String) throws { try real.abortUpload(token: token) }
}
