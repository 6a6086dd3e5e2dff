// A failing store: roset-server answers 20% of all requests (control, upload, download) with
// 500/503/429, adds latency, drops 2% of connections and signs URLs for 30 seconds only. 500
// files from 0 B to 64 MiB (skewed: mostly small, the part boundaries, three of 64 MiB; ≈ 280 MiB)
// are written through a real mount by four writers. Checked: no writer sees an error, every file
// reaches the control plane with its exact content (read back through the API and through the
// mount), and the folder has exactly 500 children (a retry never made a second node).
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct SpoolWorkloadTests {
    static let mib = 1 << 20
    static let partSize = 5 * mib

    /// The sizes of the 500 files: edge cases first, then a skewed tail.
    static func sizes() -> [Int] {
        var sizes = [0, 1, 2, 4095, 4096, partSize - 1, partSize, partSize + 1, 2 * partSize, 64 * mib, 64 * mib, 64 * mib]
        var x: UInt64 = 0x9E3779B97F4A7C15
        while sizes.count < 500 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            let pick = Int(x % 100)
            if pick < 70 { sizes.append(Int(x >> 20) % (64 << 10)) }             // < 64 KiB
            else if pick < 95 { sizes.append(Int(x >> 20) % (512 << 10)) }       // < 512 KiB
            else { sizes.append(mib + Int(x >> 20) % (3 * mib)) }                // 1–4 MiB
        }
        return sizes
    }

    /// The server's fault and request counters (GET /admin/stats).
    static func serverStats(_ f: MountedRoset) -> [String: Int] {
        guard let (status, body) = try? ServerProcess.request("GET", f.server.baseURL + "/admin/stats",
                                                             headers: ["Authorization": "Bearer \(f.server.adminToken)"]),
              status == 200, let obj = try? JSONSerialization.jsonObject(with: body) as? [String: Any] else { return [:] }
        var out: [String: Int] = [:]
        func flatten(_ prefix: String, _ value: Any) {
            if let dict = value as? [String: Any] { for (k, v) in dict { flatten(prefix.isEmpty ? k : prefix + "." + k, v) } }
            else if let n = value as? Int { out[prefix] = n }
        }
        flatten("", obj)
        return out
    }

    @Test func fiveHundredFilesThroughAFailingStore() throws {
        if let why = SpoolCrashTests.skipReason() { print("skipped: \(why)"); return }
        let f = try MountedRoset(options: ["part_size_mb=5", "upload_concurrency=8"])
        defer { f.close() }
        #expect(Posix.mkdir(f.path("load")) == .ok)
        try f.server.setFaults("""
            {"latencyMs":{"control":20,"download":20,"upload":50},
             "errorRate":{"control":0.2,"download":0.2,"upload":0.2},
             "errorStatuses":[500,503,429],
             "dropRate":{"control":0.02,"download":0.02,"upload":0.02},
             "urlTTLSeconds":30}
            """)
        let sizes = Self.sizes()
        let total = sizes.reduce(0, +)
        final class Errors: @unchecked Sendable { let lock = NSLock(); var list: [String] = [] }
        let errors = Errors()
        let started = Date()
        DispatchQueue.concurrentPerform(iterations: 4) { writer in
            for i in stride(from: writer, to: sizes.count, by: 4) {
                let result = Posix.write(f.path("load/f\(i)"), PatternBytes.make(count: sizes[i], seed: UInt64(7000 + i)))
                if result != .ok { errors.lock.withLock { errors.list.append("f\(i): \(result)") } }
            }
        }
        let writeSeconds = Date().timeIntervalSince(started)
        let drained = SpoolCrash.waitForDrain(f, timeout: 420)
        let drainSeconds = Date().timeIntervalSince(started)
        let retries = (try? StatusCLI.json(f.mountpoint))?["uploadFailures"] as? Int ?? -1
        let stats = Self.serverStats(f)
        try f.server.clearFaults()
        #expect(drained, "every upload completes under the faults")

        let folder = try #require(try f.remoteNode("load"))
        let children = try f.api.children(of: folder.id)
        var lost: [String] = [], mountMismatch: [String] = []
        for (i, size) in sizes.enumerated() {
            let expected = PatternBytes.make(count: size, seed: UInt64(7000 + i))
            if (try? f.remoteContent("load/f\(i)")) != expected { lost.append("f\(i)") }
            if Posix.read(f.path("load/f\(i)")).1 != expected { mountMismatch.append("f\(i)") }
        }
        let duplicated = children.count - Set(children.map(\.name)).count + max(0, children.count - 500)
        print("SpoolWorkloadTests: \(sizes.count) files, \(total) bytes; writes \(String(format: "%.0f", writeSeconds)) s, drained after \(String(format: "%.0f", drainSeconds)) s; "
              + "failed upload attempts retried \(retries); writer errors \(errors.list.count), lost \(lost.count), "
              + "differing through the mount \(mountMismatch.count), duplicated \(duplicated), children \(children.count)")
        print("SpoolWorkloadTests: server injected \(stats["faults.errors"] ?? -1) errors and \(stats["faults.drops"] ?? -1) dropped connections "
              + "in \((stats["requests.control"] ?? 0) + (stats["requests.upload"] ?? 0) + (stats["requests.download"] ?? 0)) requests")
        #expect((stats["faults.errors"] ?? 0) > 0, "the faults were really injected")
        #expect(errors.list.isEmpty, "no error reaches the writers: \(errors.list.prefix(10))")
        #expect(lost.isEmpty, "lost or different: \(lost.prefix(10))")
        #expect(mountMismatch.isEmpty, "through the mount: \(mountMismatch.prefix(10))")
        #expect(children.count == 500)
        #expect(duplicated == 0)
    }
}
