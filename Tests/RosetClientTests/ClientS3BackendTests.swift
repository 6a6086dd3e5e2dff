// The client against roset-server's S3 backend on moto: presigned SigV4 part PUTs (with
// Content-Length, ETag returned), server-side multipart completion, and ranged GETs across a
// part boundary. Skipped when moto_server is missing.
import Foundation
import Testing
import RosetClient
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// `moto_server` on a free loopback port; stopped by PID.
final class MotoProcess {
    static var binary: String? {
        let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
        return path.split(separator: ":").map { "\($0)/moto_server" }.first { FileManager.default.isExecutableFile(atPath: $0) }
    }

    let process = Process()
    let endpoint: String

    init() throws {
        guard let binary = Self.binary else { throw ServerProcessError.binaryNotFound("moto_server") }
        let port = try Self.freePort()
        endpoint = "http://127.0.0.1:\(port)"
        process.executableURL = URL(fileURLWithPath: binary)
        process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle(forWritingAtPath: "/dev/null")
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        let deadline = Date().addingTimeInterval(30)
        while Date() < deadline {
            if let (status, _) = try? ServerProcess.request("GET", endpoint + "/"), status == 200 { return }
            usleep(100_000)
        }
        stop()
        throw ServerProcessError.startFailed("moto_server did not answer")
    }

    deinit { stop() }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL); process.waitUntilExit() }
    }

    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw POSIXError(.EIO) }
        defer { close(fd) }
        var addr = sockaddr_in()
        addr.sin_family = sa_family_t(AF_INET)
        addr.sin_addr.s_addr = inet_addr("127.0.0.1")
        addr.sin_port = 0
        var len = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &addr) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0
            }
        }
        guard bound else { throw POSIXError(.EADDRINUSE) }
        return Int(UInt16(bigEndian: addr.sin_port))
    }
}

@Suite(.serialized, .enabled(if: ServerProcess.isAvailable && MotoProcess.binary != nil,
                             "roset-server or moto_server not found"))
struct ClientS3BackendTests {
    @Test func multipartRoundTripAndRangedRead() throws {
        let moto = try MotoProcess()
        defer { moto.stop() }
        let server = try ServerProcess(
            extraArguments: ["--backend", "s3", "--s3-endpoint", moto.endpoint, "--s3-bucket", "roset-client-test",
                             "--s3-region", "us-east-1"],
            environment: ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test-secret"])
        defer { server.stop() }
        let client = Contract.client(server)
        let root = try client.resolveRoot()
        // S3 wants parts of at least 5 MiB, except the last.
        let file = try Contract.RandomFile(size: (5 << 20) + 777_777)
        let node = try Contract.upload(client, file: file, name: "s3.bin", parentId: root.id, partSize: 5 << 20)
        #expect(node.size == Int64(file.data.count))
        let reader = try SignedURLReader(nodeId: node.id, controlPlane: client, store: client)
        let back = try Contract.readAll(reader, chunk: 2 << 20)
        #expect(try Contract.sha256(back) == (try Contract.sha256(file.data)))

        var buffer = [UInt8](repeating: 0, count: 5000)
        let grant = try client.download(id: node.id)
        let n = try buffer.withUnsafeMutableBytes { try client.read(url: grant.url, offset: 5_242_000, into: $0) }
        #expect(n == 5000 && Data(buffer) == file.data[5_242_000..<5_247_000])
    }
}
