// Mounts an InMemoryFileSystem through a real /dev/fuse mount in a temporary folder, serving it
// on a background thread of the test process. `close()` stops the session and always leaves no
// mount behind (lazy unmount as the last resort), and removes the folder.
import Foundation
import Logging
import RosetFS
import RosetFUSE
import TestSupport
#if canImport(Glibc)
import Glibc
#endif

final class MountedFileSystem: @unchecked Sendable {
    let fs: InMemoryFileSystem
    let session: FUSESession
    let directory: TemporaryDirectory
    let mountpoint: String
    private let finished = DispatchSemaphore(value: 0)
    private let resultLock = NSLock()
    private var loopResult: Int32?

    init(options: FUSEMountOptions = FUSEMountOptions(fsName: "roset:test"), fs: InMemoryFileSystem = InMemoryFileSystem()) throws {
        self.fs = fs
        directory = try TemporaryDirectory(prefix: "roset-fuse-test")
        mountpoint = directory.url.appendingPathComponent("mnt").path
        try FileManager.default.createDirectory(atPath: mountpoint, withIntermediateDirectories: true)
        session = FUSESession(fileSystem: fs, mountpoint: mountpoint, options: options, shutdownGrace: 7,
                              logger: Logger(label: "test.fuse"))
        do {
            try session.mount()
        } catch {
            directory.remove()
            throw error
        }
        let thread = Thread { [session, finished, resultLock] in
            let r = session.run()
            resultLock.withLock { self.loopResult = r }
            finished.signal()
        }
        thread.start()
    }

    func path(_ name: String) -> String { mountpoint + "/" + name }

    /// Waits (bounded) for `run` to return after the mount ended some other way.
    func waitForLoop(seconds: Double = 20) -> Bool {
        if result != nil { return true }
        if finished.wait(timeout: .now() + seconds) == .success {
            finished.signal()   // leave it signalled for later waiters
            return true
        }
        return false
    }

    var result: Int32? { resultLock.withLock { loopResult } }

    /// Stops the session; if it does not return, detaches the mount so nothing is left behind.
    func close(grace: Double = 1) {
        let stopper = Thread { [session] in session.stop(grace: grace) }
        stopper.start()
        if !waitForLoop() {
            _ = umount2(mountpoint, Int32(MNT_DETACH))
        }
        if MountInfo.isMountPoint(mountpoint) { _ = umount2(mountpoint, Int32(MNT_DETACH)) }
        directory.remove()
    }
}

enum MountInfo {
    static func fsType(of path: String) -> (source: String, type: String)? {
        guard let text = try? String(contentsOfFile: "/proc/self/mountinfo", encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n") {
            let f = line.split(separator: " ")
            guard let dash = f.firstIndex(of: "-"), dash + 2 < f.count, f[4] == path else { continue }
            return (String(f[dash + 2]), String(f[dash + 1]))
        }
        return nil
    }
    static func isMountPoint(_ path: String) -> Bool { fsType(of: path) != nil }
}
