// A real `roset-server` on loopback for tests. Invariants: the server runs in its own fresh
// data folder on a port it picked itself (`--listen 127.0.0.1:0`); `start` returns only after
// `GET /healthz` answered 200; `stop()` (also run from deinit) ends the process by its PID,
// SIGTERM then SIGKILL, and removes the folder. The API key is read from the key file, never
// passed on a command line.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
#if canImport(Glibc)
import Glibc
#endif

public enum ServerProcessError: Error, CustomStringConvertible {
    case binaryNotFound(String)
    case startFailed(String)
    case requestFailed(String)

    public var description: String {
        switch self {
        case .binaryNotFound(let p): return "roset-server not found at \(p) (set ROSET_SERVER_BIN)"
        case .startFailed(let m): return "roset-server did not start: \(m)"
        case .requestFailed(let m): return m
        }
    }
}

public final class ServerProcess: @unchecked Sendable {
    /// The binary tests use: ROSET_SERVER_BIN, or `roset-server` beside the test bundle.
    public static var binaryPath: String {
        ProcessInfo.processInfo.environment["ROSET_SERVER_BIN"] ?? TestBinaries.path("roset-server")
    }

    /// Whether a server binary exists; contract tests skip (with a message) when it does not.
    public static var isAvailable: Bool { FileManager.default.isExecutableFile(atPath: binaryPath) }

    public let dataDirectory: TemporaryDirectory
    /// `http://127.0.0.1:PORT`
    public let baseURL: String
    public let apiKey: String
    public let adminToken: String
    public let pid: Int32
    private let process: Process
    private let lock = NSLock()
    private var stopped = false
    private let output = ServerOutput()

