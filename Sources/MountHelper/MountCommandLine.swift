// Picks the command-line form by the name the binary was started under and by its arguments:
// `mount.roset`, `mount.fuse.roset` and `roset` (mount.fuse3 runs `roset SPEC DIR -o OPTS`) are
// the mount(8) helper form; `roset-fuse` is the original command line's form; an argument list
// with long flags (`--api-key ...`) is that form whatever the name.
import ArgumentParser
import Foundation

public enum CommandLineForm: Sendable, Equatable {
    case mountHelper
    case rosetFuse
}

public enum MountCommandLine {
    static let helperNames: Set<String> = ["mount.roset", "mount.fuse.roset", "roset"]

    public static func form(argv0: String, arguments: [String]) -> CommandLineForm {
        let name = (argv0 as NSString).lastPathComponent
        if name == "roset-fuse" { return .rosetFuse }
        let hasLongFlags = arguments.contains { $0.hasPrefix("--") && $0 != "--" && $0 != "--help" }
        if helperNames.contains(name) { return hasLongFlags ? .rosetFuse : .mountHelper }
        return hasLongFlags || arguments.filter({ !$0.hasPrefix("-") }).count < 2 ? .rosetFuse : .mountHelper
    }

    /// `argv` includes argv[0]. Throws MountHelperError (exit status 0 for --help, with the text).
    public static func parse(_ argv: [String], environment: [String: String],
                             identity: ProcessIdentity = .current) throws -> MountConfiguration {
        let arguments = Array(argv.dropFirst())
        let request: MountRequest
        switch form(argv0: argv.first ?? "mount.roset", arguments: arguments) {
        case .mountHelper:
            request = try HelperArguments.parse(arguments)
        case .rosetFuse:
            let parsed: RosetFuseCommandLine
            do {
                parsed = try RosetFuseCommandLine.parse(arguments)
            } catch {
                let status = RosetFuseCommandLine.exitCode(for: error).rawValue
                throw MountHelperError(RosetFuseCommandLine.fullMessage(for: error), exitStatus: status)
            }
            request = try parsed.request(environment: environment)
        }
        return try ConfigurationResolver.resolve(request, environment: environment, identity: identity)
    }
}

/// The whole program around the filesystem: parse, scrub the key from argv, enter a namespace,
/// fake mode, signals blocked, foreground or double-fork daemon, logging. `work` runs in the
/// process that mounts (the daemon, or this one in the foreground) and returns its exit status;
/// it must call `reporter.ready()` only once the mount is live. `checkMountpoint` returns why a
/// mount point cannot be mounted on (nil: it can); it is all `mount -f` checks there.
public enum MountProgram {
    public static func run(arguments: [String] = CommandLine.arguments,
                           environment: [String: String] = ProcessInfo.processInfo.environment,
                           checkMountpoint: (String) -> String? = folderRefusal,
                           work: @escaping (MountConfiguration, ReadinessReporter) -> Int32) -> Never {
        let config: MountConfiguration
        do {
            config = try MountCommandLine.parse(arguments, environment: environment)
        } catch let error as MountHelperError {
            if error.exitStatus == 0 {
                writeAll(STDOUT_FILENO, error.message + "\n")
                exit(0)
            }
            writeAll(STDERR_FILENO, "mount.roset: \(error.message)\n")
            exit(error.exitStatus)
        } catch {
            writeAll(STDERR_FILENO, "mount.roset: \(error)\n")
            exit(MountHelperError.usageStatus)
        }
        ArgvScrubber.scrubKeyArguments()
        for warning in config.warnings { writeAll(STDERR_FILENO, "mount.roset: warning: \(warning)\n") }
        if config.verbose { writeAll(STDERR_FILENO, "mount.roset: \(config)\n") }

        if let namespace = config.mountNamespace {
            do { try MountNamespace.enter(namespace) } catch {
                writeAll(STDERR_FILENO, "mount.roset: \(error)\n")
                exit(MountHelperError.mountFailureStatus)
            }
        }
        if config.fake {
            // mount -f gives the verdict a real mount would give on the mount point (the same
            // check, `checkMountpoint`), then stops.
            if let refusal = checkMountpoint(config.mountpoint) {
                writeAll(STDERR_FILENO, "mount.roset: \(refusal)\n")
                exit(MountHelperError.mountFailureStatus)
            }
            if config.verbose { writeAll(STDERR_FILENO, "mount.roset: fake mount: everything checked, not mounting\n") }
            exit(0)
        }

        // Before any thread exists, so every thread inherits the mask (see SignalWatcher).
        SignalWatcher.blockTerminationSignals()
        if config.foreground {
            do { try MountLogging.bootstrap(configuration: config, foreground: true) } catch {
                writeAll(STDERR_FILENO, "mount.roset: \(error)\n")
                exit(MountHelperError.usageStatus)
            }
            exit(work(config, .foreground()))
        }
        Daemonizer.daemonize { reporter in
            do { try MountLogging.bootstrap(configuration: config, foreground: false) } catch {
                reporter.failed("\(error)", exitStatus: MountHelperError.usageStatus)
                return MountHelperError.usageStatus
            }
            return work(config, reporter)
        }
    }
}

extension MountProgram {
    /// The mount point checks that need no knowledge of mounts: it exists and is a folder.
    public static func folderRefusal(_ mountpoint: String) -> String? {
        var isFolder: ObjCBool = false
        guard FileManager.default.fileExists(atPath: mountpoint, isDirectory: &isFolder) else {
            return "mount point \(mountpoint) does not exist"
        }
        return isFolder.boolValue ? nil : "mount point \(mountpoint) is not a folder"
    }
}
