// roset-server: the local Roset control plane (protocol in docs/PROTOCOL.md, command line in
// roset-server(1)).
//
// README
// ------
// Command line (every test relies on it):
//   roset-server [--data DIR] [--listen HOST:PORT] [--apikey-file FILE] [--mount NAME]...
//                [--backend local|s3] [--s3-endpoint URL --s3-bucket NAME --s3-region REGION]
//                [--quota-bytes N] [--admin-token-file FILE] [--url-ttl SECONDS]
//                [--fault-latency-ms CLASS=MS]... [--fault-error-rate CLASS=RATE]...
//                [--fault-drop-rate CLASS=RATE]... [--fault-malformed-rate control=RATE]
//                [--fault-error-statuses 500,503,429] [--fault-retry-after SECONDS] [--fault-ignore-range]
//   - DIR (default $XDG_STATE_HOME/roset/server, else ~/.local/state/roset/server) is created if
//     needed; it holds roset.sqlite (metadata), blobs/ (local backend), signing-key, admin-token,
//     and the key file DIR/apikey (mode 0600, one line = one key for the default mount) when no
//     key file exists yet. --apikey-file FILE uses FILE instead (created the same way if missing).
//   - Key file lines: `KEY` (any mount) or `KEY MOUNT_ID` (that mount only); `#` starts a comment.
//   - --listen defaults to 127.0.0.1:8787; port 0 picks a free port. Once listening the server
//     prints exactly one stdout line `roset-server listening on http://HOST:PORT` and flushes it.
//     The key FILE path (never the key) goes to stderr. GET /healthz answers 200 once ready.
//   - The default mount has the id `default`; --mount NAME (repeatable) creates another mount with
//     the id NAME. SIGINT/SIGTERM stop the server cleanly.
//   - --backend s3 keeps bytes in an S3-compatible bucket (path-style; credentials from
//     AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY; the bucket is created when missing).
//   - CLASS is control (/v1/*), download (blob GETs), upload (blob PUTs) or all.
//
// Fault injection, also at run time: GET/PUT /admin/faults with `Authorization: Bearer <admin
// token>` (from --admin-token-file, else DATA/admin-token, mode 0600). PUT merges the keys given:
//   {"latencyMs": {"control": 0, "download": 0, "upload": 0},
//    "errorRate": {"control": 0.0, "download": 0.0, "upload": 0.0},   // status picked from errorStatuses
//    "errorStatuses": [500, 503, 429], "retryAfterSeconds": 1,          // 429/503 carry Retry-After
//    "dropRate": {"control": 0.0, "download": 0.0, "upload": 0.0},     // connection closed mid-answer
//    "malformedRate": {"control": 0.0},                                // 200 with a body that is not JSON
//    "ignoreRange": false,                                             // ranged GETs answer 200 + whole body
//    "urlTTLSeconds": 3600}                                            // signed URL lifetime, both backends
// GET /admin/stats (same token) returns counters: requests.control/download/upload,
// idempotentReplays, nodesCreated, connectionsAccepted, faults.errors/drops/malformed.
//
// Fault classes download/upload act on the local store's /blob/ URLs only; with --backend s3 the
// bytes never pass through this server, so only control faults and urlTTLSeconds apply.
//
// Server decisions:
// - DELETE of a non-empty folder is allowed and soft-deletes the whole subtree (the filesystem
//   checks emptiness itself); the mount root cannot be deleted, renamed or moved (400).
// - An injected control-plane drop happens after the handler ran, so Idempotency-Key replays can
//   be tested. Idempotency-Key records are scoped by API key, method and path+query, kept a day;
//   concurrent requests with one key are serialised, as are concurrent completes of one upload.
// - Each upload writes a fresh object; completing it makes that object the current version. The
//   previous version's bytes stay readable (open readers keep working); older ones are deleted.
// - Blob PUTs answer `Expect: 100-continue` at once (libcurl otherwise stalls 1 s per PUT).
// - Timestamps are RFC 3339 UTC with whole seconds; folder sizes are null; node ids are UUIDs;
//   mount ids are the --mount names; the tenant is `t_local`.
import Foundation
import Hummingbird
import RosetMetrics
import HummingbirdCore
import Logging
import NIOCore

public struct S3Settings: Sendable {
    public var endpoint: String
    public var bucket: String
    public var region: String
    public var accessKey: String
    public var secretKey: String

    public init(endpoint: String, bucket: String, region: String, accessKey: String, secretKey: String) {
        self.endpoint = endpoint; self.bucket = bucket; self.region = region
        self.accessKey = accessKey; self.secretKey = secretKey
    }
}

public struct ServerConfiguration: Sendable {
    public var dataDirectory: URL
    public var host = "127.0.0.1"
    public var port = 8787
    public var apiKeyFile: URL?
    /// Mount ids; the first is the default (the CLI always puts `default` first).
    public var mounts: [String] = ["default"]
    public var s3: S3Settings?
    public var quotaBytes: Int64?
    public var adminTokenFile: URL?
    public var faults = FaultSettings()

