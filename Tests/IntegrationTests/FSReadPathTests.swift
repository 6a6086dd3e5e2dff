// The read path through a real mount: a 512 MiB object read sequentially with cache_size_mb=16
// gives the right bytes, and the daemon's peak RSS (VmHWM) stays within the cache plus a fixed
// overhead (the number is printed whatever the outcome); a sequential reader's bytes come
// through pipes spliced into the kernel (the daemon's unmount line counts them), through the page
// cache and with direct_io, and not with splice_read=no.
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

    /// Reads the whole file with reads of `size` and compares it with `expected`.
    static func readWhole(_ path: String, size: Int, expected: [UInt8]) throws -> Bool {
        let d = try #require(OpenDescriptor(path, O_RDONLY))
        defer { _ = d.close() }
        var got: [UInt8] = []
        got.reserveCapacity(expected.count)
        var buffer = [UInt8](repeating: 0, count: size)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(d.fd, $0.baseAddress, size) }
            if n <= 0 { break }
            got += buffer[0..<n]
        }
        return got == expected
    }

    /// The MiB the daemon said it answered from pipes, once it has unmounted.
    static func pipedMiB(_ f: MountedRoset) -> Int? {
        let process = f.mount
        f.unmount()
        let log = process?.stderr ?? ""
        guard let range = log.range(of: #"(\d+) MiB answered from pipes"#, options: .regularExpression) else { return nil }
        return Int(log[range].split(separator: " ")[0])
    }

    /// Pipes are used only with the disk data cache off (with it, every byte goes through the
    /// block cache so that it reaches the disk; mount.roset(8), data_cache_dir).
    @Test func sequentialReadsComeThroughPipesUnlessTurnedOff() throws {
        try MountedRoset.with(options: ["cache_size_mb=64", "data_cache_max_mb=0"]) { f in
            let bytes = PatternBytes.make(count: 40 << 20, seed: 4242)
            try f.uploadRemote(name: "seq.bin", bytes: bytes)
            let small = PatternBytes.make(count: 3 << 20, seed: 99)
            try f.uploadRemote(name: "random.bin", bytes: small)

            #expect(try Self.readWhole(f.path("seq.bin"), size: 1 << 20, expected: bytes))
            // Random reads of another file stay correct (and are not what the pipes count).
            let d = try #require(OpenDescriptor(f.path("random.bin"), O_RDONLY))
            var generator = SystemRandomNumberGenerator()
            for _ in 0..<64 {
                let offset = Int.random(in: 0..<(small.count - 8192), using: &generator)
                var chunk = [UInt8](repeating: 0, count: 4096)
                let n = chunk.withUnsafeMutableBytes { pread(d.fd, $0.baseAddress, 4096, off_t(offset)) }
                #expect(n == 4096 && chunk == Array(small[offset..<offset + 4096]), "random read at \(offset)")
            }
            _ = d.close()
            let piped = try #require(Self.pipedMiB(f), "the daemon's unmount line")
            #expect(piped >= 30, "\(piped) MiB of 40 from pipes")

            try f.mountAgain(options: ["cache_size_mb=64", "data_cache_max_mb=0", "direct_io"])
            #expect(try Self.readWhole(f.path("seq.bin"), size: 256 << 10, expected: bytes))
            let direct = try #require(Self.pipedMiB(f))
            #expect(direct >= 30, "direct_io: \(direct) MiB of 40 from pipes")

            try f.mountAgain(options: ["cache_size_mb=64", "data_cache_max_mb=0", "splice_read=no"])
            #expect(try Self.readWhole(f.path("seq.bin"), size: 1 << 20, expected: bytes))
            #expect(Self.pipedMiB(f) == 0)
        }
    }
}
