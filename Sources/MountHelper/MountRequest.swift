// What a command line asked for, before the environment and the defaults are applied. Both
// command-line forms (mount(8) helper and the original `roset-fuse` command line) produce one
// of these, so they share one validation (ConfigurationResolver).
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public struct MountRequest: Sendable {
    /// mount(8)'s SPEC (a mount id, `default`/`roset`, or `roset:<id>`); nil in the roset-fuse form.
    public var spec: String?
    public var mountpoint: String
    public var options: [MountOption]
    public var sloppy = false
    public var fake = false
    public var verbose = false
    public var mountNamespace: String?
    /// A key given on the roset-fuse command line (`--api-key`); removed from argv by ArgvScrubber.
    public var apiKeyArgument: String?
    /// Notes from the command-line parser (ignored flags), carried into the configuration.
    public var warnings: [String] = []

    public init(spec: String?, mountpoint: String, options: [MountOption]) {
        self.spec = spec
        self.mountpoint = mountpoint
        self.options = options
    }
}

/// Who is mounting: decides ownership defaults, the key file's allowed owner and the spool folder.
public struct ProcessIdentity: Sendable {
    public var uid: UInt32
    public var gid: UInt32
    public var home: String?

    public init(uid: UInt32, gid: UInt32, home: String?) {
        self.uid = uid; self.gid = gid; self.home = home
    }

    public static var current: ProcessIdentity {
        let uid = getuid()
        var home = ProcessInfo.processInfo.environment["HOME"]
        if home == nil || home!.isEmpty, let pw = getpwuid(uid), let dir = pw.pointee.pw_dir {
            home = String(cString: dir)
        }
        return ProcessIdentity(uid: uid, gid: getgid(), home: home)
    }
}
