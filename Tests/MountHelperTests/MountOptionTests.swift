// Option parsing (libmount's rules), classification, value validation and precedence.
import Foundation
import Testing
@testable import MountHelper

let userIdentity = ProcessIdentity(uid: 1000, gid: 1000, home: "/home/alice")
let keyEnvironment = ["ROSET_API_KEY": "env-key-123"]

func resolve(_ optstr: String, spec: String? = "default", environment: [String: String] = keyEnvironment,
             sloppy: Bool = false, identity: ProcessIdentity = userIdentity) throws -> MountConfiguration {
    var request = MountRequest(spec: spec, mountpoint: "/mnt/roset", options: try MountOptionList.parse(optstr))
    request.sloppy = sloppy
    return try ConfigurationResolver.resolve(request, environment: environment, identity: identity)
}

func refusal(_ body: () throws -> Any) -> MountHelperError? {
    do {
        _ = try body()
        return nil
    } catch let e as MountHelperError {
        return e
    } catch {
        return MountHelperError("unexpected \(error)")
    }
}

@Suite struct MountOptionListTests {
    @Test func splitsWithLibmountQuoting() throws {
        let options = try MountOptionList.parse("ro,comment=\"a,b\",uid=1000,x-systemd.automount,allow_other")
        #expect(options == [MountOption("ro"), MountOption("comment", "a,b"), MountOption("uid", "1000"),
                            MountOption("x-systemd.automount"), MountOption("allow_other")])
    }

    @Test func emptyAndValueWithEquals() throws {
        #expect(try MountOptionList.parse("").isEmpty)
        #expect(try MountOptionList.parse("api_url=http://h/x?a=b") == [MountOption("api_url", "http://h/x?a=b")])
    }
}

@Suite struct OptionClassificationTests {
    @Test func vfsFlagsAndTheirOpposites() throws {
        let c = try resolve("ro,nosuid,nodev,noexec,noatime,sync,dirsync")
        #expect(c.readOnly)
        #expect(c.vfsFlags == [.nosuid, .nodev, .noexec, .noatime, .sync, .dirsync])
        let d = try resolve("nosuid,suid,noexec,exec,sync,async,ro,rw,noatime,relatime")
        #expect(!d.readOnly)
        #expect(d.vfsFlags == [.suid, .exec, .async, .relatime])
    }

    @Test func fuseOptions() throws {
        let c = try resolve("allow_other,default_permissions,max_read=131072,blksize=65536,max_threads=12")
        #expect(c.allowOther && c.defaultPermissions && !c.allowRoot)
        #expect(c.maxThreads == 12)
        #expect(refusal { try resolve("max_threads=0") }?.message.contains("max_threads") == true)
        #expect(c.readAheadKB == 4096)
        #expect(try resolve("read_ahead_kb=0").readAheadKB == 0)
        #expect(try resolve("read_ahead_kb=16384").readAheadKB == 16384)
        for bad in ["read_ahead_kb=-1", "read_ahead_kb=4M", "read_ahead_kb=2000000", "read_ahead_kb"] {
            #expect(refusal { try resolve(bad) }?.message.contains("read_ahead_kb") == true, "\(bad)")
        }
        #expect(c.maxRead == 131072 && c.blockSize == 65536)
        #expect(refusal { try resolve("allow_other,allow_root") }?.message.contains("allow_root") == true)
    }

    @Test func rosetOptions() throws {
        let c = try resolve("api_url=http://127.0.0.1:8080,mount_id=m1,cache_ttl=1.5,cache_size_mb=16,spool_dir=/s,"
                            + "spool_max_mb=100,uid=42,gid=43,umask=027,upload_concurrency=3,part_size_mb=8,close_wait,"
                            + "foreground,debug,log_file=/tmp/l,shutdown_grace=9,upload_delay_ms=250,direct_io")
        #expect(c.apiURL.absoluteString == "http://127.0.0.1:8080")
        #expect(c.mountId == "m1")
        #expect(c.cacheTTL == 1.5 && c.cacheSizeMB == 16)
        #expect(c.spoolDirectory == "/s" && c.spoolMaxMB == 100)
        #expect(c.uid == 42 && c.gid == 43 && c.umask == 0o027)
        #expect(c.fileMode == 0o640 && c.dirMode == 0o750)   // derived from umask
        #expect(c.uploadConcurrency == 3 && c.partSizeMB == 8 && c.closeWait)
        #expect(c.foreground && c.debug && c.logLevel == .debug && c.logFile == "/tmp/l" && c.shutdownGrace == 9)
        #expect(c.uploadDelayMs == 250)
        #expect(c.directIO)
        #expect(try resolve("cache_ttl=1").uploadDelayMs == 500, "the default")
        #expect(try resolve("cache_ttl=1").directIO == false, "the default")
        #expect(try resolve("cache_ttl=1").spliceRead, "the default")
        #expect(try resolve("splice_read=no").spliceRead == false)
        let m = try resolve("file_mode=0600,dir_mode=700")
        #expect(m.fileMode == 0o600 && m.dirMode == 0o700)
    }

