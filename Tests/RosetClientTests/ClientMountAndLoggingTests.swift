// Mount selection (body field and X-Roset-Mount-Id), a key bound to another mount (403 →
// EACCES), and the client's own log lines: every request logged, nothing secret in them.
import Foundation
import Logging
import Testing
import RosetClient
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

/// A LogHandler that keeps every line, for asserting on the client's logging.
final class CapturedLog: @unchecked Sendable {
    private let lock = NSLock()
    private var lines: [String] = []
    func append(_ line: String) { lock.withLock { lines.append(line) } }
    var all: [String] { lock.withLock { lines } }

    struct Handler: LogHandler {
        let sink: CapturedLog
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] } set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            sink.append("\(event.level) \(event.message)")
        }
    }

    var logger: Logger { Logger(label: "captured") { _ in Handler(sink: self) } }
}

@Suite(.serialized, .enabled(if: ServerProcess.isAvailable, "\(Contract.serverMissing)"))
struct ClientMountAndLoggingTests {
    @Test func mountIdSelectsTheMountAndABoundKeyIsForbiddenElsewhere() throws {
        let keys = try TemporaryDirectory(prefix: "roset-keys")
        defer { keys.remove() }
        let keyFile = keys.url.appendingPathComponent("keys").path
        try "rk_any_key_0001\nrk_alpha_key_0002 alpha\n".write(toFile: keyFile, atomically: true, encoding: .utf8)
        try Contract.withServer(["--mount", "alpha", "--mount", "beta", "--apikey-file", keyFile]) { server in
            let beta = Contract.client(server, apiKey: "rk_any_key_0001", mountId: "beta")
            let alpha = Contract.client(server, apiKey: "rk_any_key_0001", mountId: "alpha")
            let betaRoot = try beta.resolveRoot()
            let alphaRoot = try alpha.resolveRoot()
            #expect(betaRoot.id != alphaRoot.id)
            let made = try beta.createFolder(name: "only-in-beta", parentId: betaRoot.id, metadata: nil)
            #expect(made.mountId == nil || made.mountId == "beta")
            let upload = try beta.initUpload(UploadRequest(parentId: betaRoot.id, name: "beta-file", size: 0, multipart: true))
            #expect(try beta.node(id: upload.nodeId).mountId.map { $0 == "beta" } ?? true)
            #expect(try beta.resolve(name: "only-in-beta", in: betaRoot.id)?.id == made.id)

            // A key bound to alpha may not use beta: 403 → EACCES, not a URL rejection.
            let bound = Contract.client(server, apiKey: "rk_alpha_key_0002", mountId: "beta")
            let denied = try #require(throws: RosetError.self) { try bound.resolveRoot() }
            #expect(denied.kind == .forbidden && denied.status == 403 && denied.errno == EACCES)
            let boundDefault = Contract.client(server, apiKey: "rk_alpha_key_0002")
            #expect(try boundDefault.resolveRoot().id == alphaRoot.id)
            let crossing = try #require(throws: RosetError.self) { try boundDefault.node(id: made.id) }
            #expect(crossing.kind == .forbidden)
            // An unknown mount id is not found.
            let nowhere = Contract.client(server, apiKey: "rk_any_key_0001", mountId: "gamma")
            #expect(throws: RosetError.self) { try nowhere.resolveRoot() }
        }
    }

    @Test func everyRequestIsLoggedWithoutSecrets() throws {
        try Contract.withServer { server in
            let log = CapturedLog()
            var logger = log.logger
            logger.logLevel = .debug
            let client = RosetAPIClient(configuration: ClientConfiguration(
                apiURL: server.baseURL, apiKey: server.apiKey, maxAttempts: 3, backoffBase: 0.001,
                backoffCap: 0.01, logger: logger))
            let root = try client.resolveRoot()
            let file = try Contract.RandomFile(size: 100_000)
            let node = try Contract.upload(client, file: file, name: "logged.bin", parentId: root.id, partSize: 1 << 20)
            let grant = try client.download(id: node.id)
            var buffer = [UInt8](repeating: 0, count: 100)
            _ = try buffer.withUnsafeMutableBytes { try client.read(url: grant.url, offset: 0, into: $0) }
            try server.setFaults(#"{"errorRate":{"control":1.0},"errorStatuses":[503],"retryAfterSeconds":0}"#)
            _ = try? client.node(id: root.id)

            let lines = log.all
            let signature = grant.url.components(separatedBy: "sig=").last ?? "<none>"
            #expect(grant.url.contains("sig=") && signature.count > 8)
            #expect(lines.contains { $0.contains("GET") && $0.contains("sig=REDACTED") && $0.contains("206") })
            #expect(lines.contains { $0.contains("PUT") && $0.contains("sig=REDACTED") })
            #expect(lines.contains { $0.contains("/v1/resolve") && $0.contains("200") })
            #expect(lines.contains { $0.contains("503") && $0.contains("attempt 3") })
            #expect(lines.allSatisfy { !$0.contains(server.apiKey) && !$0.contains(signature) })
        }
    }
}
