// The S3 backend against a real moto_server on a free loopback port: init → UploadPart through
// the presigned URL → complete (server-side CompleteMultipartUpload) → presigned GET of the same
// bytes, plus single PUT + commit and a ranged GET. Skipped (with a message) only when
// moto_server is not on PATH.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

func findOnPath(_ name: String) -> String? {
    for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "").split(separator: ":") {
        let p = "\(dir)/\(name)"
        if FileManager.default.isExecutableFile(atPath: p) { return p }
    }
    return nil
}

func freeLoopbackPort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(fd) }
    var addr = sockaddr_in()
    addr.sin_family = sa_family_t(AF_INET)
    addr.sin_addr.s_addr = inet_addr("127.0.0.1")
    addr.sin_port = 0
    var len = socklen_t(MemoryLayout<sockaddr_in>.size)
    let ok = withUnsafeMutablePointer(to: &addr) { ptr in
        ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, len) == 0 && getsockname(fd, $0, &len) == 0 }
    }
    guard ok else { throw HarnessError(description: "no free port") }
    return Int(UInt16(bigEndian: addr.sin_port))
}

/// moto_server on a free port, stopped by PID.
final class MotoServer {
    let process = Process()
    let port: Int

    init(executable: String) throws {
        port = try freeLoopbackPort()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = ["-H", "127.0.0.1", "-p", String(port)]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
        // Wait until it accepts connections.
        for _ in 0..<200 {
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(port).bigEndian
            let connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            close(fd)
            if connected { return }
            usleep(100_000)
        }
        stop()
        throw HarnessError(description: "moto_server did not start")
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            for _ in 0..<50 where process.isRunning { usleep(100_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
    }
}

@Suite(.serialized)
struct S3BackendTests {
    @Test func multipartAndSinglePutThroughMoto() async throws {
        guard let moto = findOnPath("moto_server") else {
            print("S3BackendTests: SKIPPED: moto_server is not on PATH (pip install 'moto[server]')")
            return
        }
        let s3 = try MotoServer(executable: moto)
        defer { s3.stop() }
        let env = ["AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test"]
        try await withServer(args: ["--backend", "s3", "--s3-endpoint", "http://127.0.0.1:\(s3.port)",
                                    "--s3-bucket", "roset-test", "--s3-region", "us-east-1"], environment: env) { s in
            let root = try await s.rootId()
            let content = pattern(200_000, seed: 7)
            let (done, id) = try await s.upload(name: "s3.bin", parent: root, parts: [content])
            #expect(done.status == 200)
            #expect(done.object.obj("node").int("size") == content.count)
            let grant = try await s.send("GET", "/v1/nodes/\(id)/download")
            let url = grant.object.str("url") ?? ""
            #expect(url.hasPrefix("http://127.0.0.1:\(s3.port)/roset-test/") && url.contains("X-Amz-Signature="))
            let got = try await s.send("GET", url)
            #expect(got.status == 200 && got.data == content)
            let ranged = try await s.send("GET", url, headers: ["Range": "bytes=100-199"])
            #expect(ranged.status == 206 && ranged.data == content[100...199])

            // Repeated complete is answered from the record, not by S3 again.
            let start = try await s.send("POST", "/v1/uploads/init", json: ["nodeId": id, "size": 11, "multipart": false])
            let put = try await s.send("PUT", start.object.str("uploadUrl")!, body: Data("new content".utf8))
            #expect(put.status == 200)
            let commit = try await s.send("POST", "/v1/uploads/commit", json: ["uploadToken": start.object.str("uploadToken")!, "size": 11])
            #expect(commit.status == 200)
            #expect(try await s.download(id).data == Data("new content".utf8))

            // Abort of a multipart upload of a new file removes the pending node.
            let doomed = try await s.send("POST", "/v1/uploads/init", json: ["parentId": root, "name": "doomed", "multipart": true])
            #expect(try await s.send("DELETE", "/v1/uploads/\(doomed.object.str("uploadToken")!)").status == 204)
            #expect(try await s.send("GET", "/v1/nodes/\(doomed.object.str("nodeId")!)").status == 404)
        }
    }
}
