// The disk data cache through real mounts against a real roset-server, counting the blob GETs the
// server answered (requests.download in /admin/stats): a second read after a remount sends no
// data GET and status shows the cache; an object replaced by another client reads new after the
// metadata TTL; `mount.roset warmup` fills the cache; a file written through the mount seeds the cache; a flipped byte in a cached block, or a daemon killed while reading, never serves
// wrong bytes; the size bound and the free-space floor hold with a data set 3 times the bound;
// an unusable cache folder leaves reads working from the network.
import Foundation
import RosetClient
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)))
struct FSDataCacheTests {
    static func content(_ seed: Int, size: Int) -> [UInt8] {
        var state = UInt64(seed) &* 0x9E37_79B9_7F4A_7C15 &+ 1
        var words = [UInt64](repeating: 0, count: (size + 7) / 8)
        for i in words.indices {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            words[i] = state
        }
        return words.withUnsafeBytes { Array($0.prefix(size)) }
    }

    static func downloads(_ f: MountedRoset) -> Int { SpoolWorkloadTests.serverStats(f)["requests.download"] ?? 0 }

    /// The data cache's block files and their disk use (st_blocks), below `folder`.
    static func cacheUse(_ folder: String) -> (files: [String], bytes: Int64) {
        let names = (FileManager.default.enumerator(atPath: folder)?.compactMap { $0 as? String } ?? [])
            .filter { $0.split(separator: "/").last.map { Int64($0) != nil } ?? false }
        let bytes = names.reduce(Int64(0)) { sum, name in
            var st = stat()
            return sum + (stat(folder + "/" + name, &st) == 0 ? Int64(st.st_blocks) * 512 : 0)
        }
        return (names, bytes)
    }

    static func dataCacheFolder(_ f: MountedRoset) -> String { f.scratch.url.appendingPathComponent("data-cache").path }

