// The read path through a real mount: a 512 MiB object read sequentially with cache_size_mb=16
// gives the right bytes, and the daemon's peak RSS (VmHWM) stays within the cache plus a fixed
// overhead. The number is printed whatever the outcome.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSReadPathTests {
    static let chunk = 8 << 20

    @Test func largeReadStaysWithinTheCacheBound() throws {
        try MountedRoset.with(options: ["cache_size_mb=16"]) { f in
            let chunks = 64 // 512 MiB
            let local = f.scratch.url.appendingPathComponent("source.bin").path
            _ = FileManager.default.createFile(atPath: local, contents: nil)
            let out = try FileHandle(forWritingTo: URL(fileURLWithPath: local))
            for i in 0..<chunks { try out.write(contentsOf: Data(PatternBytes.make(count: Self.chunk, seed: UInt64(1_000 + i)))) }
            try out.close()
            try f.uploadRemote(name: "big.bin", contentsOf: local)
            try? FileManager.default.removeItem(atPath: local)
            let before = f.daemonPeakRSS ?? 0

            let d = try #require(OpenDescriptor(f.path("big.bin"), O_RDONLY))
            var offset = 0
            var mismatches: [Int] = []
            var buffer = [UInt8](repeating: 0, count: Self.chunk)
            for i in 0..<chunks {
                var filled = 0
                while filled < Self.chunk {
                    let n = buffer.withUnsafeMutableBytes { read(d.fd, $0.baseAddress! + filled, min(1 << 20, Self.chunk - filled)) }
                    if n <= 0 { break }
                    filled += n
                }
                if filled != Self.chunk || buffer != PatternBytes.make(count: Self.chunk, seed: UInt64(1_000 + i)) {
                    mismatches.append(i)
                }
                offset += filled
            }
            var one: UInt8 = 0
            #expect(read(d.fd, &one, 1) == 0) // end of file
            #expect(d.close() == .ok)
            #expect(offset == chunks * Self.chunk)
            #expect(mismatches.isEmpty, "chunks with wrong bytes: \(mismatches)")

            let peak = try #require(f.daemonPeakRSS)
            if let pid = f.daemonPID, let status = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8) {
                let lines = status.split(separator: "\n").filter { ["RssAnon", "RssFile", "Threads", "VmRSS"].contains(where: $0.hasPrefix) }
                print("FSReadPathTests: daemon after the read: \(lines.joined(separator: ", "))")
            }
            print("FSReadPathTests: daemon VmHWM \(peak >> 20) MiB after reading 512 MiB with cache_size_mb=16 (before the read: \(before >> 20) MiB)")
            #expect(peak <= (16 + 64) << 20, "VmHWM \(peak >> 20) MiB")
        }
    }
}
