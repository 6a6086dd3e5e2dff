// contrib/install.sh and contrib/uninstall.sh, run for real into a temporary PREFIX and SBIN with
// the binaries already built (ROSET_BIN_DIR), so the machine's /usr/local and /sbin stay as they
// are: the helper and its names are installed and work, the man pages land where man(1) finds
// them, and uninstall removes exactly what install put there, leaving a foreign link alone.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

private let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

@Suite(.serialized, .timeLimit(.minutes(10)),
       .enabled(if: getuid() == 0 && FileManager.default.isExecutableFile(atPath: TestBinaries.path("mount.roset")),
                "needs root and the built mount.roset"))
struct MountInstallScriptTests {
    @Test func installIntoAPrefixThenUninstall() throws {
        let scratch = try TemporaryDirectory(prefix: "roset-install")
        defer { scratch.remove() }
        let prefix = scratch.path + "/prefix", sbin = scratch.path + "/sbin"
        let env = ["PREFIX": prefix, "SBIN": sbin, "ROSET_SKIP_DEPS": "1", "ROSET_BIN_DIR": TestBinaries.directory.path]

        let install = Command.run("/bin/bash", [packageRoot.path + "/contrib/install.sh"], environment: env, timeout: 300)
        #expect(install.status == 0, "install.sh: \(install)")
        #expect(FileManager.default.isExecutableFile(atPath: prefix + "/sbin/mount.roset"))
        for link in [prefix + "/bin/roset-fuse", prefix + "/bin/roset", sbin + "/mount.roset", sbin + "/mount.fuse.roset"] {
            #expect(Posix.readlink(link) == prefix + "/sbin/mount.roset", "\(link) → \(Posix.readlink(link) ?? "nothing")")
        }
        for page in ["man8/mount.roset.8", "man8/mount.fuse.roset.8", "man1/roset-fuse.1"] {
            #expect(FileManager.default.fileExists(atPath: prefix + "/share/man/" + page), "\(page) not installed")
        }
        // The installed names answer: the roset-fuse form by its name, the helper form checks a mount (-f).
        let help = Command.run(prefix + "/bin/roset-fuse", ["--help"])
        #expect(help.status == 0 && help.stdout.contains("--api-key-file"), "\(help)")
        let key = scratch.path + "/key"
        try Data("k\n".utf8).write(to: URL(fileURLWithPath: key))
        chmod(key, 0o600)
        let fake = Command.run(sbin + "/mount.fuse.roset", ["default", scratch.path, "-f", "-o", "apikey_file=\(key)"])
        #expect(fake.status == 0, "\(fake)")
        if FileManager.default.isExecutableFile(atPath: "/usr/bin/man") {
            let where_ = Command.run("/usr/bin/man", ["-M", prefix + "/share/man", "-w", "mount.fuse.roset"])
            #expect(where_.status == 0 && where_.stdout.contains(prefix), "man -w: \(where_)")
        }
        // Installing again (an upgrade) works over the existing links.
        let again = Command.run("/bin/bash", [packageRoot.path + "/contrib/install.sh"], environment: env, timeout: 300)
        #expect(again.status == 0, "second install.sh: \(again)")
        #expect(Posix.readlink(sbin + "/mount.fuse.roset") == prefix + "/sbin/mount.roset")

        // A helper name someone else owns is left alone by uninstall.
        unlink(sbin + "/mount.roset")
        try FileManager.default.createSymbolicLink(atPath: sbin + "/mount.roset", withDestinationPath: "/opt/other/mount.roset")
        let uninstall = Command.run("/bin/bash", [packageRoot.path + "/contrib/uninstall.sh"], environment: env, timeout: 300)
        #expect(uninstall.status == 0, "uninstall.sh: \(uninstall)")
        for gone in [prefix + "/sbin/mount.roset", prefix + "/bin/roset-fuse", prefix + "/bin/roset", sbin + "/mount.fuse.roset",
                     prefix + "/share/man/man8/mount.roset.8", prefix + "/share/man/man8/mount.fuse.roset.8",
                     prefix + "/share/man/man1/roset-fuse.1"] {
            #expect(!Posix.exists(gone), "\(gone) was not removed")
        }
        #expect(Posix.readlink(sbin + "/mount.roset") == "/opt/other/mount.roset", "uninstall removed a foreign link")
    }
}
