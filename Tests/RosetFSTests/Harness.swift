// A RosetFileSystem over a FakeCloud in a temporary spool folder, with a settable clock and fast
// retries, plus the small syscall-like helpers tests use.
import Foundation
#if canImport(Glibc)
import Glibc
#endif
import Logging
import Testing
@testable import RosetFS
import RosetClient

final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var offset: TimeInterval = 0
    var now: Date { lock.withLock { Date().addingTimeInterval(offset) } }
    func advance(_ seconds: TimeInterval) { lock.withLock { offset += seconds } }
}

final class Harness: @unchecked Sendable {
    let cloud = FakeCloud()
    let clock = TestClock()
    let base: String
    var config: FileSystemConfiguration
    var tuning = FileSystemTuning()
    private(set) var fs: RosetFileSystem!
    private var extra: [RosetFileSystem] = []
    let ctx = RequestContext(uid: getuid(), gid: getgid(), pid: 1)

    init(start: Bool = true, _ configure: (inout FileSystemConfiguration, inout FileSystemTuning) -> Void = { _, _ in }) throws {
        base = NSTemporaryDirectory() + "rosetfs-test-\(UUID().uuidString.prefix(8))"
        config = FileSystemConfiguration(apiURL: "http://127.0.0.1:1/", mountId: "m1", spoolDirectory: base)
        config.cacheTTL = 60
        config.uploadDelay = 0      // uploads start at once unless a test is about the delay
        let clock = self.clock
        tuning.now = { clock.now }
        tuning.retryBaseDelay = 0.005
        tuning.retryMaxDelay = 0.02
        tuning.attemptsBeforeReporting = 3
        cloud.now = { clock.now }
        configure(&config, &tuning)
        trace("start")
        if start { fs = try makeFileSystem() }
    }

    func makeFileSystem() throws -> RosetFileSystem {
        var logger = Logger(label: "rosetfs-test")
        logger.logLevel = ProcessInfo.processInfo.environment["ROSET_TEST_LOG"] != nil ? .debug : .critical
        let made = try RosetFileSystem(configuration: config, controlPlane: cloud, store: cloud, logger: logger, tuning: tuning)
        if fs == nil { fs = made } else { extra.append(made) }
        return made
    }

    /// Replaces `fs` (after the old one was shut down) by a new instance on the same spool.
    func restart() throws {
        fs.shutdown(grace: 0)
        extra.append(fs)
        fs = nil
        fs = try makeFileSystem()
    }

    let testName = Test.current?.name ?? "?"
    func trace(_ what: String) {
        guard let path = ProcessInfo.processInfo.environment["ROSET_TEST_TRACE"] else { return }
        let line = "\(what) \(testName)\n"
        if let h = FileHandle(forWritingAtPath: path) { h.seekToEndOfFile(); h.write(line.data(using: .utf8)!); h.closeFile() }
        else { FileManager.default.createFile(atPath: path, contents: line.data(using: .utf8)) }
    }

    deinit {
        trace("end")
        fs?.shutdown(grace: 0)
        for f in extra { f.shutdown(grace: 0) }
        try? FileManager.default.removeItem(atPath: base)
    }

    var spoolFolder: String { base + "/" + Spool.folderName(apiURL: config.apiURL, mountId: config.mountId) }

    func files(_ sub: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: spoolFolder + "/" + sub)) ?? []).sorted()
    }

    // MARK: syscall-like helpers

    @discardableResult
    func writeFile(_ name: String, _ bytes: [UInt8], parent: InodeNumber = rootInode) throws -> InodeNumber {
        let (entry, open) = try fs.create(parent: parent, name: name, mode: 0o644, flags: O_WRONLY | O_CREAT, context: ctx)
        if !bytes.isEmpty {
            let n = try bytes.withUnsafeBytes { try fs.write(inode: entry.attributes.inode, handle: open.handle, offset: 0, data: $0) }
            #expect(n == bytes.count)
        }
        try fs.flush(inode: entry.attributes.inode, handle: open.handle)
        try fs.release(inode: entry.attributes.inode, handle: open.handle)
        return entry.attributes.inode
    }

    func write(_ inode: InodeNumber, _ handle: FileHandleID, at offset: Int64, _ bytes: [UInt8]) throws {
        _ = try bytes.withUnsafeBytes { try fs.write(inode: inode, handle: handle, offset: offset, data: $0) }
    }

    func readAll(_ inode: InodeNumber) throws -> [UInt8] {
        let open = try fs.open(inode: inode, flags: O_RDONLY, context: ctx)
        defer { try? fs.release(inode: inode, handle: open.handle) }
        var out: [UInt8] = []
        while true {
            let chunk = try fs.read(inode: inode, handle: open.handle, offset: Int64(out.count), size: 64 * 1024)
            if chunk.isEmpty { break }
            out += chunk
        }
        return out
    }

    func names(_ inode: InodeNumber = rootInode, plus: Bool = false) throws -> [String] {
        let dir = try fs.opendir(inode: inode)
        defer { fs.releasedir(inode: inode, handle: dir.handle) }
        var names: [String] = []
        try fs.readdir(inode: inode, handle: dir.handle, offset: 0, plus: plus) { names.append($0.name); return true }
        return names
    }

    /// Waits until the spool holds no live entry (every upload confirmed).
    @discardableResult
    func drain(timeout: TimeInterval = 10) -> Bool {
        let deadline = Date().addingTimeInterval(timeout)
        while Date() < deadline {
            if fs.liveEntries.isEmpty { return true }
            Thread.sleep(forTimeInterval: 0.005)
        }
        return false
    }

    func errno(_ body: () throws -> Void) -> Int32? {
        do { try body(); return nil } catch let e as FSError { return e.errno } catch { return -1 }
    }
}

func bytes(_ s: String) -> [UInt8] { Array(s.utf8) }
func pattern(_ count: Int, seed: UInt8 = 7) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ Int(seed)) } }

/// Requests as the unit tests make them: from this process, whose identity the checks see.
/// (Not in RosetFS itself, so that a wrapper of FileSystemOperations cannot drop the caller.)
extension FileSystemOperations {
    // The same requests as the mount's owner makes them, for callers that are not the kernel
    // (these unit tests): the permission checks pass as they do for the owner of the mount.
    func lookup(parent: InodeNumber, name: String) throws -> EntryReply {
        try lookup(parent: parent, name: name, context: .mountOwner)
    }
    func unlink(parent: InodeNumber, name: String) throws {
        try unlink(parent: parent, name: name, context: .mountOwner)
    }
    func rmdir(parent: InodeNumber, name: String) throws {
        try rmdir(parent: parent, name: name, context: .mountOwner)
    }
    func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) throws {
        try rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: flags, context: .mountOwner)
    }
    func opendir(inode: InodeNumber) throws -> OpenReply {
        try opendir(inode: inode, context: .mountOwner)
    }
    func setxattr(inode: InodeNumber, name: String, value: [UInt8], flags: Int32) throws {
        try setxattr(inode: inode, name: name, value: value, flags: flags, context: .mountOwner)
    }
    func removexattr(inode: InodeNumber, name: String) throws {
        try removexattr(inode: inode, name: name, context: .mountOwner)
    }
}
