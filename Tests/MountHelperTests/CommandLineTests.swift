// mount(8) helper argv in every order, the original roset-fuse command line, the form picked
// by argv[0], argv scrubbing and the daemon's report protocol.
import Foundation
import Testing
@testable import MountHelper

@Suite struct HelperArgumentsTests {
    @Test func flagsInAnyOrderAfterThePositionals() throws {
        let forms: [[String]] = [
            ["m1", "/mnt/x", "-s", "-f", "-n", "-v", "-o", "ro,allow_other", "-t", "fuse.roset", "-N", "/proc/1/ns/mnt"],
            ["m1", "/mnt/x", "-N", "/proc/1/ns/mnt", "-t", "fuse.roset", "-o", "ro,allow_other", "-v", "-n", "-f", "-s"],
            ["-sfnv", "m1", "-oro,allow_other", "/mnt/x", "-tfuse.roset", "-N/proc/1/ns/mnt"],
            ["m1", "/mnt/x", "-o", "ro", "-sfnv", "-o", "allow_other", "-N", "/proc/1/ns/mnt"],
        ]
        for argv in forms {
            let r = try HelperArguments.parse(argv)
            #expect(r.spec == "m1" && r.mountpoint == "/mnt/x", "\(argv)")
            #expect(r.sloppy && r.fake && r.verbose, "\(argv)")
            #expect(r.mountNamespace == "/proc/1/ns/mnt", "\(argv)")
            #expect(r.options == [MountOption("ro"), MountOption("allow_other")], "\(argv)")
        }
    }

    @Test func badArgv() {
        #expect(refusal { try HelperArguments.parse(["only-spec"]) }?.message.contains("SPEC and DIR") == true)
        #expect(refusal { try HelperArguments.parse(["a", "b", "c"]) }?.message.contains("too many") == true)
        #expect(refusal { try HelperArguments.parse(["a", "b", "-x"]) }?.message.contains("-x") == true)
        #expect(refusal { try HelperArguments.parse(["a", "b", "-o"]) }?.message.contains("-o needs a value") == true)
        #expect(refusal { try HelperArguments.parse(["a", "b", "--frob"]) }?.message.contains("--frob") == true)
        #expect(refusal { try HelperArguments.parse(["-h"]) }?.exitStatus == 0)
    }

    @Test func unexpectedTypeIsAWarning() throws {
        let r = try HelperArguments.parse(["m", "/d", "-t", "nfs"])
        #expect(r.warnings.first?.contains("nfs") == true)
        #expect(try HelperArguments.parse(["m", "/d", "-t", "roset"]).warnings.isEmpty)
    }
}

@Suite struct RosetFuseCommandLineTests {
    @Test func rosetFuseReadmeCommandLine() throws {
        let argv = ["roset-fuse", "/mnt/roset", "--api-key", "KEY1", "--api-url", "http://127.0.0.1:9000",
                    "--mount-id", "M7", "--foreground", "--debug", "--cache-ttl", "5", "--cache-size-mb", "64",
                    "--allow-other", "--read-only"]
        let c = try MountCommandLine.parse(argv, environment: [:], identity: userIdentity)
        #expect(c.mountpoint == "/mnt/roset" && c.mountId == "M7")
        #expect(c.apiKey.value == "KEY1" && c.apiKey.source == "--api-key")
        #expect(c.apiURL.absoluteString == "http://127.0.0.1:9000")
        #expect(c.foreground && c.debug && c.cacheTTL == 5 && c.cacheSizeMB == 64 && c.allowOther && c.readOnly)
        #expect(!c.description.contains("KEY1"))
    }

    @Test func rosetFuseDefaultsAndEnvironment() throws {
        let env = ["ROSET_API_KEY": "K", "ROSET_API_URL": "http://e:1", "ROSET_MOUNT_ID": "envm"]
        let c = try MountCommandLine.parse(["roset-fuse", "/m"], environment: env, identity: userIdentity)
        #expect(c.cacheTTL == 300 && c.cacheSizeMB == 256 && !c.foreground && !c.readOnly)
        #expect(c.apiURL.host == "e" && c.mountId == "envm" && c.apiKey.value == "K")
    }

    @Test func csiLauncherForm() throws {
        let dir = NSTemporaryDirectory() + "roset-csi-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let keyFile = dir + "/vol.key"
        FileManager.default.createFile(atPath: keyFile, contents: Data("csi-key\n".utf8), attributes: [.posixPermissions: 0o600])
        let argv = ["roset-fuse", "--mountpoint", "/staging", "--api-key-file", keyFile, "--mount-id", "vol",
                    "--allow-other", "--read-only", "--cache-dir", "/var/cache/roset",
                    "--cache-size-gb", "10", "--read-ahead", "4M"]
        let c = try MountCommandLine.parse(argv, environment: [:],
                                           identity: ProcessIdentity(uid: getuid(), gid: getgid(), home: "/h"))
        #expect(c.mountpoint == "/staging" && c.mountId == "vol" && c.apiKey.value == "csi-key")
        #expect(c.spoolDirectory == "/var/cache/roset")
        #expect(c.warnings.count == 2)
        #expect(c.warnings.joined().contains("--cache-size-gb") && c.warnings.joined().contains("--read-ahead"))
    }

    /// --ref asks for a pinned snapshot; the live tree is other data, so the mount is refused.
    @Test func refIsRefusedNotIgnored() {
        let e = refusal { try MountCommandLine.parse(["roset-fuse", "/m", "--ref", "v3"], environment: ["ROSET_API_KEY": "k"]) }
        #expect(e != nil && e?.exitStatus != 0)
        #expect(e?.message.contains("--ref v3") == true && e?.message.contains("not supported") == true)
    }

