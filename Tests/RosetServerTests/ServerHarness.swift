// Runs the built `roset-server` binary on a free loopback port for one test and talks to it with
// URLSession. Every server is stopped by PID (SIGTERM, then SIGKILL) and its data folder removed,
// also when the test fails (`withServer` stops it in a defer).
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

struct HTTPAnswer {
    var status: Int
    var headers: [String: String]
    var data: Data

    var json: Any? { try? JSONSerialization.jsonObject(with: data, options: [.fragmentsAllowed]) }
    var object: [String: Any] { json as? [String: Any] ?? [:] }
    var text: String { String(decoding: data, as: UTF8.self) }
    func header(_ name: String) -> String? { headers[name.lowercased()] }
}

struct HarnessError: Error, CustomStringConvertible { var description: String }

final class TestServer: @unchecked Sendable {
    let process: Process
    let dataDir: TemporaryDirectory
    let port: Int
    let apiKey: String
    let adminToken: String
    var base: String { "http://127.0.0.1:\(port)" }
    let session: URLSession

    /// Starts `roset-server --data <tmp> --listen 127.0.0.1:0 <args>` and waits for its listening line.
    /// "{TMP}" in an argument stands for the test's temporary folder.
    init(args rawArgs: [String] = [], environment: [String: String] = [:], prepare: (TemporaryDirectory) throws -> Void = { _ in }) throws {
        dataDir = try TemporaryDirectory(prefix: "roset-server-test")
        try prepare(dataDir)
        let tmp = dataDir.path
        let args = rawArgs.map { $0.replacingOccurrences(of: "{TMP}", with: tmp) }
        let binary = TestBinaries.path("roset-server")
        guard FileManager.default.isExecutableFile(atPath: binary) else {
            dataDir.remove()
            // `swift test` does not link executables; `swift build` (or --build-tests) must run first.
            throw HarnessError(description: "\(binary) is missing: run `swift build` before `swift test`")
        }
        let proc = Process()
        proc.executableURL = URL(fileURLWithPath: binary)
        proc.arguments = ["--data", dataDir.path + "/data", "--listen", "127.0.0.1:0",
                          "--admin-token-file", dataDir.path + "/admin-token"] + args
        var env = ProcessInfo.processInfo.environment
        env.merge(environment) { $1 }
        proc.environment = env
        let out = Pipe()
        proc.standardOutput = out
        _ = FileManager.default.createFile(atPath: dataDir.path + "/stderr.log", contents: nil)
        proc.standardError = FileHandle(forWritingAtPath: dataDir.path + "/stderr.log")
        try Data("test-admin-token-\(UUID().uuidString)\n".utf8).write(to: dataDir.url.appendingPathComponent("admin-token"))
        try proc.run()
        process = proc
        var line = Data()
        while !line.contains(0x0a) {
            let chunk = out.fileHandleForReading.availableData
            if chunk.isEmpty { break }
            line.append(chunk)
        }
        let text = String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        let prefix = "roset-server listening on http://127.0.0.1:"
        guard text.hasPrefix(prefix), let p = Int(text.dropFirst(prefix.count)) else {
            proc.terminate()
            proc.waitUntilExit()
            let log = (try? String(contentsOfFile: dataDir.path + "/stderr.log", encoding: .utf8)) ?? ""
            dataDir.remove()
            throw HarnessError(description: "server did not announce itself: \(text) \(log)")
        }
        port = p
        let keyFile = args.firstIndex(of: "--apikey-file").map { args[$0 + 1] } ?? dataDir.path + "/data/apikey"
        apiKey = (try String(contentsOfFile: keyFile, encoding: .utf8)).split(whereSeparator: \.isNewline)
            .first { !$0.hasPrefix("#") }.map { String($0.split(separator: " ")[0]) } ?? ""
        adminToken = try String(contentsOf: dataDir.url.appendingPathComponent("admin-token"), encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        session = URLSession(configuration: .ephemeral)
    }

    func stop() {
        if process.isRunning {
            kill(process.processIdentifier, SIGTERM)
            for _ in 0..<100 where process.isRunning { usleep(50_000) }
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        }
        process.waitUntilExit()
        dataDir.remove()
    }

    /// One HTTP exchange; never retries, never follows the API's errors into exceptions.
    func send(_ method: String, _ urlOrPath: String, json: Any? = nil, body: Data? = nil, headers: [String: String] = [:],
              auth: Bool = true) async throws -> HTTPAnswer {
        let url = URL(string: urlOrPath.hasPrefix("http") ? urlOrPath : base + urlOrPath)!
        var request = URLRequest(url: url)
        request.httpMethod = method
        if auth && !urlOrPath.hasPrefix("http") { request.setValue("Bearer \(apiKey)", forHTTPHeaderField: "Authorization") }
        if let json {
            request.httpBody = try JSONSerialization.data(withJSONObject: json)
            request.setValue("application/json", forHTTPHeaderField: "Content-Type")
        } else if let body {
            request.httpBody = body
            request.setValue("application/octet-stream", forHTTPHeaderField: "Content-Type")
        }
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let session = self.session
        return try await withCheckedThrowingContinuation { cont in
            session.dataTask(with: request) { data, response, error in
                if let error { cont.resume(throwing: error); return }
                guard let http = response as? HTTPURLResponse else {
                    cont.resume(throwing: HarnessError(description: "no HTTP response")); return
                }
                var h: [String: String] = [:]
                for (k, v) in http.allHeaderFields { h[String(describing: k).lowercased()] = String(describing: v) }
                cont.resume(returning: HTTPAnswer(status: http.statusCode, headers: h, data: data ?? Data()))
            }.resume()
        }
    }

    func admin(_ method: String, _ path: String, json: Any? = nil, token: String? = nil) async throws -> HTTPAnswer {
        try await send(method, path, json: json, headers: ["Authorization": "Bearer \(token ?? adminToken)"], auth: false)
    }

    func setFaults(_ json: [String: Any]) async throws {
        let r = try await admin("PUT", "/admin/faults", json: json)
        #expect(r.status == 200)
    }

    // MARK: API conveniences

    func rootId(headers: [String: String] = [:]) async throws -> String {
        let r = try await send("POST", "/v1/resolve", json: ["paths": ["/"]], headers: headers)
        let nodes = r.object["nodes"] as? [String: Any]
        return ((nodes?["/"] as? [String: Any])?["id"] as? String) ?? ""
    }

    func mkdir(_ name: String, parent: String) async throws -> HTTPAnswer {
        try await send("POST", "/v1/nodes", json: ["name": name, "type": "folder", "parentId": parent])
    }

    /// init → one PUT per part → complete; returns the complete answer and the node id.
    func upload(name: String? = nil, parent: String? = nil, nodeId: String? = nil, parts: [Data]) async throws -> (HTTPAnswer, String) {
        var initBody: [String: Any] = ["size": 0, "multipart": true]
        if let name { initBody["name"] = name }
        if let parent { initBody["parentId"] = parent }
        if let nodeId { initBody["nodeId"] = nodeId }
        let start = try await send("POST", "/v1/uploads/init", json: initBody)
        guard start.status == 200, let token = start.object["uploadToken"] as? String, let id = start.object["nodeId"] as? String else {
            return (start, "")
        }
        var list: [[String: Any]] = []
        for (i, part) in parts.enumerated() {
            let grant = try await send("POST", "/v1/uploads/\(token)/part?partNumber=\(i + 1)")
            let url = grant.object["url"] as? String ?? ""
            let put = try await send("PUT", url, body: part)
            list.append(["PartNumber": i + 1, "ETag": put.header("ETag") ?? ""])
        }
        let done = try await send("POST", "/v1/uploads/\(token)/complete", json: ["parts": list])
        return (done, id)
    }

    func download(_ nodeId: String, range: String? = nil) async throws -> HTTPAnswer {
        let grant = try await send("GET", "/v1/nodes/\(nodeId)/download")
        guard let url = grant.object["url"] as? String else { return grant }
        return try await send("GET", url, headers: range.map { ["Range": $0] } ?? [:])
    }
}

/// Starts a server, runs `body`, and always stops it.
func withServer(args: [String] = [], environment: [String: String] = [:], prepare: (TemporaryDirectory) throws -> Void = { _ in },
                _ body: (TestServer) async throws -> Void) async throws {
    let server = try TestServer(args: args, environment: environment, prepare: prepare)
    defer { server.stop() }
    try await body(server)
}

extension Dictionary where Key == String, Value == Any {
    func str(_ key: String) -> String? { self[key] as? String }
    func obj(_ key: String) -> [String: Any] { self[key] as? [String: Any] ?? [:] }
    func int(_ key: String) -> Int? { (self[key] as? NSNumber)?.intValue }
}
