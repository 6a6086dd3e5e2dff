// The built mount.roset as mount(8) runs it: every bad input gives its message and exit status,
// fake mode validates without mounting, and a failing daemon makes the parent fail with no mount
// left behind.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

struct HelperRun {
    var status: Int32
    var stderr: String
    var stdout: String
}

/// The built products sit beside the test bundle (or in ROSET_BIN_DIR).
func helperBinary(_ name: String = "mount.roset") -> String { TestBinaries.path(name) }

func runHelper(_ arguments: [String], environment: [String: String] = [:], binary: String = helperBinary()) throws -> HelperRun {
    let r = try CapturedRun.run(binary, arguments,
                                environment: ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"].merging(environment) { $1 })
    return HelperRun(status: r.status, stderr: r.stderr, stdout: r.stdout)
}

@Suite(.serialized) struct HelperBinaryTests {
    let dir: String
    let mountpoint: String
    let goodKey: String

    init() throws {
        dir = NSTemporaryDirectory() + "roset-helper-\(UUID().uuidString.prefix(8))"
        mountpoint = dir + "/mnt"
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        goodKey = dir + "/key"
        FileManager.default.createFile(atPath: goodKey, contents: Data("rk_test_secret\n".utf8),
                                       attributes: [.posixPermissions: 0o600])
    }

    func cleanup() {
        if let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8), text.contains(mountpoint) {
            _ = umount2(mountpoint, Int32(MNT_DETACH))
        }
        try? FileManager.default.removeItem(atPath: dir)
    }

    @Test func binaryExists() {
        #expect(FileManager.default.isExecutableFile(atPath: helperBinary()), "build mount.roset first (swift build)")
        cleanup()
    }

    @Test func versionNamesTheProgramAndItsLibfuse() throws {
        defer { cleanup() }
        for flag in ["--version", "-V"] {
            let r = try runHelper([flag])
            #expect(r.status == 0, "\(flag): \(r.stderr)")
            #expect(r.stdout.hasPrefix("mount.roset 0.") && r.stdout.contains("(libfuse 3."), "\(flag): \(r.stdout)")
        }
        // Only alone: after SPEC and DIR it is an unknown flag, as before, with the usage.
        let mixed = try runHelper(["default", mountpoint, "-V"])
        #expect(mixed.status != 0 && mixed.stderr.contains("unknown flag -V"), "\(mixed.stderr)")
    }

    @Test func badInputsGiveTheirMessageAndStatus() throws {
        defer { cleanup() }
        let cases: [([String], String)] = [
            (["default", mountpoint, "-o", "apikey_file=\(goodKey),frobnicate"], "unknown mount option 'frobnicate'"),
            (["default", mountpoint, "-o", "apikey_file=\(goodKey),cache_ttl=abc"], "cache_ttl"),
            (["default", mountpoint, "-o", "apikey_file=\(goodKey),cache_size_mb=-1"], "negative"),
            (["default", mountpoint, "-o", "apikey_file=\(goodKey),api_url=ftp://x"], "api_url"),
            (["default", mountpoint, "-o", "apikey_file=\(goodKey),file_mode=9"], "file_mode"),
            (["default", mountpoint, "-o", "apikey=verysecret"], "apikey_file"),
            (["default", mountpoint, "-o", "apikey_file=\(dir)/absent"], "does not exist"),
            (["default", mountpoint], "no API key"),
            (["default"], "SPEC and DIR"),
        ]
        for (args, expected) in cases {
            let r = try runHelper(args)
            #expect(r.status == 1, "\(args): \(r.stderr)")
            #expect(r.stderr.contains(expected), "\(args): \(r.stderr)")
            #expect(!r.stderr.contains("verysecret") && !r.stderr.contains("rk_test_secret"))
        }
    }

    @Test func sloppyTurnsUnknownOptionsIntoWarnings() throws {
        defer { cleanup() }
        let r = try runHelper(["default", mountpoint, "-s", "-f", "-o", "apikey_file=\(goodKey),frobnicate"])
        #expect(r.status == 0, "\(r.stderr)")
        #expect(r.stderr.contains("warning") && r.stderr.contains("frobnicate"))
    }

    @Test func keyFileReadableByOthersIsRefused() throws {
        defer { cleanup() }
        chmod(goodKey, 0o644)
        let r = try runHelper(["default", mountpoint, "-o", "apikey_file=\(goodKey)"])
        #expect(r.status == 1)
        #expect(r.stderr.contains("chmod 600 \(goodKey)"))
    }

    @Test func fakeModeValidatesAndDoesNotMount() throws {
        defer { cleanup() }
        let ok = try runHelper(["default", mountpoint, "-f", "-v", "-n", "-o",
                                "apikey_file=\(goodKey),_netdev,nofail,x-systemd.automount,noauto,comment=\"a,b\""])
        #expect(ok.status == 0, "\(ok.stderr)")
        #expect(!ok.stderr.contains("rk_test_secret"))
        #expect(ok.stderr.contains("redacted"))
        let text = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!text.contains(mountpoint))
        let missing = try runHelper(["default", dir + "/nowhere", "-f", "-o", "apikey_file=\(goodKey)"])
        #expect(missing.status == 32 && missing.stderr.contains("does not exist"))
        let ns = try runHelper(["default", mountpoint, "-f", "-N", "/proc/self/ns/mnt", "-o", "apikey_file=\(goodKey)"])
        #expect(ns.status == 0, "\(ns.stderr)")
    }

    @Test func failingDaemonMakesTheParentFailWithNoMountLeft() throws {
        defer { cleanup() }
        // Nothing listens on port 1: whatever the filesystem does first, it cannot succeed.
        let r = try runHelper(["default", mountpoint, "-o", "apikey_file=\(goodKey),api_url=http://127.0.0.1:1"])
        #expect(r.status != 0)
        #expect(r.stderr.hasPrefix("mount.roset: "), "\(r.stderr)")
        #expect(!r.stderr.contains("rk_test_secret"))
        let text = try String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8)
        #expect(!text.contains(mountpoint))
    }

    @Test func rosetFuseNameAndHelp() throws {
        defer { cleanup() }
        let link = dir + "/roset-fuse"
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: helperBinary())
        let help = try runHelper(["--help"], binary: link)
        #expect(help.status == 0)
        #expect(help.stdout.contains("--api-key-file") && help.stdout.contains("--mountpoint"))
        let usage = try runHelper(["--help"])
        #expect(usage.status == 0 && usage.stdout.contains("mount.roset SPEC DIR"))
        let bad = try runHelper([mountpoint, "--cache-ttl", "abc"], environment: ["ROSET_API_KEY": "k"], binary: link)
        #expect(bad.status != 0 && bad.stderr.contains("cache-ttl"))
    }
}
