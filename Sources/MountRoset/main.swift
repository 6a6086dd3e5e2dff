// mount.roset (also answering as mount.fuse.roset, roset and roset-fuse) picks its command:
// --version, `status DIR`, or a mount (MountHelper parses and daemonizes, MountDaemon serves it
// through RosetFUSE over RosetFS). --version is answered before any option parsing, so it works
// under every name the binary has (bug reports and packaging scripts ask for it).
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
MountProgram.run(work: MountDaemon.serve)
