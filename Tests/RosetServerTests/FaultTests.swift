// Fault injection through CLI flags and the admin endpoint: injected statuses (with Retry-After on
// 429), malformed answers, dropped connections, latency, and the admin token check.
import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif
import Testing
import TestSupport

@Suite(.serialized)
struct FaultTests {
    @Test func adminEndpointRefusesWrongTokenAndMergesSettings() async throws {
        try await withServer { s in
            let wrong = try await s.admin("PUT", "/admin/faults", json: ["errorRate": ["control": 1.0]], token: "wrong")
            #expect(wrong.status == 401)
            #expect(try await s.admin("GET", "/admin/faults", token: "wrong").status == 401)
            #expect(try await s.admin("GET", "/admin/stats", token: "").status == 401)
            #expect(try await s.send("POST", "/v1/resolve", json: ["paths": ["/"]]).status == 200)

            let merged = try await s.admin("PUT", "/admin/faults", json: ["latencyMs": ["download": 5], "errorStatuses": [503]])
            #expect(merged.object.obj("latencyMs").int("download") == 5)
            #expect(merged.object.obj("latencyMs").int("control") == 0)
            #expect(merged.object["errorStatuses"] as? [Int] == [503])
            #expect(merged.object.int("urlTTLSeconds") == 3600)
            let bad = try await s.admin("PUT", "/admin/faults", json: ["errorRate": ["control": 2.0]])
            #expect(bad.status == 400)
            let current = try await s.admin("GET", "/admin/faults")
            #expect(current.object.obj("errorRate").int("control") == 0)
        }
    }

    @Test func errorRateOneGivesTheConfiguredStatuses() async throws {
        try await withServer { s in
            try await s.setFaults(["errorRate": ["control": 1.0], "errorStatuses": [429], "retryAfterSeconds": 3])
            let limited = try await s.send("POST", "/v1/resolve", json: ["paths": ["/"]])
            #expect(limited.status == 429)
            #expect(limited.header("Retry-After") == "3")
            #expect(limited.object.str("code") != nil && limited.object.str("message") != nil)

            try await s.setFaults(["errorStatuses": [500, 503]])
            var seen = Set<Int>()
            for _ in 0..<30 { seen.insert(try await s.send("GET", "/v1/nodes/root").status) }
            #expect(seen.isSubset(of: [500, 503]) && !seen.isEmpty)

            try await s.setFaults(["errorRate": ["control": 0.0, "download": 1.0]])
            let root = try await s.rootId()
            let (_, id) = try await s.upload(name: "f", parent: root, parts: [Data("abc".utf8)])
            let dl = try await s.download(id)
            #expect([500, 503].contains(dl.status))
            try await s.setFaults(["errorRate": ["download": 0.0, "upload": 1.0]])
            let (failed, _) = try await s.upload(name: "g", parent: root, parts: [Data("abc".utf8)])
            #expect(failed.status == 400 && failed.object.str("code") == "INVALID_PART")

            let stats = try await s.admin("GET", "/admin/stats")
            #expect(stats.object.int("faults.errors") ?? 0 >= 32)
            #expect(stats.object.int("requests.control") ?? 0 > 30)
        }
    }

    @Test func cliFlagsSetFaultsAtStart() async throws {
        try await withServer(args: ["--fault-error-rate", "control=1", "--fault-error-statuses", "503", "--url-ttl", "900",
                                    "--fault-latency-ms", "download=7"]) { s in
            let r = try await s.send("POST", "/v1/resolve", json: ["paths": ["/"]])
            #expect(r.status == 503)
            let faults = try await s.admin("GET", "/admin/faults")
            #expect(faults.object.int("urlTTLSeconds") == 900)
            #expect(faults.object.obj("latencyMs").int("download") == 7)
            #expect(try await s.send("GET", "/healthz", auth: false).status == 200)
        }
    }

    @Test func malformedAndDroppedAnswers() async throws {
        try await withServer { s in
            let root = try await s.rootId()
            try await s.setFaults(["malformedRate": ["control": 1.0]])
            let bad = try await s.send("GET", "/v1/nodes/\(root)")
            #expect(bad.status == 200)
            #expect(bad.json == nil)

            try await s.setFaults(["malformedRate": ["control": 0.0], "dropRate": ["control": 1.0]])
            await #expect(throws: (any Error).self) { _ = try await s.send("GET", "/v1/nodes/\(root)") }

            // A dropped create still happened; the retry with the same Idempotency-Key replays it.
            let body: [String: Any] = ["name": "made-anyway", "type": "folder", "parentId": root]
            await #expect(throws: (any Error).self) {
                _ = try await s.send("POST", "/v1/nodes", json: body, headers: ["Idempotency-Key": "drop-1"])
            }
            try await s.setFaults(["dropRate": ["control": 0.0]])
            let retry = try await s.send("POST", "/v1/nodes", json: body, headers: ["Idempotency-Key": "drop-1"])
            #expect(retry.status == 201 && retry.object.str("name") == "made-anyway")

            let (_, id) = try await s.upload(name: "f", parent: root, parts: [pattern(300_000, seed: 5)])
            try await s.setFaults(["dropRate": ["download": 1.0]])
            await #expect(throws: (any Error).self) { _ = try await s.download(id) }
            try await s.setFaults(["dropRate": ["download": 0.0]])
            #expect(try await s.download(id).data == pattern(300_000, seed: 5))
            let stats = try await s.admin("GET", "/admin/stats")
            #expect(stats.object.int("faults.drops") == 3)
            #expect(stats.object.int("connectionsAccepted") ?? 0 >= 1)
        }
    }
}
