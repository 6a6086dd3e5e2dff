// `roset-server` command line; the contract is documented in Sources/RosetServer/RosetServer.swift.
// Invariant: stdout carries exactly one line, `roset-server listening on http://HOST:PORT`, flushed
// as soon as the socket is bound; everything else (logs, key file location) goes to stderr.
import ArgumentParser
import CMalloc
import Foundation
import Logging
import RosetServer

struct RosetServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "roset-server",
        abstract: "The local Roset control plane: the Roset HTTP API over SQLite and a blob store.")

    @Option(help: "Data folder (default: $XDG_STATE_HOME/roset/server or ~/.local/state/roset/server).")
    var data: String?

    @Option(help: "HOST:PORT to listen on; port 0 picks a free port.")
    var listen = "127.0.0.1:8787"

    @Option(name: .customLong("apikey-file"), help: "API key file (default DATA/apikey; created with one key if missing).")
    var apikeyFile: String?

    @Option(help: "Create another mount with this id (repeatable); the default mount is `default`.")
    var mount: [String] = []

    @Option(help: "Blob backend: local or s3.")
    var backend = "local"

    @Option(name: .customLong("s3-endpoint"), help: "S3 endpoint URL (path-style).")
    var s3Endpoint: String?

    @Option(name: .customLong("s3-bucket"), help: "S3 bucket (created if missing).")
    var s3Bucket: String?

    @Option(name: .customLong("s3-region"), help: "S3 region.")
    var s3Region = "us-east-1"

    @Option(name: .customLong("quota-bytes"), help: "Refuse uploads beyond this many stored bytes (402 QUOTA_EXCEEDED).")
    var quotaBytes: Int64?

    @Option(name: .customLong("admin-token-file"), help: "Admin token file for /admin/* (default DATA/admin-token).")
    var adminTokenFile: String?

    @Option(name: .customLong("url-ttl"), help: "Signed URL lifetime in seconds. (default: 3600)")
    var urlTTL: Int?

    @Option(name: .customLong("fault-latency-ms"), help: "CLASS=MS added latency (control, download, upload, all).")
    var faultLatency: [String] = []

    @Option(name: .customLong("fault-error-rate"), help: "CLASS=RATE of injected error answers.")
    var faultErrorRate: [String] = []

    @Option(name: .customLong("fault-drop-rate"), help: "CLASS=RATE of connections dropped mid-answer.")
    var faultDropRate: [String] = []

    @Option(name: .customLong("fault-malformed-rate"), help: "control=RATE of 200 answers that are not JSON.")
    var faultMalformedRate: [String] = []

    @Option(name: .customLong("fault-error-statuses"), help: "Comma-separated statuses for injected errors (default 500,503,429).")
    var faultErrorStatuses: String?

    @Option(name: .customLong("fault-retry-after"), help: "Retry-After seconds on injected 429/503.")
    var faultRetryAfter: Int?

    @Flag(name: .customLong("fault-ignore-range"), help: "Answer ranged GETs with 200 and the whole object.")
    var faultIgnoreRange = false

    @Option(name: .customLong("log-level"), help: "trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func run() async throws { try await serve() }

    func serve() async throws {
        // glibc gives a buffer over its mmap threshold fresh pages and hands freed memory over its
        // trim threshold back to the kernel, both thresholds adapting to recent frees. So the
        // 1 MiB buffers of a download (a multipart object's chunks, read off the event loop) kept
        // coming as new pages to fault in and clear: after the copies, page faults and
        // clear_page were the server's top symbols while it served a mount's ranged GETs (perf
        // record -a). Fixed thresholds (process-wide, so threads that already exist get them too)
        // keep such buffers in the arenas, at most 64 MiB free at the top of each.
        // `contrib/bench/read_rounds.py --rounds 2 --no-direct-io`, old and new server
        // interleaved, 3 runs each: the server's CPU per GiB read through a mount went
        // from 0.72-0.87 to 0.42-0.83 CPU-s (median 0.81 -> 0.53), the buffered read from
        // 893-1,115 to 827-1,508 MiB/s, and the server's peak RSS from 65-72 to 114-115 MiB.
        _ = mallopt(M_MMAP_THRESHOLD, 4 << 20)
        _ = mallopt(M_TRIM_THRESHOLD, 64 << 20)
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        let logger = Logger(label: "roset-server")

        let dataDir = data.map { URL(fileURLWithPath: $0) } ?? ServerConfiguration.defaultDataDirectory
        var config = ServerConfiguration(dataDirectory: dataDir)
        guard let colon = listen.lastIndex(of: ":"), let port = Int(listen[listen.index(after: colon)...]) else {
            throw ValidationError("--listen wants HOST:PORT")
        }
        config.host = String(listen[..<colon])
        config.port = port
        config.apiKeyFile = apikeyFile.map { URL(fileURLWithPath: $0) }
        for name in mount where name.isEmpty || name.contains(where: { !($0.isLetter || $0.isNumber || "._-".contains($0)) }) {
            throw ValidationError("mount names use letters, digits, '.', '_' and '-'")
        }
        // The default mount always exists; each --mount adds another.
        for name in mount where !config.mounts.contains(name) { config.mounts.append(name) }
        config.quotaBytes = quotaBytes
        config.adminTokenFile = adminTokenFile.map { URL(fileURLWithPath: $0) }

        switch backend {
        case "local": break
        case "s3":
            guard let endpoint = s3Endpoint, let bucket = s3Bucket else { throw ValidationError("--backend s3 needs --s3-endpoint and --s3-bucket") }
            let env = ProcessInfo.processInfo.environment
            guard let ak = env["AWS_ACCESS_KEY_ID"], let sk = env["AWS_SECRET_ACCESS_KEY"] else {
                throw ValidationError("--backend s3 needs AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the environment")
            }
            config.s3 = S3Settings(endpoint: endpoint, bucket: bucket, region: s3Region, accessKey: ak, secretKey: sk)
        default: throw ValidationError("--backend is local or s3")
        }

        var faults = FaultSettings()
        func apply(_ specs: [String], _ key: String, integer: Bool = false) throws {
            for spec in specs {
                let (classes, value) = try FaultSettings.parseClassValue(spec)
                var map: [String: Any] = [:]
                for c in classes { map[c] = integer ? Int(value) as Any : value as Any }
                try faults.merge([key: map])
            }
        }
        do {
            try apply(faultLatency, "latencyMs", integer: true)
            try apply(faultErrorRate, "errorRate")
            try apply(faultDropRate, "dropRate")
            try apply(faultMalformedRate, "malformedRate")
            if let s = faultErrorStatuses { try faults.merge(["errorStatuses": s.split(separator: ",").compactMap { Int($0) }]) }
            if let r = faultRetryAfter { try faults.merge(["retryAfterSeconds": r]) }
            if let t = urlTTL { try faults.merge(["urlTTLSeconds": t]) }
        } catch {
            throw ValidationError("bad fault option: \(error)")
        }
        faults.ignoreRange = faultIgnoreRange
        config.faults = faults

        let host = config.host
        try await RosetServer.run(config, logger: logger) { port in
            print("roset-server listening on http://\(host):\(port)")
            fflush(stdout)
        }
    }
}

// Top-level code cannot use `@main`; parse and run the async command by hand.
do {
    let command = try RosetServerCommand.parse()
    try await command.serve()
} catch {
    RosetServerCommand.exit(withError: error)
}