    @Test func requestTimeoutAndRetries() throws {
        let defaults = try resolve("cache_ttl=1")
        #expect(defaults.requestTimeout == 60 && defaults.maxAttempts == 10)
        let c = try resolve("request_timeout=2.5,retries=0")
        #expect(c.requestTimeout == 2.5 && c.maxAttempts == 1)
        #expect(try resolve("retries=100").maxAttempts == 101)
        #expect(c.description.contains("request_timeout=2.5") && c.description.contains("retries=0"))
    }

    @Test func userAndGroupNames() throws {
        let c = try resolve("uid=root,gid=root")
        #expect(c.uid == 0 && c.gid == 0)
        #expect(refusal { try resolve("uid=no-such-user-xyz") }?.message.contains("uid") == true)
        #expect(refusal { try resolve("gid=-5") }?.message.contains("gid") == true)
    }

    @Test func passedAlongOptionsAreAccepted() throws {
        let c = try resolve("_netdev,nofail,user,users,nouser,auto,noauto,defaults,x-systemd.automount,"
                            + "X-mount.mkdir,comment=\"fstab, line\",user=alice")
        #expect(c.warnings.isEmpty)
        #expect(!c.readOnly)
    }

    @Test func unknownOptionIsRefusedByNameUnlessSloppy() throws {
        let e = refusal { try resolve("ro,frobnicate=3") }
        #expect(e?.message.contains("frobnicate=3") == true)
        #expect(e?.exitStatus == 1)
        let c = try resolve("ro,frobnicate=3", sloppy: true)
        #expect(c.warnings.count == 1 && c.warnings[0].contains("frobnicate"))
    }

    @Test func badValuesNameTheOption() {
        let cases: [(String, String)] = [
            ("cache_ttl=abc", "cache_ttl"), ("cache_ttl=-1", "negative"), ("cache_size_mb=-5", "negative"),
            ("spool_max_mb=-1", "spool_max_mb"), ("part_size_mb=x", "part_size_mb"),
            ("upload_concurrency=0", "upload_concurrency"), ("api_url=ftp://host", "api_url"),
            ("api_url=notaurl", "api_url"), ("file_mode=999", "file_mode"), ("umask=abc", "umask"),
            ("dir_mode=77777", "dir_mode"), ("max_read=12x", "max_read"), ("shutdown_grace=soon", "shutdown_grace"),
            ("ro=1", "ro"), ("close_wait=maybe", "close_wait"), ("direct_io=2", "direct_io"), ("spool_dir=", "spool_dir"),
            ("upload_delay_ms=-1", "upload_delay_ms"), ("upload_delay_ms=soon", "upload_delay_ms"),
            ("request_timeout=0", "seconds > 0"), ("request_timeout=soon", "request_timeout"),
            ("retries=-1", "negative"), ("retries=101", "maximum"), ("retries=", "retries"),
        ]
        for (option, word) in cases {
            let e = refusal { try resolve(option) }
            #expect(e?.message.contains(word) == true, "\(option) → \(String(describing: e))")
            #expect(e?.message.contains(String(option.split(separator: "=")[0])) == true)
        }
    }

    @Test func literalKeyOptionIsRefusedWithAPointer() {
        for option in ["apikey=secret", "api_key=secret"] {
            let e = refusal { try resolve(option) }
            #expect(e?.message.contains("apikey_file") == true)
            #expect(e?.message.contains("secret") == false)
        }
    }
}

@Suite struct PrecedenceTests {
    @Test func apiURLOptionThenEnvironmentThenDefault() throws {
        var env = keyEnvironment
        env["ROSET_API_URL"] = "http://env.example:1"
        #expect(try resolve("api_url=https://opt.example", environment: env).apiURL.host == "opt.example")
        #expect(try resolve("", environment: env).apiURL.host == "env.example")
        #expect(try resolve("").apiURL == MountConfiguration.defaultAPIURL)
        env["ROSET_API_URL"] = "gopher://x"
        #expect(refusal { try resolve("", environment: env) }?.message.contains("ROSET_API_URL") == true)
    }

