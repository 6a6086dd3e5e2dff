// The local blob store keeps a multipart object of several parts as a folder of its part files
// (moved at complete, never concatenated); GET, whole and ranged, reads across them. Checked
// against the real binary: the bytes of every kind of range, the folder on disk, the parts folder
// gone after complete, the folder gone once the version is pruned, and a one-part upload still
// stored as a plain file.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

@Suite(.serialized)
struct MultipartObjectTests {
    /// The storage key ("<mount>/<node>/<object>") behind a node's current version, from its signed GET URL.
    static func storageKey(_ s: TestServer, _ nodeId: String) async throws -> String {
        let grant = try await s.send("GET", "/v1/nodes/\(nodeId)/download")
        let url = try #require(grant.object.str("url").flatMap { URLComponents(string: $0) })
        let prefix = "/blob/o/"
        try #require(url.path.hasPrefix(prefix), "a local-store URL: \(url)")
        return String(url.path.dropFirst(prefix.count))
    }

    static func blobs(_ s: TestServer) -> String { s.dataDir.path + "/data/blobs" }

    static func isFolder(_ path: String) -> Bool? {
        var folder: ObjCBool = false
        return FileManager.default.fileExists(atPath: path, isDirectory: &folder) ? folder.boolValue : nil
    }

    static func listing(_ path: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).sorted()
    }

    @Test func aThreePartObjectIsAFolderOfPartsAndReadsAcrossThem() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            // The server sets no minimum part size. The first part is larger than the 1 MiB chunk
            // GET reads in, so a chunk crosses a part boundary too.
            let p1 = pattern(1_500_000, seed: 1), p2 = pattern(1_100_003, seed: 2), p3 = pattern(4321, seed: 3)
            let whole = p1 + p2 + p3
            let total = whole.count
            let (done, id) = try await s.upload(name: "three.bin", parent: root, parts: [p1, p2, p3])
            #expect(done.status == 200)
            #expect(done.object.int("size") == total)
            #expect(done.object.obj("version").str("etag")?.hasSuffix("-3") == true, "an S3-style multipart ETag")

            // Whole object.
            let all = try await s.download(id)
            #expect(all.status == 200)
            #expect(all.data.count == total)
            #expect(all.data == whole, "the whole GET is the parts in order")
            #expect(all.header("Content-Length") == String(total))

            // Ranges: (header, first byte, last byte).
            let b1 = p1.count, b2 = p1.count + p2.count
            let ranges: [(String, Int, Int)] = [
                ("bytes=\(b1 - 10)-\(b1 + 9)", b1 - 10, b1 + 9),            // across the boundary of parts 1 and 2
                ("bytes=\(b2 - 1)-\(b2)", b2 - 1, b2),                      // the last byte of part 2, the first of part 3
                ("bytes=\(b1)-\(b1 + 99)", b1, b1 + 99),                    // starts exactly at part 2
                ("bytes=\(b1 - 100)-\(b1 - 1)", b1 - 100, b1 - 1),          // ends exactly at the end of part 1
                ("bytes=\(b1 - 5)-\(b2 + 5)", b1 - 5, b2 + 5),              // starts in part 1, ends in part 3
                ("bytes=1000000-1100000", 1_000_000, 1_100_000),            // inside part 1 only
                ("bytes=\(b2 - 3)-", b2 - 3, total - 1),                    // open end, from part 2
                ("bytes=\(total - 1)-\(total - 1)", total - 1, total - 1),  // the last byte
                ("bytes=\(total - 10)-\(total + 500)", total - 10, total - 1),  // clipped at the end
                ("bytes=-5000", total - 5000, total - 1),                   // suffix longer than part 3
                ("bytes=-1", total - 1, total - 1),                         // suffix of one byte
                ("bytes=0-0", 0, 0),
            ]
            for (header, first, last) in ranges {
                let got = try await s.download(id, range: header)
                #expect(got.status == 206, "\(header)")
                #expect(got.header("Content-Range") == "bytes \(first)-\(last)/\(total)", "\(header)")
                #expect(got.data.count == last - first + 1, "\(header)")
                #expect(got.data == whole[first...last], "\(header): the right bytes")
            }
            let outside = try await s.download(id, range: "bytes=\(total)-")
            #expect(outside.status == 416)
            #expect(outside.header("Content-Range") == "bytes */\(total)")

            // On disk: a folder of three part files, in order and of the parts' sizes; no parts folder.
            let key = try await Self.storageKey(s, id)
            let object = Self.blobs(s) + "/objects/" + key
            #expect(Self.isFolder(object) == true, "the object is a folder")
            #expect(Self.listing(object) == ["part-00001", "part-00002", "part-00003"])
            for (name, part) in zip(["part-00001", "part-00002", "part-00003"], [p1, p2, p3]) {
                #expect(FileManager.default.contents(atPath: object + "/" + name) == part, "\(name) holds its part")
            }
            #expect(FileManager.default.fileExists(atPath: object + ".etag"))
            let partsFolder = Self.blobs(s) + "/parts/" + key.replacingOccurrences(of: "/", with: "_")
            #expect(Self.isFolder(partsFolder) == nil, "the uploaded parts were moved, their folder is gone")
            #expect(Self.listing(Self.blobs(s) + "/parts").isEmpty)
            #expect(Self.listing(Self.blobs(s) + "/tmp").isEmpty, "nothing left in tmp/")

            // Two newer versions: the first is pruned, and its folder with it.
            let (v2, _) = try await s.upload(nodeId: id, parts: [Data("two".utf8)])
            #expect(v2.status == 200)
            #expect(Self.isFolder(object) == true, "the previous version stays for readers still on it")
            let (v3, _) = try await s.upload(nodeId: id, parts: [pattern(2000, seed: 4), pattern(10, seed: 5)])
            #expect(v3.status == 200)
            #expect(Self.isFolder(object) == nil, "the pruned version's folder is removed")
            #expect(!FileManager.default.fileExists(atPath: object + ".etag"))
            #expect(try await s.download(id).data == pattern(2000, seed: 4) + pattern(10, seed: 5))
        }
    }

    @Test func aRepeatedCompleteOfAFolderObjectAnswersTheSameVersion() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let start = try await s.send("POST", "/v1/uploads/init", json: ["parentId": root, "name": "again.bin", "size": 0, "multipart": true])
            let token = try #require(start.object.str("uploadToken"))
            let id = try #require(start.object.str("nodeId"))
            // Part numbers with a gap, sent out of order: the object is the listed parts in number order.
            let parts = [(7, pattern(3000, seed: 7)), (2, pattern(5000, seed: 2)), (4, pattern(1, seed: 4))]
            var list: [[String: Any]] = []
            for (n, data) in parts {
                let grant = try await s.send("POST", "/v1/uploads/\(token)/part?partNumber=\(n)")
                let url = try #require(grant.object.str("url"))
                let put = try await s.send("PUT", url, body: data)
                #expect(put.status == 200)
                list.append(["PartNumber": n, "ETag": put.header("ETag") ?? ""])
            }
            let first = try await s.send("POST", "/v1/uploads/\(token)/complete", json: ["parts": list])
            #expect(first.status == 200)
            let second = try await s.send("POST", "/v1/uploads/\(token)/complete", json: ["parts": list])
            #expect(second.status == 200)
            #expect(second.object.obj("version").int("id") == first.object.obj("version").int("id"))
            let whole = pattern(5000, seed: 2) + pattern(1, seed: 4) + pattern(3000, seed: 7)
            #expect(try await s.download(id).data == whole)
            let ranged = try await s.download(id, range: "bytes=4999-5001")
            #expect(ranged.status == 206 && ranged.data == whole[4999...5001])
            #expect(ranged.header("Content-Range") == "bytes 4999-5001/8001")
            let key = try await Self.storageKey(s, id)
            #expect(Self.listing(Self.blobs(s) + "/objects/" + key) == ["part-00001", "part-00002", "part-00003"])
        }
    }

    @Test func aOnePartMultipartUploadIsStoredAsAFile() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            let content = pattern(100_000, seed: 8)
            let (done, id) = try await s.upload(name: "one.bin", parent: root, parts: [content])
            #expect(done.status == 200 && done.object.int("size") == content.count)
            let key = try await Self.storageKey(s, id)
            let object = Self.blobs(s) + "/objects/" + key
            #expect(Self.isFolder(object) == false, "a single part is the object file itself")
            #expect(FileManager.default.contents(atPath: object) == content)
            #expect(Self.listing(Self.blobs(s) + "/parts").isEmpty)
            let all = try await s.download(id)
            #expect(all.status == 200 && all.data == content)
            let tail = try await s.download(id, range: "bytes=-7")
            #expect(tail.status == 206 && tail.data == content[(content.count - 7)...])
            #expect(tail.header("Content-Range") == "bytes \(content.count - 7)-\(content.count - 1)/\(content.count)")
            let mid = try await s.download(id, range: "bytes=500-599")
            #expect(mid.status == 206 && mid.data == content[500...599])
        }
    }
}
