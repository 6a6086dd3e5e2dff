// Uploads and the local blob store against the real binary: pending node after init, multipart
// assembly, repeated complete, new versions, single PUT + commit, abort, quota, signed-URL 403s
// and byte ranges (206/416).
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

func pattern(_ count: Int, seed: UInt8) -> Data {
    Data((0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) })
}

@Suite(.serialized)
struct UploadTests {
    @Test func multipartUploadLifecycle() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let start = try await s.send("POST", "/v1/uploads/init", json: ["parentId": root, "name": "data.bin", "size": 0, "multipart": true])
            #expect(start.status == 200)
            let token = start.object.str("uploadToken")!
            let id = start.object.str("nodeId")!
            #expect(token.allSatisfy { $0.isLetter || $0.isNumber || $0 == "_" || $0 == "-" })
            #expect(start.object.int("expiresIn") ?? 0 > 0)

            // Pending node: visible at once with size 0, but nothing to download.
            let pending = try await s.send("GET", "/v1/nodes/\(id)")
            #expect(pending.status == 200 && pending.object.int("size") == 0 && pending.object["version"] == nil)
            let seen = try await s.send("POST", "/v1/resolve", json: ["paths": ["data.bin"], "baseId": root])
            #expect(seen.object.obj("nodes").obj("data.bin").str("id") == id)
            #expect(try await s.send("GET", "/v1/nodes/\(id)/download").status == 404)
            let taken = try await s.send("POST", "/v1/uploads/init", json: ["parentId": root, "name": "data.bin", "size": 0, "multipart": true])
            #expect(taken.status == 409 && taken.object.obj("details").str("existingNodeId") == id)

            // Parts uploaded out of order; ETags sent with and without quotes.
            let p1 = pattern(70_000, seed: 1), p2 = pattern(12_345, seed: 2)
            var etags: [Int: String] = [:]
            for (n, data) in [(2, p2), (1, p1)] {
                let grant = try await s.send("POST", "/v1/uploads/\(token)/part?partNumber=\(n)")
                #expect(grant.object.str("url") != nil && grant.object.str("url") == grant.object.str("uploadUrl"))
                let put = try await s.send("PUT", grant.object.str("url")!, body: data)
                #expect(put.status == 200)
                let etag = put.header("ETag") ?? ""
                #expect(etag.hasPrefix("\"") && etag.hasSuffix("\""))
                etags[n] = etag
            }
            let parts: [[String: Any]] = [["PartNumber": 1, "ETag": etags[1]!],
                                          ["PartNumber": 2, "ETag": etags[2]!.trimmingCharacters(in: CharacterSet(charactersIn: "\""))]]
            let done = try await s.send("POST", "/v1/uploads/\(token)/complete", json: ["parts": parts])
            #expect(done.status == 200)
            expectNodeShape(done.object.obj("node"))
            #expect(done.object.obj("node").int("size") == p1.count + p2.count)
            #expect(done.object.int("size") == p1.count + p2.count)
            let version = done.object.obj("version")
            #expect(version.str("nodeId") == id && version["isCurrent"] as? Bool == true && version.str("etag") != nil)

            let again = try await s.send("POST", "/v1/uploads/\(token)/complete", json: ["parts": parts])
            #expect(again.status == 200)
            #expect(again.object.obj("version").int("id") == version.int("id"))
            #expect(again.object.obj("node").str("id") == id)

            let got = try await s.download(id)
            #expect(got.status == 200 && got.data == p1 + p2)
            let meta = try await s.send("GET", "/v1/nodes/\(id)")
            #expect(meta.object.obj("version").str("etag") == version.str("etag"))

            // A new version through nodeId replaces the content and bumps updatedAt's version.
            let (v2, same) = try await s.upload(nodeId: id, parts: [Data("second".utf8)])
            #expect(same == id && v2.status == 200)
            #expect(v2.object.obj("version").int("id") != version.int("id"))
            #expect(try await s.download(id).data == Data("second".utf8))

