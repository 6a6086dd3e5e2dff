// mount.roset as util-linux mount(8) runs it, for real: `mount -t fuse.roset`, `mount -t roset`,
// fstab lines through `mount --fstab FILE` (never the machine's /etc/fstab), and mount.fuse3
// running `roset` from PATH. Each test puts /sbin/mount.fuse.roset and /sbin/mount.roset in
// place (links to the built binary) and restores /sbin afterwards; `umount DIR` must end the daemon.
import Foundation
import Testing
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

@Suite(.serialized, .timeLimit(.minutes(10)),
       .enabled(if: MountCommandEnvironment.isAvailable, "\(MountCommandEnvironment.requirement)"))
struct MountCommandTests {
    /// After a mount: live at once, one daemon, then `umount DIR` takes the mount and the daemon away.
    private func expectLiveThenUmount(_ f: MountCommandFixture, _ dir: String, fsName: String = "default") {
        #expect(f.isMounted(dir), "\(dir) is not a fuse.roset mount")
        #expect(procMountsEntry(dir)?.source == fsName)
        #expect(Posix.stat(dir).0 == .ok)
        #expect(Posix.write(dir + "/hello.txt", Array("hi".utf8)) == .ok)
        #expect(Posix.read(dir + "/hello.txt").1 == Array("hi".utf8))
        let daemons = f.daemons(serving: dir)
        #expect(daemons.count == 1, "daemons serving \(dir): \(daemons)")
        let u = Command.run("/bin/umount", [dir])
        #expect(u.status == 0, "umount: \(u)")
        #expect(f.waitUntilUnmounted(dir))
        for pid in daemons { #expect(ProcFS.waitUntilGone(pid), "daemon \(pid) still running after umount") }
    }

    @Test func mountTypeFuseRosetThroughMount8() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let dir = try f.mountpoint("fuse-type")
        let r = f.mount(["-t", "fuse.roset", "default", dir, "-o", f.options(for: dir)])
        #expect(r.status == 0, "mount -t fuse.roset: \(r)")
        expectLiveThenUmount(f, dir)
    }

    @Test func mountTypeRosetThroughMount8() throws {
        let f = try MountCommandFixture(serverArguments: ["--mount", "datasets"])
        defer { f.close() }
        try f.sbin.link("mount.roset", to: f.binary)
        try f.sbin.clear("mount.fuse.roset")
        let dir = try f.mountpoint("roset-type")
        let r = f.mount(["-t", "roset", "datasets", dir, "-o", f.options(for: dir)])
        #expect(r.status == 0, "mount -t roset: \(r)")
        // SPEC chose the mount (the server's second one) and is the source in /proc/mounts.
        expectLiveThenUmount(f, dir, fsName: "datasets")
    }