    /// Starts `roset-server --data TMP --listen 127.0.0.1:0 [extraArguments]` and waits until healthy.
    public init(extraArguments: [String] = [], environment: [String: String]? = nil,
                startupTimeout: TimeInterval = 60) throws {
        let binary = Self.binaryPath
        guard FileManager.default.isExecutableFile(atPath: binary) else { throw ServerProcessError.binaryNotFound(binary) }
        let dir = try TemporaryDirectory(prefix: "roset-server")
        dataDirectory = dir
        let p = Process()
        p.executableURL = URL(fileURLWithPath: binary)
        p.arguments = ["--data", dir.path, "--listen", "127.0.0.1:0"] + extraArguments
        if let environment { p.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 } }
        let pipe = Pipe()
        p.standardOutput = pipe
        p.standardError = FileHandle(forWritingAtPath: "/dev/null")
        // Drained by blocking reads on a thread of its own, not `readabilityHandler`: tearing down
        // that handler's dispatch read source races the pipe's close in swift-corelibs-libdispatch
        // (a use-after-free in its epoll bookkeeping, swift-corelibs-libdispatch#949), which
        // crashed a CI run with SIGSEGV in libdispatch while a test stopped its server.
        let output = self.output
        let reader = pipe.fileHandleForReading
        Thread.detachNewThread {
            var chunk = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let n = chunk.withUnsafeMutableBytes { read(reader.fileDescriptor, $0.baseAddress, $0.count) }
                if n > 0 { output.append(Data(chunk[0..<n])); continue }
                if n < 0 && errno == EINTR { continue }
                break
            }
            output.finish()
        }
        do { try p.run() } catch {
            dir.remove()
            throw ServerProcessError.startFailed("\(error)")
        }
        process = p
        pid = p.processIdentifier

        do {
            guard let url = output.waitForListeningURL(timeout: startupTimeout) else {
                throw ServerProcessError.startFailed("no 'listening on' line; output: \(output.text.suffix(2000))")
            }
            baseURL = url
            try Self.waitForHealth(baseURL: url, timeout: startupTimeout)
            // With `--apikey-file` elsewhere, DATA/apikey may not exist: the test knows its keys.
            let keyFile = extraArguments.firstIndex(of: "--apikey-file").flatMap {
                extraArguments.indices.contains($0 + 1) ? URL(fileURLWithPath: extraArguments[$0 + 1]) : nil
            } ?? dir.url.appendingPathComponent("apikey")
            apiKey = try Self.firstLine(of: keyFile)
            adminToken = (try? Self.firstLine(of: dir.url.appendingPathComponent("admin-token"))) ?? ""
        } catch {
            Self.terminate(pid: p.processIdentifier, process: p)
            dir.remove()
            throw error
        }
    }

    deinit { stop() }

    /// The server's standard output so far (for diagnosing a failed test).
    public var outputText: String { output.text }

    /// `PUT /admin/faults` with the admin token; the server merges the given keys.
    public func setFaults(_ json: String) throws {
        let (status, body) = try Self.request("PUT", baseURL + "/admin/faults", body: Data(json.utf8),
                                              headers: ["Authorization": "Bearer \(adminToken)",
                                                        "Content-Type": "application/json"])
        guard (200..<300).contains(status) else {
            throw ServerProcessError.requestFailed("PUT /admin/faults -> \(status): \(String(decoding: body, as: UTF8.self))")
        }
    }

    /// Resets every fault to "none".
    public func clearFaults() throws {
        try setFaults(#"{"latencyMs":{"control":0,"download":0,"upload":0},"errorRate":{"control":0,"download":0,"upload":0},"dropRate":{"control":0,"download":0,"upload":0},"malformedRate":{"control":0},"ignoreRange":false,"urlTTLSeconds":3600,"errorStatuses":[500,503,429],"retryAfterSeconds":1}"#)
    }

    /// SIGTERM, up to 5 s of grace, then SIGKILL; removes the data folder. Idempotent.
    public func stop() {
        let first: Bool = lock.withLock { defer { stopped = true }; return !stopped }
        guard first else { return }
        Self.terminate(pid: pid, process: process)
        dataDirectory.remove()
    }

    private static func terminate(pid: Int32, process: Process) {
        guard process.isRunning else { return }
        kill(pid, SIGTERM)
        let deadline = Date().addingTimeInterval(5)
        while process.isRunning && Date() < deadline { usleep(20_000) }
        if process.isRunning {
            kill(pid, SIGKILL)
            process.waitUntilExit()
        }
    }

    private static func firstLine(of url: URL) throws -> String {
        let text = try String(contentsOf: url, encoding: .utf8)
        guard let line = text.split(whereSeparator: \.isNewline).first.map({ $0.trimmingCharacters(in: .whitespaces) }),
              !line.isEmpty else { throw ServerProcessError.startFailed("\(url.lastPathComponent) is empty") }
        // A key line may carry a mount binding after whitespace: the key is the first field.
        return String(line.split(separator: " ").first ?? Substring(line))
    }

    private static func waitForHealth(baseURL: String, timeout: TimeInterval) throws {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if let (status, _) = try? request("GET", baseURL + "/healthz"), status == 200 { return }
            usleep(50_000)
        }
        throw ServerProcessError.startFailed("GET /healthz never answered 200")
    }

    /// A small blocking HTTP request for test plumbing (not the client under test).
    public static func request(_ method: String, _ url: String, body: Data? = nil,
                               headers: [String: String] = [:]) throws -> (Int, Data) {
        guard let u = URL(string: url) else { throw ServerProcessError.requestFailed("bad URL") }
        var req = URLRequest(url: u, timeoutInterval: 10)
        req.httpMethod = method
        req.httpBody = body
        for (k, v) in headers { req.setValue(v, forHTTPHeaderField: k) }
        let done = DispatchSemaphore(value: 0)
        let box = ResultBox()
        let task = URLSession.shared.dataTask(with: req) { data, response, error in
            box.set(data: data, status: (response as? HTTPURLResponse)?.statusCode, error: error)
            done.signal()
        }
        task.resume()
        done.wait()
        let (data, status, error) = box.get()
        if let error { throw ServerProcessError.requestFailed("\(method) \(url): \(error)") }
        return (status ?? 0, data ?? Data())
    }
}

private final class ResultBox: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?, status: Int?, error: Error?
    func set(data: Data?, status: Int?, error: Error?) { lock.withLock { self.data = data; self.status = status; self.error = error } }
    func get() -> (Data?, Int?, Error?) { lock.withLock { (data, status, error) } }
}

/// Collects the server's stdout and finds the `roset-server listening on http://…` line.
private final class ServerOutput: @unchecked Sendable {
    private let condition = NSCondition()
    private var buffer = Data()
    private var ended = false

    func append(_ data: Data) { condition.withLock { buffer.append(data); condition.broadcast() } }
    func finish() { condition.withLock { ended = true; condition.broadcast() } }
    var text: String { condition.withLock { String(decoding: buffer, as: UTF8.self) } }

    func waitForListeningURL(timeout: TimeInterval) -> String? {
        let deadline = Date().addingTimeInterval(timeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            let text = String(decoding: buffer, as: UTF8.self)
            for line in text.split(whereSeparator: \.isNewline) {
                if let r = line.range(of: "listening on ") {
                    let url = line[r.upperBound...].split(separator: " ").first.map(String.init) ?? ""
                    if url.hasPrefix("http") { return url.hasSuffix("/") ? String(url.dropLast()) : url }
                }
            }
            if ended || !condition.wait(until: deadline) { return nil }
        }
    }
}