            // Unknown tokens and bad part numbers.
            #expect(try await s.send("POST", "/v1/uploads/ut_nope/part?partNumber=1").object.str("code") == "UPLOAD_NOT_FOUND")
            #expect(try await s.send("POST", "/v1/uploads/\(token)/part?partNumber=1").status == 404)
        }
    }

    @Test func emptyFileIsOneZeroBytePart() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let (done, id) = try await s.upload(name: "empty", parent: root, parts: [Data()])
            #expect(done.status == 200 && done.object.int("size") == 0)
            let dl = try await s.send("GET", "/v1/nodes/\(id)/download")
            #expect(dl.status == 200 && dl.object.int("size") == 0)
            #expect(try await s.download(id).data.isEmpty)
        }
    }

    @Test func singlePutCommitAndAbort() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let content = pattern(5000, seed: 9)
            let start = try await s.send("POST", "/v1/uploads/init",
                                         json: ["parentId": root, "name": "one.bin", "size": content.count, "multipart": false])
            let id = start.object.str("nodeId")!
            let put = try await s.send("PUT", start.object.str("uploadUrl")!, body: content)
            #expect(put.status == 200)
            let commit = try await s.send("POST", "/v1/uploads/commit",
                                          json: ["uploadToken": start.object.str("uploadToken")!, "etag": put.header("ETag")!, "size": content.count])
            #expect(commit.status == 200 && commit.object.obj("node").int("size") == content.count)
            #expect(try await s.download(id).data == content)

            // Abort of a new file's upload removes its pending node.
            let doomed = try await s.send("POST", "/v1/uploads/init", json: ["parentId": root, "name": "doomed", "size": 0, "multipart": true])
            let doomedId = doomed.object.str("nodeId")!
            #expect(try await s.send("DELETE", "/v1/uploads/\(doomed.object.str("uploadToken")!)").status == 204)
            #expect(try await s.send("GET", "/v1/nodes/\(doomedId)").status == 404)

            // Abort of a new version keeps the old one.
            let over = try await s.send("POST", "/v1/uploads/init", json: ["nodeId": id, "size": 0, "multipart": true])
            #expect(try await s.send("DELETE", "/v1/uploads/\(over.object.str("uploadToken")!)").status == 204)
            #expect(try await s.download(id).data == content)
            #expect(try await s.send("DELETE", "/v1/uploads/ut_unknown").status == 404)
        }
    }

    @Test func quotaExceededIs402() async throws {
        try await withServer(args: ["--quota-bytes", "100"]) { s in
            let root = try await s.rootId()
            let tooBig = try await s.send("POST", "/v1/uploads/init", json: ["parentId": root, "name": "a", "size": 500, "multipart": true])
            #expect(tooBig.status == 402 && tooBig.object.str("code") == "QUOTA_EXCEEDED")
            let (ok, _) = try await s.upload(name: "b", parent: root, parts: [pattern(60, seed: 1)])
            #expect(ok.status == 200)
            let (over, _) = try await s.upload(name: "c", parent: root, parts: [pattern(60, seed: 2)])
            #expect(over.status == 402 && over.object.str("code") == "QUOTA_EXCEEDED")
        }
    }

    @Test func signedURLsRefuseBadAndExpiredSignatures() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let (_, id) = try await s.upload(name: "f", parent: root, parts: [Data("payload".utf8)])
            let url = try await s.send("GET", "/v1/nodes/\(id)/download").object.str("url")!
            #expect(try await s.send("GET", url).status == 200)
            var comps = URLComponents(string: url)!
            comps.queryItems = comps.queryItems!.map { $0.name == "sig" ? URLQueryItem(name: "sig", value: String(repeating: "0", count: 64)) : $0 }
            #expect(try await s.send("GET", comps.string!).status == 403)
            comps = URLComponents(string: url)!
            comps.queryItems = comps.queryItems!.map { $0.name == "expires" ? URLQueryItem(name: "expires", value: String(Int(($0.value.flatMap(Int.init) ?? 0) + 100))) : $0 }
            #expect(try await s.send("GET", comps.string!).status == 403)
            // A GET URL is not a PUT URL.
            #expect(try await s.send("PUT", url, body: Data("x".utf8)).status == 403)

            try await s.setFaults(["urlTTLSeconds": 1])
            let short = try await s.send("GET", "/v1/nodes/\(id)/download")
            #expect(short.object.int("expiresIn") == 1)
            try await Task.sleep(for: .milliseconds(2100))
            #expect(try await s.send("GET", short.object.str("url")!).status == 403)
        }
    }

    @Test func rangedGets() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let content = pattern(1000, seed: 3)
            let (_, id) = try await s.upload(name: "r", parent: root, parts: [content])
            let mid = try await s.download(id, range: "bytes=10-19")
            #expect(mid.status == 206 && mid.data == content[10...19])
            #expect(mid.header("Content-Range") == "bytes 10-19/1000")
            let tail = try await s.download(id, range: "bytes=990-")
            #expect(tail.status == 206 && tail.data == content[990...])
            let suffix = try await s.download(id, range: "bytes=-5")
            #expect(suffix.data == content[995...])
            let clipped = try await s.download(id, range: "bytes=995-5000")
            #expect(clipped.status == 206 && clipped.header("Content-Range") == "bytes 995-999/1000")
            let outside = try await s.download(id, range: "bytes=1000-1010")
            #expect(outside.status == 416)
            #expect(try await s.download(id).status == 200)

            try await s.setFaults(["ignoreRange": true])
            let ignored = try await s.download(id, range: "bytes=10-19")
            #expect(ignored.status == 200 && ignored.data == content)
        }
    }

    @Test func concurrentCompletesMakeOneVersion() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let start = try await s.send("POST", "/v1/uploads/init", json: ["parentId": root, "name": "c", "multipart": true])
            let token = start.object.str("uploadToken")!
            let url = try await s.send("POST", "/v1/uploads/\(token)/part?partNumber=1").object.str("url")!
            let etag = try await s.send("PUT", url, body: pattern(4096, seed: 4)).header("ETag")!
            let body: [String: Any] = ["parts": [["PartNumber": 1, "ETag": etag]]]
            async let a = s.send("POST", "/v1/uploads/\(token)/complete", json: body)
            async let b = s.send("POST", "/v1/uploads/\(token)/complete", json: body)
            let (ra, rb) = try await (a, b)
            #expect(ra.status == 200 && rb.status == 200)
            #expect(ra.object.obj("version").int("id") == rb.object.obj("version").int("id"))
        }
    }

    @Test func oldVersionsArePrunedButThePreviousStaysReadable() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let (_, id) = try await s.upload(name: "v", parent: root, parts: [Data("one".utf8)])
            let firstURL = try await s.send("GET", "/v1/nodes/\(id)/download").object.str("url")!
            _ = try await s.upload(nodeId: id, parts: [Data("two".utf8)])
            let secondURL = try await s.send("GET", "/v1/nodes/\(id)/download").object.str("url")!
            #expect(try await s.send("GET", firstURL).data == Data("one".utf8))
            _ = try await s.upload(nodeId: id, parts: [Data("three".utf8)])
            #expect(try await s.send("GET", firstURL).status == 404)
            #expect(try await s.send("GET", secondURL).data == Data("two".utf8))
            #expect(try await s.download(id).data == Data("three".utf8))
        }
    }

    /// libcurl sends `Expect: 100-continue` on large PUTs; the store must answer 100 before the body.
    @Test func putAnswers100ContinueBeforeTheBody() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let start = try await s.send("POST", "/v1/uploads/init", json: ["parentId": root, "name": "e", "multipart": true])
            let token = start.object.str("uploadToken")!
            let url = URLComponents(string: try await s.send("POST", "/v1/uploads/\(token)/part?partNumber=1").object.str("url")!)!
            let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
            defer { close(fd) }
            var addr = sockaddr_in()
            addr.sin_family = sa_family_t(AF_INET)
            addr.sin_addr.s_addr = inet_addr("127.0.0.1")
            addr.sin_port = UInt16(s.port).bigEndian
            let connected = withUnsafePointer(to: &addr) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0 }
            }
            #expect(connected)
            var tv = timeval(tv_sec: 30, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, socklen_t(MemoryLayout<timeval>.size))
            let head = "PUT \(url.percentEncodedPath)?\(url.percentEncodedQuery!) HTTP/1.1\r\nHost: 127.0.0.1:\(s.port)\r\n" +
                "Content-Length: 5\r\nExpect: 100-continue\r\n\r\n"
            _ = head.withCString { send(fd, $0, strlen($0), 0) }
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = recv(fd, &buffer, buffer.count, 0)
            let interim = String(decoding: buffer.prefix(max(n, 0)), as: UTF8.self)
            #expect(interim.hasPrefix("HTTP/1.1 100"))
            _ = "hello".withCString { send(fd, $0, 5, 0) }
            var answer = interim
            while !answer.contains("200 OK") {
                let m = recv(fd, &buffer, buffer.count, 0)
                if m <= 0 { break }
                answer += String(decoding: buffer.prefix(m), as: UTF8.self)
            }
            #expect(answer.contains("HTTP/1.1 200"))
            // The ETag is the first 128 bits of the body's SHA-256 ("hello"), not S3's MD5.
            #expect(answer.lowercased().contains("etag: \"2cf24dba5fb0a30e26e83b2ac5b9e29e\""))
        }
    }
}