    /// --cache-dir becomes the spool folder only when no spool flag or ROSET_STAGING_DIR names one.
    @Test func cacheDirIsTheSpoolFolderOfLastResort() throws {
        let env = ["ROSET_API_KEY": "k"]
        #expect(try MountCommandLine.parse(["roset-fuse", "/m", "--cache-dir", "/c"], environment: env).spoolDirectory == "/c")
        #expect(try MountCommandLine.parse(["roset-fuse", "/m", "--cache-dir", "/c", "--spool-dir", "/s"], environment: env).spoolDirectory == "/s")
        #expect(try MountCommandLine.parse(["roset-fuse", "/m", "--cache-dir", "/c"],
                                           environment: env.merging(["ROSET_STAGING_DIR": "/e"]) { $1 }).spoolDirectory == "/e")
    }

    /// roset-fuse's -d is libfuse's: debug logging in the foreground; --log-level and --subdir map
    /// onto the mount options.
    @Test func rosetFuseDebugLogLevelAndSubdir() throws {
        let env = ["ROSET_API_KEY": "k"]
        let d = try MountCommandLine.parse(["roset-fuse", "/m", "-d"], environment: env)
        #expect(d.foreground && d.logLevel == .debug)
        let l = try MountCommandLine.parse(["roset-fuse", "/m", "--log-level", "warn", "--subdir", "/a/b/"], environment: env)
        #expect(!l.foreground && l.logLevel == .warn && l.subdir == "a/b")
    }

    @Test func helpListsEveryFlagWithDefaults() {
        let e = refusal { try MountCommandLine.parse(["roset-fuse", "--help"], environment: [:]) }
        #expect(e?.exitStatus == 0)
        for flag in ["--api-key", "--api-key-file", "--api-url", "--mount-id", "--foreground", "--debug",
                     "--cache-ttl", "--cache-size-mb", "--allow-other", "--read-only", "--mountpoint", "--ref", "--log-level", "--subdir",
                     "--cache-dir", "--cache-size-gb", "--read-ahead"] {
            #expect(e?.message.contains(flag) == true, "\(flag)")
        }
        #expect(e?.message.contains("(default: 300") == true)
        #expect(e?.message.contains("https://api.roset.dev") == true)
    }

    @Test func rosetFuseErrors() {
        #expect(refusal { try MountCommandLine.parse(["roset-fuse"], environment: ["ROSET_API_KEY": "k"]) }?
            .message.contains("mount point is required") == true)
        let bad = refusal { try MountCommandLine.parse(["roset-fuse", "/m", "--cache-ttl", "abc"], environment: ["ROSET_API_KEY": "k"]) }
        #expect(bad != nil && bad?.exitStatus != 0)
    }
}

@Suite struct CommandLineFormTests {
    @Test func formByNameAndArguments() {
        #expect(MountCommandLine.form(argv0: "/sbin/mount.roset", arguments: ["m", "/d", "-o", "ro"]) == .mountHelper)
        #expect(MountCommandLine.form(argv0: "/sbin/mount.fuse.roset", arguments: ["m", "/d"]) == .mountHelper)
        #expect(MountCommandLine.form(argv0: "roset", arguments: ["m", "/d", "-o", "rw"]) == .mountHelper)
        #expect(MountCommandLine.form(argv0: "/usr/local/bin/roset-fuse", arguments: ["/d"]) == .rosetFuse)
        #expect(MountCommandLine.form(argv0: "mount.roset", arguments: ["/d", "--api-key-file", "f"]) == .rosetFuse)
        #expect(MountCommandLine.form(argv0: "other", arguments: ["m", "/d"]) == .mountHelper)
        #expect(MountCommandLine.form(argv0: "other", arguments: ["/d"]) == .rosetFuse)
    }

    @Test func helperFormThroughTheEntry() throws {
        let c = try MountCommandLine.parse(["mount.roset", "abc", "/mnt/a", "-o", "ro,cache_ttl=7"],
                                           environment: ["ROSET_API_KEY": "k"], identity: userIdentity)
        #expect(c.mountId == "abc" && c.readOnly && c.cacheTTL == 7)
    }
}

@Suite struct ArgvScrubberTests {
    @Test func overwritesKeyValuesOnly() {
        let args = ["prog", "/mnt", "--api-key", "SECRET1", "--api-key=SECRET2", "--mount-id", "m"]
        var cStrings = args.map { strdup($0) }
        defer { cStrings.forEach { free($0) } }
        let n = cStrings.withUnsafeMutableBufferPointer { ArgvScrubber.scrub(argc: args.count, argv: $0.baseAddress!) }
        #expect(n == 2)
        let after = cStrings.map { String(cString: $0!) }
        #expect(after == ["prog", "/mnt", "--api-key", "xxxxxxx", "--api-key=xxxxxxx", "--mount-id", "m"])
    }
}

@Suite struct DaemonReportTests {
    @Test func reportsBecomeExitStatuses() {
        #expect(Daemonizer.interpret("OK\n") == 0)
        #expect(Daemonizer.interpret("ERR 32 the key was refused\n") == 32)
        #expect(Daemonizer.interpret("ERR 1 bad option\n") == 1)
        #expect(Daemonizer.interpret("") == 32)           // the daemon died without a word
        #expect(Daemonizer.interpret("garbage") == 32)
    }
}
