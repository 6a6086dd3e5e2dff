// RosetAPIClient against a real roset-server over loopback: every endpoint, every error path,
// retries under injected faults, signed-URL expiry and refresh, a store that ignores Range.
// Skipped (with a message) only when no roset-server binary can be found.
import Foundation
import Testing
import RosetClient
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .enabled(if: ServerProcess.isAvailable, "\(Contract.serverMissing)"))
struct ClientContractTests {
    // MARK: Namespace

    @Test func resolveRootAndGetNode() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            #expect(root.type == .folder)
            let again = try client.node(id: root.id)
            #expect(again.id == root.id && again.type == .folder)
        }
    }

    @Test func badKeyIsUnauthorizedEACCES() throws {
        try Contract.withServer { server in
            let client = Contract.client(server, apiKey: "rk_definitely_not_valid")
            let error = try #require(throws: RosetError.self) { try client.resolveRoot() }
            #expect(error.kind == .unauthorized && error.status == 401 && error.errno == EACCES)
            #expect(!error.description.contains("rk_definitely_not_valid"))
        }
    }

    @Test func missingNodeIsNotFoundENOENT() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let error = try #require(throws: RosetError.self) { try client.node(id: UUID().uuidString.lowercased()) }
            #expect(error.kind == .notFound && error.errno == ENOENT && error.endpoint == "GET /v1/nodes/{id}")
            #expect(try client.resolve(name: "no-such-name", in: root.id) == nil)
        }
    }

    @Test func createResolveAndNameConflictEEXIST() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let made = try client.createFolder(name: "docs", parentId: root.id, metadata: ["xattr.user.a": .string("1")])
            #expect(made.name == "docs" && made.type == .folder && made.parentId == root.id)
            #expect(made.metadata["xattr.user.a"] == .string("1"))
            let found = try #require(try client.resolve(name: "docs", in: root.id))
            #expect(found.id == made.id)
            let clash = try #require(throws: RosetError.self) {
                try client.createFolder(name: "docs", parentId: root.id, metadata: nil)
            }
            #expect(clash.kind == .nameConflict && clash.errno == EEXIST && clash.status == 409)
            #expect(clash.existingNodeId == made.id)
        }
    }

    @Test func updateRenamesMovesAndMergesMetadata() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let a = try client.createFolder(name: "a", parentId: root.id, metadata: ["keep": .string("k"), "drop": .string("d")])
            let b = try client.createFolder(name: "b", parentId: root.id, metadata: nil)
            let renamed = try client.updateNode(id: a.id, parentId: nil, name: "a2", metadata: nil)
            #expect(renamed.name == "a2" && renamed.id == a.id)
            let moved = try client.updateNode(id: a.id, parentId: b.id, name: nil, metadata: nil)
            #expect(moved.parentId == b.id)
            #expect(try client.resolve(name: "a2", in: b.id)?.id == a.id)
            #expect(try client.resolve(name: "a2", in: root.id) == nil)
            let merged = try client.updateNode(id: a.id, parentId: nil, name: nil,
                                               metadata: ["drop": .null, "new": .number(2)])
            #expect(merged.metadata["keep"] == .string("k"))
            #expect(merged.metadata["drop"] == nil)
            #expect(merged.metadata["new"] == .number(2))
            // b into its own subtree (a is inside b, so move b under a): a cycle.
            let cycle = try #require(throws: RosetError.self) {
                try client.updateNode(id: b.id, parentId: a.id, name: nil, metadata: nil)
            }
            #expect(cycle.kind == .badRequest && cycle.code == "CYCLE_DETECTED" && cycle.errno == EIO)
            // A rename onto an existing name is a conflict.
            _ = try client.createFolder(name: "taken", parentId: b.id, metadata: nil)
            let clash = try #require(throws: RosetError.self) {
                try client.updateNode(id: a.id, parentId: nil, name: "taken", metadata: nil)
            }
            #expect(clash.kind == .nameConflict)
        }
    }

    @Test func deleteIsVisible() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let f = try client.createFolder(name: "gone", parentId: root.id, metadata: nil)
            try client.deleteNode(id: f.id)
            #expect(try client.resolve(name: "gone", in: root.id) == nil)
            #expect(try client.children(of: root.id).allSatisfy { $0.id != f.id })
            let error = try #require(throws: RosetError.self) { try client.deleteNode(id: UUID().uuidString.lowercased()) }
            #expect(error.kind == .notFound)
        }
    }

    @Test func childrenArePagedPastAThousandOnFewConnections() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let dir = try client.createFolder(name: "many", parentId: root.id, metadata: nil)
            let before = client.transferStatistics
            var ids = Set<String>()
            for i in 0..<1_100 {
                ids.insert(try client.createFolder(name: "d\(i)", parentId: dir.id, metadata: nil).id)
            }
            let listed = try client.children(of: dir.id)
            #expect(listed.count == 1_100)
            #expect(Set(listed.map(\.id)) == ids)
            #expect(listed.allSatisfy { $0.parentId == dir.id })
            // 1,100+ sequential requests: connections are reused, not opened per request.
            let after = client.transferStatistics
            #expect(after.requests - before.requests >= 1_102)
            #expect(after.connectionsOpened - before.connectionsOpened <= 3)
        }
    }

    @Test func manifestListsImmediateChildren() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let dir = try client.createFolder(name: "sealed", parentId: root.id, metadata: nil)
            let sub = try client.createFolder(name: "sub", parentId: dir.id, metadata: nil)
            _ = try client.createFolder(name: "deeper", parentId: sub.id, metadata: nil)
            _ = try client.createFolder(name: "other", parentId: dir.id, metadata: nil)
            let manifest = try client.manifest(of: dir.id)
            #expect(Set(manifest.map(\.name)) == ["sub", "other"])
        }
    }

    // MARK: Uploads and downloads

    @Test func multipartUploadDownloadRoundTrip() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let file = try Contract.RandomFile(size: 11 << 20)
            let node = try Contract.upload(client, file: file, name: "blob.bin", parentId: root.id, partSize: 5 << 20)
            #expect(node.size == Int64(file.data.count) && node.type == .file && node.name == "blob.bin")
            let reader = try SignedURLReader(nodeId: node.id, controlPlane: client, store: client)
            #expect(reader.size == Int64(file.data.count))
            let back = try Contract.readAll(reader, chunk: 3 << 20)
            #expect(try Contract.sha256(back) == (try Contract.sha256(file.data)))
            // A pending node is visible after init, with size 0.
            let pending = try client.initUpload(UploadRequest(parentId: root.id, name: "pending", size: 0, multipart: true))
            let seen = try client.node(id: pending.nodeId)
            #expect(seen.size == 0 && seen.name == "pending")
            // Complete may be repeated.
            let url = try client.partUploadURL(token: pending.uploadToken, partNumber: 1)
            let etag = try client.write(url: url, fileDescriptor: file.fd, offset: 0, length: 0)
            let once = try client.completeUpload(token: pending.uploadToken, parts: [UploadedPart(partNumber: 1, etag: etag)])
            let twice = try client.completeUpload(token: pending.uploadToken, parts: [UploadedPart(partNumber: 1, etag: etag)])
            #expect(once.id == twice.id && once.size == 0)
        }
    }

    @Test func singlePutCommitAndAbort() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let file = try Contract.RandomFile(size: 300_000)
            let grant = try client.initUpload(UploadRequest(parentId: root.id, name: "single", size: Int64(file.data.count),
                                                            multipart: false, contentType: "application/octet-stream"))
            let url = try #require(grant.uploadURL)
            let etag = try client.write(url: url, fileDescriptor: file.fd, offset: 0, length: Int64(file.data.count))
            #expect(!etag.isEmpty && !etag.contains("\""))
            let node = try client.commitUpload(token: grant.uploadToken, etag: etag, size: Int64(file.data.count))
            #expect(node.size == Int64(file.data.count))

            let doomed = try client.initUpload(UploadRequest(parentId: root.id, name: "aborted", size: 0, multipart: true))
            try client.abortUpload(token: doomed.uploadToken)
            let error = try #require(throws: RosetError.self) { try client.partUploadURL(token: doomed.uploadToken, partNumber: 1) }
            #expect(error.kind == .notFound)
        }
    }

    @Test func rangedReadsAreExactAnd416Past() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let file = try Contract.RandomFile(size: 1_000_000)
            let node = try Contract.upload(client, file: file, name: "r.bin", parentId: root.id, partSize: 1 << 20)
            let grant = try client.download(id: node.id)
            var buffer = [UInt8](repeating: 0, count: 4096)
            let n = try buffer.withUnsafeMutableBytes { try client.read(url: grant.url, offset: 123_457, into: $0) }
            #expect(n == 4096 && Data(buffer) == file.data[123_457..<(123_457 + 4096)])
            // At the end: fewer bytes than asked.
            let tail = try buffer.withUnsafeMutableBytes { try client.read(url: grant.url, offset: 999_000, into: $0) }
            #expect(tail == 1000 && Data(buffer[0..<1000]) == file.data[999_000...])
            let past = try #require(throws: RosetError.self) {
                try buffer.withUnsafeMutableBytes { try client.read(url: grant.url, offset: 2_000_000, into: $0) }
            }
            #expect(past.kind == .rangeNotSatisfiable)
        }
    }

    @Test func storeIgnoringRangeIsSlicedToTheRange() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let file = try Contract.RandomFile(size: 3_000_000)
            let node = try Contract.upload(client, file: file, name: "whole.bin", parentId: root.id, partSize: 8 << 20)
            try server.setFaults(#"{"ignoreRange":true}"#)
            let grant = try client.download(id: node.id)
            for (offset, count) in [(0, 10), (1_234_567, 100_000), (2_999_990, 64)] {
                var buffer = [UInt8](repeating: 0, count: count)
                let n = try buffer.withUnsafeMutableBytes { try client.read(url: grant.url, offset: Int64(offset), into: $0) }
                let expected = file.data[offset..<min(offset + count, file.data.count)]
                #expect(n == expected.count)
                #expect(Data(buffer[0..<n]) == expected)
            }
        }
    }

    @Test func expiredURLIsRejectedThenRefreshed() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let file = try Contract.RandomFile(size: 200_000)
            let node = try Contract.upload(client, file: file, name: "exp.bin", parentId: root.id, partSize: 1 << 20)
            try server.setFaults(#"{"urlTTLSeconds":1}"#)
            let short = try client.download(id: node.id)
            Thread.sleep(forTimeInterval: 2.2)
            var buffer = [UInt8](repeating: 0, count: 1000)
            let rejected = try #require(throws: RosetError.self) {
                try buffer.withUnsafeMutableBytes { try client.read(url: short.url, offset: 0, into: $0) }
            }
            #expect(rejected.kind == .urlRejected && rejected.status == 403)
            #expect(!rejected.description.contains("sig="))   // redacted or absent

            // A reader holding the expired URL (believing it valid) refreshes on the 403.
            try server.setFaults(#"{"urlTTLSeconds":3600}"#)
            var lying = short
            lying.expiresAt = Date().addingTimeInterval(3600)
            let plane = StaleFirstGrant(real: client, staleGrant: lying)
            let reader = try SignedURLReader(nodeId: node.id, controlPlane: plane, store: client)
            let n = try buffer.withUnsafeMutableBytes { try reader.read(offset: 5000, into: $0) }
            #expect(n == 1000 && Data(buffer) == file.data[5000..<6000])
            #expect(plane.downloadCalls == 2)

            // A reader whose URL is about to expire refreshes before using it.
            try server.setFaults(#"{"urlTTLSeconds":1}"#)
            let counting = StaleFirstGrant(real: client, staleGrant: try client.download(id: node.id))
            let early = try SignedURLReader(nodeId: node.id, controlPlane: counting, store: client)
            Thread.sleep(forTimeInterval: 1.2)
            try server.setFaults(#"{"urlTTLSeconds":3600}"#)
            let m = try buffer.withUnsafeMutableBytes { try early.read(offset: 0, into: $0) }
            #expect(m == 1000 && Data(buffer) == file.data[0..<1000])
            #expect(counting.downloadCalls == 2)
        }
    }

    // MARK: Faults

    @Test func malformedJSONIsADecodingErrorNamingTheEndpoint() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            try server.setFaults(#"{"malformedRate":{"control":1.0}}"#)
            let e1 = try #require(throws: RosetError.self) { try client.node(id: root.id) }
            #expect(e1.kind == .decoding && e1.endpoint == "GET /v1/nodes/{id}" && e1.errno == EIO)
            let e2 = try #require(throws: RosetError.self) { try client.children(of: root.id) }
            #expect(e2.kind == .decoding && e2.endpoint == "GET /v1/nodes/{id}/children")
            let e3 = try #require(throws: RosetError.self) { try client.resolve(name: "x", in: root.id) }
            #expect(e3.kind == .decoding && e3.endpoint == "POST /v1/resolve")
            let e4 = try #require(throws: RosetError.self) { try client.download(id: root.id) }
            #expect(e4.kind == .decoding || e4.kind == .notFound)  // a folder has no content
        }
    }

    @Test func injected503sAreRetriedUntilSuccess() throws {
        try Contract.withServer { server in
            let client = Contract.client(server, maxAttempts: 20)
            let root = try client.resolveRoot()
            try server.setFaults(#"{"errorRate":{"control":0.5},"errorStatuses":[503],"retryAfterSeconds":0}"#)
            let before = client.transferStatistics.requests
            for _ in 0..<20 { #expect(try client.node(id: root.id).id == root.id) }
            // Some of those 20 calls needed more than one attempt (all 20 first tries passing: 2^-20).
            #expect(client.transferStatistics.requests - before > 20)
        }
    }

    @Test func persistent503EndsAsServerErrorAfterMaxAttempts() throws {
        try Contract.withServer { server in
            let client = Contract.client(server, maxAttempts: 4)
            let root = try client.resolveRoot()
            try server.setFaults(#"{"errorRate":{"control":1.0},"errorStatuses":[503],"retryAfterSeconds":0}"#)
            let before = client.transferStatistics.requests
            let error = try #require(throws: RosetError.self) { try client.node(id: root.id) }
            #expect(error.kind == .server && error.status == 503 && error.errno == EIO)
            #expect(client.transferStatistics.requests - before == 4)
        }
    }

    @Test func persistent429IsRateLimitedEAGAINAndHonoursRetryAfter() throws {
        try Contract.withServer { server in
            let client = Contract.client(server, maxAttempts: 2)
            let root = try client.resolveRoot()
            try server.setFaults(#"{"errorRate":{"control":1.0},"errorStatuses":[429],"retryAfterSeconds":1}"#)
            let started = Date()
            let error = try #require(throws: RosetError.self) { try client.node(id: root.id) }
            #expect(error.kind == .rateLimited && error.errno == EAGAIN)
            // One wait of Retry-After (1 s) between the two attempts, not the 5 ms backoff.
            #expect(Date().timeIntervalSince(started) >= 0.9)
        }
    }

    @Test func transfersSurviveInjectedErrorsAndDroppedConnections() throws {
        try Contract.withServer { server in
            let client = Contract.client(server, maxAttempts: 20)
            let root = try client.resolveRoot()
            try server.setFaults(#"{"errorRate":{"upload":0.4,"download":0.4},"dropRate":{"upload":0.2,"download":0.2},"errorStatuses":[500,503],"retryAfterSeconds":0}"#)
            let file = try Contract.RandomFile(size: 6 << 20)
            let node = try Contract.upload(client, file: file, name: "faulty.bin", parentId: root.id, partSize: 2 << 20)
            #expect(node.size == Int64(file.data.count))
            let reader = try SignedURLReader(nodeId: node.id, controlPlane: client, store: client)
            let back = try Contract.readAll(reader, chunk: 512 << 10)
            #expect(back == file.data)
        }
    }

    @Test func retriedPOSTsCreateNoDuplicates() throws {
        try Contract.withServer { server in
            let client = Contract.client(server, maxAttempts: 20)
            let root = try client.resolveRoot()
            let dir = try client.createFolder(name: "idem", parentId: root.id, metadata: nil)
            try server.setFaults(#"{"dropRate":{"control":0.3},"errorRate":{"control":0.2},"errorStatuses":[500,503],"retryAfterSeconds":0}"#)
            // A create whose answer was lost and that is retried without deduplication would
            // either fail with NAME_CONFLICT or leave a second node: neither may happen.
            for i in 0..<15 { _ = try client.createFolder(name: "f\(i)", parentId: dir.id, metadata: nil) }
            for i in 0..<15 {
                _ = try client.initUpload(UploadRequest(parentId: dir.id, name: "u\(i)", size: 0, multipart: true))
            }
            try server.clearFaults()
            let names = try client.children(of: dir.id).map(\.name)
            #expect(names.count == 30)
            #expect(Set(names) == Set((0..<15).map { "f\($0)" } + (0..<15).map { "u\($0)" }))
        }
    }

    @Test func concurrentCallersShareTheHandlePool() throws {
        try Contract.withServer { server in
            let client = Contract.client(server)
            let root = try client.resolveRoot()
            let before = client.transferStatistics
            let failures = Failures()
            let group = DispatchGroup()
            for _ in 0..<8 {
                group.enter()
                Thread {
                    defer { group.leave() }
                    for _ in 0..<40 {
                        do { if try client.node(id: root.id).id != root.id { failures.add("wrong node") } }
                        catch { failures.add("\(error)") }
                    }
                }.start()
            }
            group.wait()
            #expect(failures.all.isEmpty)
            let after = client.transferStatistics
            #expect(after.requests - before.requests == 320)
            // At most one connection per concurrent caller, not one per request.
            #expect(after.connectionsOpened - before.connectionsOpened <= 8)
        }
    }

    @Test func stalledAnswersTimeOutAsNetworkErrors() throws {
        try Contract.withServer { server in
            var configuration = ClientConfiguration(apiURL: server.baseURL, apiKey: server.apiKey, connectTimeout: 2,
                                                    lowSpeedLimit: 1024, lowSpeedTime: 1, requestTimeout: 1,
                                                    maxAttempts: 2, backoffBase: 0.001, backoffCap: 0.01)
            configuration.logger.logLevel = .critical
            let client = RosetAPIClient(configuration: configuration)
            let root = try client.resolveRoot()
            let file = try Contract.RandomFile(size: 10_000)
            let node = try Contract.upload(client, file: file, name: "slow.bin", parentId: root.id, partSize: 1 << 20)
            let grant = try client.download(id: node.id)
            try server.setFaults(#"{"latencyMs":{"control":4000,"download":4000}}"#)
            let control = try #require(throws: RosetError.self) { try client.node(id: root.id) }
            #expect(control.kind == .network && control.errno == EIO)
            var buffer = [UInt8](repeating: 0, count: 100)
            let read = try #require(throws: RosetError.self) {
                try buffer.withUnsafeMutableBytes { try client.read(url: grant.url, offset: 0, into: $0) }
            }
            #expect(read.kind == .network)
            #expect(!read.message.contains("sig=") || read.message.contains("sig=REDACTED"))
        }
    }
}

final class Failures: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    func add(_ s: String) { lock.withLock { items.append(s) } }
    var all: [String] { lock.withLock { items } }
}