    @Test func fakeMountThroughMount8RunsTheHelperAndDoesNotMount() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let dir = try f.mountpoint("fake")
        let ok = f.mount(["-f", "-t", "fuse.roset", "default", dir, "-o", f.options(for: dir)])
        #expect(ok.status == 0, "\(ok)")
        #expect(MountProcess.fsType(of: dir) == nil)
        #expect(f.daemons(serving: dir).isEmpty)
        // The helper really ran with -f: a bad option value is still refused, by the helper.
        let bad = f.mount(["-f", "-t", "fuse.roset", "default", dir, "-o", f.options(for: dir, ["cache_ttl=abc"])])
        #expect(bad.status != 0)
        #expect(bad.stderr.contains("cache_ttl"), "\(bad)")
        #expect(MountProcess.fsType(of: dir) == nil)
    }

    @Test func fstabLineThroughMountFstabFileDir() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let dir = try f.mountpoint("fstab-explicit")
        let fstab = f.scratch.path + "/fstab"
        // noauto + x-systemd.automount + nofail + _netdev: accepted, and mounted when named.
        try "default \(dir) fuse.roset \(f.options(for: dir, ["nofail", "_netdev", "x-systemd.automount", "noauto"])) 0 0\n"
            .write(toFile: fstab, atomically: true, encoding: .utf8)
        let r = f.mount(["--fstab", fstab, dir])
        #expect(r.status == 0, "mount --fstab FILE DIR: \(r)")
        expectLiveThenUmount(f, dir)
    }

    @Test func fstabMountAllSkipsNoautoAndMountsTheRest() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let auto = try f.mountpoint("fstab-auto")
        let manual = try f.mountpoint("fstab-noauto")
        let fstab = f.scratch.path + "/fstab"
        try """
            # roset-fuse test fstab (never /etc/fstab)
            default \(auto) fuse.roset \(f.options(for: auto, ["_netdev", "nofail", "comment=\"roset,test\""])) 0 0
            default \(manual) fuse.roset \(f.options(for: manual, ["nofail", "_netdev", "x-systemd.automount", "noauto"])) 0 0

            """.write(toFile: fstab, atomically: true, encoding: .utf8)
        // -t limits `mount -a` to fuse.roset lines; the file holds only this test's lines anyway.
        let r = f.mount(["-a", "--fstab", fstab, "-t", "fuse.roset"])
        #expect(r.status == 0, "mount -a --fstab FILE: \(r)")
        #expect(f.isMounted(auto), "the auto line was not mounted: \(r)")
        #expect(!f.isMounted(manual), "mount -a mounted a noauto line")
        // Running it again must not fail on the line that is already mounted.
        let again = f.mount(["-a", "--fstab", fstab, "-t", "fuse.roset"])
        #expect(again.status == 0, "second mount -a: \(again)")
        #expect(f.daemons(serving: auto).count == 1)
        // -O selects lines by option: only the _netdev lines; noauto is still skipped.
        let u = Command.run("/bin/umount", [auto])
        #expect(u.status == 0, "\(u)")
        #expect(f.waitUntilNoDaemon(auto))
        let filtered = f.mount(["-a", "--fstab", fstab, "-O", "_netdev"])
        #expect(filtered.status == 0, "mount -a -O _netdev: \(filtered)")
        #expect(f.isMounted(auto))
        #expect(!f.isMounted(manual))
        expectLiveThenUmount(f, auto)
    }

    @Test func sloppyFlagFromMount8TurnsUnknownOptionsIntoWarnings() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let dir = try f.mountpoint("sloppy")
        let strict = f.mount(["-t", "fuse.roset", "default", dir, "-o", f.options(for: dir, ["frobnicate=1"])])
        #expect(strict.status == 1, "\(strict)")
        #expect(strict.stderr.contains("unknown mount option 'frobnicate=1'"), "\(strict)")
        #expect(MountProcess.fsType(of: dir) == nil)
        let sloppy = f.mount(["-s", "-t", "fuse.roset", "default", dir, "-o", f.options(for: dir, ["frobnicate=1"])])
        #expect(sloppy.status == 0, "\(sloppy)")
        #expect(sloppy.stderr.contains("warning") && sloppy.stderr.contains("frobnicate"), "\(sloppy)")
        expectLiveThenUmount(f, dir)
    }

    @Test func ownerAndModeOptionsThroughMount8() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        guard let nobody = getpwnam("nobody")?.pointee.pw_uid, let nogroup = getgrnam("nogroup")?.pointee.gr_gid else {
            print("skipped: no user nobody or group nogroup")
            return
        }
        try f.createRemoteFolder("made-remotely")
        let dir = try f.mountpoint("owner")
        // mount(8) turns the names into numbers before it calls the helper.
        let r = f.mount(["-t", "fuse.roset", "default", dir, "-o", f.options(for: dir, ["uid=nobody", "gid=nogroup", "umask=027"])])
        #expect(r.status == 0, "\(r)")
        let (rc, st) = Posix.stat(dir + "/made-remotely")
        #expect(rc == .ok)
        #expect(st.st_uid == nobody && st.st_gid == nogroup, "owner \(st.st_uid):\(st.st_gid)")
        #expect(st.st_mode & 0o7777 == 0o750, "mode \(String(st.st_mode & 0o7777, radix: 8))")
        expectLiveThenUmount(f, dir)
    }

    @Test func contribExamplesAreAcceptedByMount8() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        try f.sbin.link("mount.roset", to: f.binary)
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        func localized(_ options: String, _ dir: String) -> String {
            options.replacingOccurrences(of: "apikey_file=/etc/roset/key", with: "apikey_file=\(f.keyFile)")
                .replacingOccurrences(of: "spool_dir=/var/lib/roset/spool", with: "spool_dir=\(f.spoolDirectory(for: dir))")
        }
        // Every fstab.example line, with this test's folders and key, passes mount(8)'s fake mount
        // (the helper validates every option with -f).
        let example = try String(contentsOf: root.appendingPathComponent("contrib/fstab.example"), encoding: .utf8)
        let lines = example.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
            .filter { $0.count >= 4 && !$0[0].hasPrefix("#") }
        #expect(lines.count >= 3, "no lines read from fstab.example")
        var fstab = ""
        var dirs: [String] = []
        for (i, fields) in lines.enumerated() {
            let dir = try f.mountpoint("example-\(i)")
            dirs.append(dir)
            fstab += "\(fields[0]) \(dir) \(fields[2]) \(localized(fields[3], dir)) 0 0\n"
        }
        let file = f.scratch.path + "/fstab"
        try fstab.write(toFile: file, atomically: true, encoding: .utf8)
        for dir in dirs {
            let r = f.mount(["-f", "--fstab", file, dir])
            #expect(r.status == 0, "fstab.example line for \(dir): \(r)")
            #expect(MountProcess.fsType(of: dir) == nil)
        }
        // The systemd mount unit's What=, Type= and Options= the same way.
        let unit = try String(contentsOf: root.appendingPathComponent("contrib/systemd/mnt-roset.mount"), encoding: .utf8)
        func value(_ key: String) -> String? {
            unit.split(separator: "\n").first { $0.hasPrefix(key + "=") }.map { String($0.dropFirst(key.count + 1)) }
        }
        let what = try #require(value("What")), type = try #require(value("Type")), options = try #require(value("Options"))
        let dir = try f.mountpoint("unit")
        let r = f.mount(["-f", "-t", type, what, dir, "-o", localized(options, dir)])
        #expect(r.status == 0, "mnt-roset.mount: \(r)")
    }

    @Test func mountFuse3RunsRosetFromPath() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        guard FileManager.default.isExecutableFile(atPath: "/sbin/mount.fuse3") else {
            print("skipped: /sbin/mount.fuse3 is not installed (Debian package fuse3)")
            return
        }
        _ = try f.alias("roset")
        let dir = try f.mountpoint("fuse3")
        let path = f.aliasDirectory + ":" + Command.baseEnvironment["PATH"]!
        let r = Command.run("/sbin/mount.fuse3", ["default", dir, "-o", f.options(for: dir, ["nofail", "_netdev"]), "-t", "fuse.roset"],
                            environment: ["PATH": path])
        #expect(r.status == 0, "mount.fuse3: \(r)")
        expectLiveThenUmount(f, dir)
    }

    @Test func mountTypeFuseRosetFallsBackToMountFuse3() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        guard FileManager.default.isExecutableFile(atPath: "/sbin/mount.fuse") else {
            print("skipped: /sbin/mount.fuse (fuse3's mount.fuse3) is not installed")
            return
        }
        try f.sbin.clear("mount.fuse.roset")
        // mount(8) runs helpers without PATH, so mount.fuse3's shell searches its default PATH:
        // `roset` has to be in /usr/local/bin (where contrib/install.sh puts it) or the like.
        try f.sbin.link("roset", to: f.binary, in: "/usr/local/bin")
        let dir = try f.mountpoint("fallback")
        let r = f.mount(["-t", "fuse.roset", "default", dir, "-o", f.options(for: dir)])
        #expect(r.status == 0, "mount -t fuse.roset via mount.fuse3: \(r)")
        expectLiveThenUmount(f, dir)
    }

    @Test func vfsAndFuseOptionsReachTheKernel() throws {
        let f = try MountCommandFixture()
        defer { f.close() }
        try f.sbin.link("mount.fuse.roset", to: f.binary)
        let dir = try f.mountpoint("options")
        let r = f.mount(["-t", "fuse.roset", "default", dir, "-o",
                         f.options(for: dir, ["ro", "nosuid", "nodev", "noexec", "noatime", "allow_other"])])
        #expect(r.status == 0, "\(r)")
        let entry = try #require(procMountsEntry(dir), "no /proc/mounts line for \(dir)")
        #expect(entry.type == "fuse.roset")
        for option in ["ro", "nosuid", "nodev", "noexec", "noatime", "allow_other"] {
            #expect(entry.options.contains(option), "\(option) missing from /proc/mounts: \(entry.options.sorted())")
        }
        #expect(!entry.options.contains("rw"))
        #expect(Posix.write(dir + "/x", [1]) == .failed(EROFS))
        let u = Command.run("/bin/umount", [dir])
        #expect(u.status == 0, "\(u)")
        #expect(f.waitUntilNoDaemon(dir))

        // The opposite flags: a read-write mount without them.
        let rw = f.mount(["-t", "fuse.roset", "default", dir, "-o", f.options(for: dir, ["rw", "dev", "suid", "exec"])])
        #expect(rw.status == 0, "\(rw)")
        let rwEntry = try #require(procMountsEntry(dir))
        #expect(rwEntry.options.contains("rw"))
        #expect(!rwEntry.options.contains("noexec"))
        #expect(!rwEntry.options.contains("allow_other"))
        #expect(Command.run("/bin/umount", [dir]).status == 0)
        #expect(f.waitUntilNoDaemon(dir))
    }
}