    @Test func mountIdOptionThenSpecThenEnvironment() throws {
        var env = keyEnvironment
        env["ROSET_MOUNT_ID"] = "env-mount"
        #expect(try resolve("mount_id=opt", spec: "spec-id", environment: env).mountId == "opt")
        #expect(try resolve("", spec: "spec-id", environment: env).mountId == "spec-id")
        #expect(try resolve("", spec: "roset:spec-id").mountId == "spec-id")
        #expect(try resolve("", spec: "default", environment: env).mountId == "env-mount")
        #expect(try resolve("", spec: "default").mountId == nil)
        #expect(try resolve("", spec: "roset").mountId == nil)
        // /proc/mounts shows SPEC as given, so that `mount -a` recognizes mounted fstab lines.
        #expect(try resolve("", spec: "roset").fsName == "roset")
        #expect(try resolve("mount_id=opt", spec: "m_datasets").fsName == "m_datasets")
        var seed = MountRequest(spec: nil, mountpoint: "/mnt/roset", options: [MountOption("mount_id", "m_1")])
        seed.sloppy = false
        #expect(try ConfigurationResolver.resolve(seed, environment: keyEnvironment, identity: userIdentity).fsName == "roset:m_1")
    }

    @Test func spoolDefaults() throws {
        #expect(try resolve("", identity: ProcessIdentity(uid: 0, gid: 0, home: "/root")).spoolDirectory == "/var/lib/roset/spool")
        #expect(try resolve("").spoolDirectory == "/home/alice/.local/state/roset/spool")
        var env = keyEnvironment
        env["XDG_STATE_HOME"] = "/xdg/state"
        #expect(try resolve("", environment: env).spoolDirectory == "/xdg/state/roset/spool")
    }

    @Test func keyFromEnvironmentAndMissingKey() throws {
        let c = try resolve("")
        #expect(c.apiKey.value == "env-key-123")
        #expect(c.apiKey.source == "ROSET_API_KEY")
        let e = refusal { try resolve("", environment: [:]) }
        #expect(e?.message.contains("no API key") == true)
        #expect(e?.message.contains("apikey_file") == true)
    }

    @Test func descriptionNeverShowsTheKey() throws {
        let c = try resolve("api_url=http://h:1,debug")
        #expect(!c.description.contains("env-key-123"))
        #expect(!String(reflecting: c.apiKey).contains("env-key-123"))
        #expect(!"\(c.apiKey)".contains("env-key-123"))
        #expect(c.description.contains("redacted"))
    }
}

/// log_level=, debug and -v: the daemon's level, never implying foreground; subdir= normalized.
@Suite struct LogLevelAndSubdirOptionTests {
    @Test func debugNoLongerImpliesForeground() throws {
        let c = try resolve("debug")
        #expect(c.debug && !c.foreground && c.logLevel == .debug)
    }

    @Test func logLevelWordsAndDefault() throws {
        #expect(try resolve("").logLevel == .info)
        for level in MountConfiguration.LogLevel.allCases {
            #expect(try resolve("log_level=\(level.rawValue)").logLevel == level)
        }
        // An explicit level wins over debug, whichever comes first.
        #expect(try resolve("log_level=warn,debug").logLevel == .warn)
        let e = refusal { try resolve("log_level=loud") }
        #expect(e?.message.contains("log_level") == true && e?.message.contains("error, warn, info, debug or trace") == true)
    }

    @Test func verboseRaisesTheLevelOneStep() throws {
        func verbose(_ optstr: String) throws -> MountConfiguration {
            var request = MountRequest(spec: "default", mountpoint: "/mnt/x", options: try MountOptionList.parse(optstr))
            request.verbose = true
            return try ConfigurationResolver.resolve(request, environment: keyEnvironment, identity: userIdentity)
        }
        #expect(try verbose("").logLevel == .debug)
        #expect(try verbose("log_level=error").logLevel == .warn)
        #expect(try verbose("log_level=trace").logLevel == .trace)
    }

    @Test func subdirIsNormalizedAndNeverClimbs() throws {
        #expect(try resolve("").subdir == nil)
        #expect(try resolve("subdir=/datasets/train/").subdir == "datasets/train")
        #expect(try resolve("subdir=a//./b").subdir == "a/b")
        #expect(try resolve("subdir=/").subdir == nil)
        let e = refusal { try resolve("subdir=a/../../etc") }
        #expect(e?.message.contains("subdir") == true && e?.message.contains("..") == true)
    }
}
