// The metrics= endpoint of a real mount, and roset-server's /metrics: what they serve passes
// `promtool check metrics` (Debian's prometheus package; skipped with a note where it is
// missing), the counters move as the test reads and writes through the mount, and nothing
// listens when the option is off.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSMetricsTests {
    static let promtool = ["/usr/bin/promtool", "/usr/local/bin/promtool"].first { FileManager.default.isExecutableFile(atPath: $0) }

    /// A port nothing listens on right now.
    static func freePort() -> UInt16 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length); return getsockname(fd, $0, &length) }
        }
        return UInt16(bigEndian: address.sin_port)
    }

    /// The body of GET `url` (curl), or nil when nothing answered.
    static func fetch(_ url: String) -> String? {
        guard let r = try? CapturedRun.run("/usr/bin/curl", ["-sf", "--max-time", "5", url]), r.status == 0 else { return nil }
        return r.stdout
    }

    /// The sum of a family's samples whose line contains every one of `matching`.
    static func value(_ text: String, _ family: String, _ matching: [String] = []) -> Double {
        text.split(separator: "\n").filter { line in
            !line.hasPrefix("#") && (line.hasPrefix(family + " ") || line.hasPrefix(family + "{"))
                && matching.allSatisfy { line.contains($0) }
        }.compactMap { $0.split(separator: " ").last.flatMap { Double($0) } }.reduce(0, +)
    }

    static func checkWithPromtool(_ text: String) throws {
        guard let promtool else {
            print("note: promtool not installed (Debian package prometheus); format check skipped")
            return
        }
        let file = NSTemporaryDirectory() + "metrics-\(UUID().uuidString.prefix(8)).txt"
        _ = FileManager.default.createFile(atPath: file, contents: Data(text.utf8))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let r = try CapturedRun.run("/bin/sh", ["-c", "\(promtool) check metrics < \(file)"])
        #expect(r.status == 0, "promtool: \(r.stdout) \(r.stderr)\n\(text.prefix(3000))")
    }

    @Test func theEndpointPassesPromtoolAndItsCountersMoveWithIO() throws {
        let port = Self.freePort()
        try MountedRoset.with(options: ["metrics=127.0.0.1:\(port)"]) { f in
            let url = "http://127.0.0.1:\(port)/metrics"
            guard let before = Self.fetch(url) else {
                Issue.record("nothing answered on \(url): \(f.daemonLog.suffix(2000))")
                return
            }
            let written = PatternBytes.make(count: 1 << 20, seed: 41)
            #expect(Posix.write(f.path("w.bin"), written) == .ok)
            #expect(f.eventually { (try? f.remoteContent("w.bin")) == written && f.spoolEntryFiles().isEmpty })
            let remote = PatternBytes.make(count: 3 << 20, seed: 42)
            try f.uploadRemote(name: "r.bin", bytes: remote)
            #expect(Posix.read(f.path("r.bin")).1 == remote)
            #expect(Posix.stat(f.path("missing")).0 == .failed(ENOENT))
            // The spool gauges are refreshed once a second.
            usleep(1_200_000)
            guard let after = Self.fetch(url) else {
                Issue.record("the endpoint stopped answering")
                return
            }
            try Self.checkWithPromtool(after)
            for line in ["# HELP roset_fuse_requests_total", "# TYPE roset_fuse_request_duration_seconds histogram",
                         "# HELP roset_requests_total", "# HELP roset_spool_pending_files"] {
                #expect(after.contains(line), "\(line) missing")
            }
            func grew(_ family: String, _ matching: [String] = [], by least: Double = 1) -> Bool {
                Self.value(after, family, matching) - Self.value(before, family, matching) >= least
            }
            #expect(grew("roset_fuse_requests_total", ["op=\"write\""]))
            #expect(grew("roset_fuse_requests_total", ["op=\"read\""]))
            #expect(grew("roset_fuse_errors_total", ["op=\"lookup\""]))
            #expect(grew("roset_fuse_request_duration_seconds_count", ["op=\"open\""]))
            #expect(grew("roset_store_written_bytes_total", by: Double(written.count)))
            #expect(grew("roset_store_read_bytes_total", by: Double(remote.count)))
            #expect(grew("roset_requests_total", ["call=\"POST /v1/uploads/init\"", "status=\"201\""])
                    || grew("roset_requests_total", ["call=\"POST /v1/uploads/init\"", "status=\"200\""]))
            #expect(grew("roset_uploads_confirmed_total"))
            #expect(Self.value(after, "roset_spool_pending_files") == 0)
            #expect(after.contains("roset_block_cache_misses_total") || after.contains("roset_block_cache_hits_total"),
                    "no block cache counter: \(after.prefix(2000))")

            // roset-server's own request metrics, same format.
            guard let server = Self.fetch(f.server.baseURL + "/metrics") else {
                Issue.record("roset-server has no /metrics")
                return
            }
            try Self.checkWithPromtool(server)
            #expect(Self.value(server, "roset_server_requests_total", ["http_route=\"/v1/uploads/init\""]) > 0,
                    "\(server.prefix(2000))")
        }
    }

    @Test func nothingListensWhenTheOptionIsOff() throws {
        let port = Self.freePort()
        try MountedRoset.with { f in
            #expect(Posix.write(f.path("x"), [1, 2, 3]) == .ok)
            #expect(Self.fetch("http://127.0.0.1:\(port)/metrics") == nil)
            #expect(!f.daemonLog.contains("metrics in Prometheus"))
            // The daemon holds no listening socket at all.
            let listening = (try? String(contentsOfFile: "/proc/net/tcp", encoding: .utf8)) ?? ""
            let inodes = Set(listening.split(separator: "\n").dropFirst().compactMap { line -> String? in
                let fields = line.split(separator: " ")
                return fields.count > 9 && fields[3] == "0A" ? String(fields[9]) : nil
            })
            let pid = f.daemonPID ?? 0
            let sockets = ((try? FileManager.default.contentsOfDirectory(atPath: "/proc/\(pid)/fd")) ?? []).compactMap {
                Posix.readlink("/proc/\(pid)/fd/\($0)")
            }.filter { $0.hasPrefix("socket:[") }.map { String($0.dropFirst(8).dropLast()) }
            #expect(inodes.isDisjoint(with: sockets), "the daemon listens on a TCP socket without metrics=")
        }
    }

    @Test func aBadOrTakenAddressFailsTheMount() throws {
        guard MountedRoset.isAvailable else { return }
        for bad in ["metrics=localhost:0x", "metrics=:9464", "metrics=127.0.0.1:70000"] {
            #expect(throws: (any Error).self, "\(bad) was accepted") {
                try MountedRoset.with(options: [bad]) { _ in }
            }
        }
    }
}
