// mount.roset (also answering as mount.fuse.roset, roset and roset-fuse) picks its command:
// --version, `status DIR`, `invalidate PATH...`, `warmup PATH...`, or a mount (MountHelper parses
// and daemonizes, MountDaemon serves it through RosetFUSE over RosetFS). --version is answered
// before any option parsing, so it works under every name the binary has (bug reports and
// packaging scripts ask for it).
import Foundation
import MountHelper
import RosetClient
import RosetFUSE

let arguments = Array(CommandLine.arguments.dropFirst())
if arguments.count == 1, ["--version", "-V"].contains(arguments[0]) {
    print("mount.roset \(RosetClientVersion.current) (libfuse \(FUSESession.libfuseVersion))")
    exit(0)
}
if let status = StatusCommandLine.parse(arguments) {
    exit(StatusCommand.run(status))
}
if let paths = InvalidateCommandLine.parse(arguments) {
    exit(InvalidateCommand.run(paths))
}
do {
    if let warmup = try WarmupCommandLine.parse(arguments) {
        exit(WarmupCommand.run(warmup))
    }
} catch {
    FileHandle.standardError.write(Data("mount.roset: \(error)\n".utf8))
    exit(1)
}
// mount -f checks the mount point as a real mount would (an automount point passes).
MountProgram.run(checkMountpoint: { dir in
    do { _ = try FUSESession.checkMountpoint(dir); return nil } catch { return MountFailureMessage.mountpoint(error) }
}, work: MountDaemon.serve)