    @Test func aSecondReadAfterARemountSendsNoDataGET() throws {
        try MountedRoset.with { f in
            let small = Self.content(1, size: 300_000)
            let large = Self.content(2, size: 20 << 20)
            try f.uploadRemote(name: "small.bin", bytes: small)
            try f.uploadRemote(name: "large.bin", bytes: large)
            #expect(Posix.read(f.path("small.bin")).1 == small)
            #expect(Posix.read(f.path("large.bin")).1 == large)
            let cold = Self.downloads(f)
            #expect(cold > 0)
            // Beside the spool folder by default, one folder per mount identity inside.
            let use = Self.cacheUse(Self.dataCacheFolder(f))
            #expect(use.files.count == 21, "\(use.files)")
            f.unmount()
            try f.mountAgain()
            #expect(Posix.read(f.path("large.bin")).1 == large)
            #expect(Posix.read(f.path("small.bin")).1 == small)
            #expect(Self.downloads(f) == cold, "data GETs after the remount: \(Self.downloads(f) - cold)")
            // status shows the cache (STATUS is rewritten every second).
            #expect(f.eventually(timeout: 10) {
                ((try? StatusCLI.json(f.mountpoint))?["dataCache"] as? [String: Any])?["hits"] as? Int ?? 0 > 0
            })
            let (status, text, _) = try StatusCLI.run(f.mountpoint)
            print("status:\n\(text)")
            #expect(status == 0 && text.contains("data cache:") && text.contains("hit ratio 100.0%"))
        }
    }

    @Test func aFileWrittenThroughTheMountIsReadBackWithoutADownload() throws {
        try MountedRoset.with { f in
            let bytes = Self.content(8, size: (3 << 20) + 777)
            #expect(Posix.write(f.path("w.bin"), bytes) == .ok)
            #expect(f.eventually { f.spoolEntryFiles().isEmpty })
            #expect(f.eventually(timeout: 10) { Self.cacheUse(Self.dataCacheFolder(f)).files.count == 4 })
            f.unmount()
            try f.mountAgain()
            let before = Self.downloads(f)
            #expect(Posix.read(f.path("w.bin")).1 == bytes)
            #expect(Self.downloads(f) == before)
        }
    }

    @Test func warmupFillsTheCacheSoReadsSendNoDataGET() throws {
        try MountedRoset.with { f in
            #expect(Posix.mkdir(f.path("set")) == .ok)
            let setId = try #require(try f.remoteNode("set")).id
            var files: [[UInt8]] = []
            for i in 0..<12 {
                files.append(Self.content(30 + i, size: 100_000 * (i + 1) * 3))
                try f.uploadRemote(name: "f\(i).bin", parentId: setId, bytes: files[i])
            }
            // A fresh mount lists what was added behind this one's back.
            f.unmount()
            try f.mountAgain()
            let run = try CapturedRun.run(TestBinaries.path("mount.roset"), ["warmup", "--jobs", "4", f.path("set")])
            print(run.stdout)
            #expect(run.status == 0, "\(run.stderr)")
            #expect(run.stdout.contains("warmup: done, 12 file(s)"))
            f.unmount()
            try f.mountAgain()
            let before = Self.downloads(f)
            for (i, bytes) in files.enumerated() { #expect(Posix.read(f.path("set/f\(i).bin")).1 == bytes) }
            #expect(Self.downloads(f) == before)
            let missing = try CapturedRun.run(TestBinaries.path("mount.roset"), ["warmup", f.path("nope")])
            #expect(missing.status == 1 && missing.stderr.contains("nope"))
        }
    }

    @Test func anObjectReplacedByAnotherClientReadsNewAfterTheTTL() throws {
        try MountedRoset.with(options: ["cache_ttl=1"]) { f in
            let first = Self.content(3, size: 3 << 20)
            let second = Self.content(4, size: 3 << 20)
            let node = try f.uploadRemote(name: "f.bin", bytes: first)
            #expect(Posix.read(f.path("f.bin")).1 == first)
            try f.uploadRemote(name: "f.bin", bytes: second, replacing: node.id)
            usleep(1_500_000)
            #expect(Posix.read(f.path("f.bin")).1 == second)
            // And after a remount too: the old version's blocks are never served.
            f.unmount()
            try f.mountAgain()
            #expect(Posix.read(f.path("f.bin")).1 == second)
        }
    }

    @Test func aFlippedByteOrAKilledDaemonNeverServesWrongBytes() throws {
        try MountedRoset.with { f in
            let bytes = Self.content(5, size: 12 << 20)
            try f.uploadRemote(name: "f.bin", bytes: bytes)
            #expect(Posix.read(f.path("f.bin")).1 == bytes)
            f.unmount()
            let folder = Self.dataCacheFolder(f)
            let files = Self.cacheUse(folder).files
            let victim = folder + "/" + (files.first { $0.hasSuffix("/3") } ?? "")
            let fd = open(victim, O_RDWR)
            try #require(fd >= 0, "no block 3 in \(files)")
            var byte: UInt8 = 0
            _ = pread(fd, &byte, 1, 64 + 5000)
            byte ^= 0x01
            _ = pwrite(fd, &byte, 1, 64 + 5000)
            close(fd)
            try f.mountAgain()
            let before = Self.downloads(f)
            #expect(Posix.read(f.path("f.bin")).1 == bytes)
            #expect(Self.downloads(f) == before + 1, "only the damaged block is fetched again")
            #expect(f.daemonLog.contains("did not verify"))

            // A daemon killed while it fills the cache leaves only blocks that verify.
            let other = Self.content(6, size: 64 << 20)
            try f.uploadRemote(name: "g.bin", bytes: other)
            try f.server.setFaults(#"{"latencyMs":{"download":20}}"#)
            let reader = Thread { _ = Posix.read(f.path("g.bin")) }
            reader.start()
            usleep(400_000)
            f.crash()
            MountProcess.forceUnmount(f.mountpoint)
            try f.server.clearFaults()
            try f.mountAgain()
            #expect(Posix.read(f.path("g.bin")).1 == other)
            #expect(Posix.read(f.path("f.bin")).1 == bytes)
        }
    }

    @Test func theBoundAndTheFloorHoldWithADataSetThreeTimesTheBound() throws {
        try MountedRoset.with(options: ["data_cache_max_mb=4"]) { f in
            var files: [[UInt8]] = []
            for i in 0..<6 {
                files.append(Self.content(10 + i, size: 2 << 20))
                try f.uploadRemote(name: "b\(i).bin", bytes: files[i])
            }
            for (i, bytes) in files.enumerated() {
                #expect(Posix.read(f.path("b\(i).bin")).1 == bytes)
                let use = Self.cacheUse(Self.dataCacheFolder(f)).bytes
                #expect(use <= 4 << 20, "\(use) bytes on disk after file \(i)")
            }
            // The floor: a 64 MiB tmpfs that must keep 40 MiB free, and 48 MiB of data.
            f.unmount()
            let tmpfs = f.scratch.url.appendingPathComponent("small-disk").path
            try FileManager.default.createDirectory(atPath: tmpfs, withIntermediateDirectories: true)
            let mount = try CapturedRun.run("/bin/mount", ["-t", "tmpfs", "-o", "size=64m", "tmpfs", tmpfs])
            defer {
                f.unmount()
                _ = try? CapturedRun.run("/bin/umount", ["-l", tmpfs])
            }
            try #require(mount.status == 0, "mount -t tmpfs: \(mount.stderr)")
            try f.mountAgain(options: ["data_cache_dir=\(tmpfs)", "data_cache_min_free_mb=40"])
            var big: [[UInt8]] = []
            for i in 0..<6 {
                big.append(Self.content(20 + i, size: 8 << 20))
                try f.uploadRemote(name: "c\(i).bin", bytes: big[i])
            }
            for (i, bytes) in big.enumerated() {
                #expect(Posix.read(f.path("c\(i).bin")).1 == bytes)
                var fs = statvfs()
                #expect(statvfs(tmpfs, &fs) == 0)
                let free = Int64(fs.f_bavail) * Int64(fs.f_frsize)
                #expect(free >= 40 << 20, "\(free >> 20) MiB free after file \(i)")
            }
            #expect(Self.cacheUse(tmpfs).bytes > 0, "the cache kept something")
        }
    }

    @Test func anUnusableCacheFolderLeavesReadsWorking() throws {
        try MountedRoset.with { f in
            let blocker = f.scratch.url.appendingPathComponent("not-a-folder").path
            _ = FileManager.default.createFile(atPath: blocker, contents: Data([1]))
            f.unmount()
            try f.mountAgain(options: ["data_cache_dir=\(blocker)/cache"])
            let bytes = Self.content(7, size: 5 << 20)
            try f.uploadRemote(name: "f.bin", bytes: bytes)
            #expect(Posix.read(f.path("f.bin")).1 == bytes)
            f.unmount()
            try f.mountAgain(options: ["data_cache_dir=\(blocker)/cache"])
            #expect(Posix.read(f.path("f.bin")).1 == bytes)
            let log = f.daemonLog
            #expect(log.components(separatedBy: "cannot be created").count == 2, "logged once per daemon")
        }
    }
}