    public init(dataDirectory: URL) { self.dataDirectory = dataDirectory }

    /// $XDG_STATE_HOME/roset/server, ~/.local/state/roset/server, or /var/lib/roset/server for root
    /// without a home.
    public static var defaultDataDirectory: URL {
        let env = ProcessInfo.processInfo.environment
        if let state = env["XDG_STATE_HOME"], !state.isEmpty {
            return URL(fileURLWithPath: state).appendingPathComponent("roset/server")
        }
        if let home = env["HOME"], !home.isEmpty {
            return URL(fileURLWithPath: home).appendingPathComponent(".local/state/roset/server")
        }
        return URL(fileURLWithPath: "/var/lib/roset/server")
    }
}

public enum RosetServer {
    /// Prepares the data folder and serves until SIGINT/SIGTERM. `onListening` gets the bound port.
    public static func run(_ config: ServerConfiguration, logger: Logger,
                           onListening: @escaping @Sendable (Int) -> Void) async throws {
        let data = config.dataDirectory
        try FileManager.default.createDirectory(at: data, withIntermediateDirectories: true,
                                                attributes: [.posixPermissions: 0o700])
        let keyFile = config.apiKeyFile ?? data.appendingPathComponent("apikey")
        let keys = APIKeys(fileContents: try SecretFile.readOrCreate(keyFile, make: { "rk_" + Hex.random(bytes: 24) }))
        if keys.keys.isEmpty { throw APIError(500, "INVALID_REQUEST", "key file \(keyFile.path) holds no keys") }
        let adminToken = try SecretFile.readOrCreate(config.adminTokenFile ?? data.appendingPathComponent("admin-token"),
                                                     make: { Hex.random(bytes: 24) })
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let signingSecret = try SecretFile.readOrCreate(data.appendingPathComponent("signing-key"), make: { Hex.random(bytes: 32) })
        FileHandle.standardError.write(Data("roset-server: data in \(data.path); API key file: \(keyFile.path)\n".utf8))

        let store = try MetadataStore(path: data.appendingPathComponent("roset.sqlite").path)
        try store.ensureMounts(config.mounts, defaultId: config.mounts[0])
        let faults = FaultController(config.faults)

        let router = Router(context: BasicRequestContext.self)
        // Request counts and times (Hummingbird's MetricsMiddleware) in Prometheus' text format.
        let metrics = ServerMetrics.export
        router.add(middleware: MetricsMiddleware())
        router.get("/metrics") { _, _ in metrics.render() }
        router.get("/healthz") { _, _ in "ok" }
        let backend: BlobBackend
        if let s3 = config.s3 {
            let s3Store = S3BlobStore(settings: s3)
            try await s3Store.ensureBucket()
            backend = s3Store
        } else {
            let local = try LocalBlobStore(root: data.appendingPathComponent("blobs"),
                                           signer: URLSigner(secret: Data(signingSecret.utf8)))
            BlobRoutes(store: local, faults: faults).register(router)
            backend = local
        }
        let plane = ControlPlane(store: store, backend: backend, faults: faults, keys: keys, quotaBytes: config.quotaBytes,
                                 fallbackBase: "http://\(config.host):\(config.port)", logger: logger)
        plane.registerNodeRoutes(router)
        plane.registerUploadRoutes(router)
        AdminRoutes(token: adminToken, faults: faults).register(router)

        let app = Application(
            router: router,
            server: .http1(configuration: .init(additionalChannelHandlers: [ConnectionCounter(faults: faults), ExpectContinueHandler()])),
            configuration: .init(address: .hostname(config.host, port: config.port), serverName: nil),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? config.port) },
            logger: logger
        )
        try await app.runService()
    }
}

/// The process's one metrics export: swift-metrics is bootstrapped the first time a server runs
/// (a process may run several, as tests do).
enum ServerMetrics {
    static let export: PrometheusExport = {
        let export = PrometheusExport()
        export.bootstrap()
        return export
    }()
}

/// Small secret files (keys, tokens): created with mode 0600 when missing, never logged.
enum SecretFile {
    static func readOrCreate(_ url: URL, make: () -> String) throws -> String {
        if let text = try? String(contentsOf: url, encoding: .utf8) { return text }
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        let text = make() + "\n"
        let fd = open(url.path, O_WRONLY | O_CREAT | O_EXCL, 0o600)
        guard fd >= 0 else {
            // Lost a race with another creator: use what it wrote.
            if let existing = try? String(contentsOf: url, encoding: .utf8) { return existing }
            throw APIError(500, "INTERNAL_ERROR", "cannot create \(url.path)")
        }
        defer { close(fd) }
        let bytes = Array(text.utf8)
        guard write(fd, bytes, bytes.count) == bytes.count else { throw APIError(500, "INTERNAL_ERROR", "cannot write \(url.path)") }
        return text
    }
}
