// A FileSystemOperations that forwards every call to another and records it (metrics=): one
// count per request and per failed request, and its time, by operation, through swift-metrics.
// Invariants: behaviour is the inner file system's, unchanged (same results, same errors, the
// pipe-reply read and the kernel notifier forwarded too); only requests the kernel sends are
// measured (forget and releasedir count, but have no errors).
import Dispatch
import Metrics
import RosetFS
import RosetMetrics
import Foundation

public final class MeasuredFileSystem: FileSystemOperations, @unchecked Sendable {
    public let inner: FileSystemOperations

    private struct OperationMetrics {
        let requests: Counter
        let errors: Counter
        let duration: Metrics.Timer
    }
    private let lock = NSLock()
    private var byOperation: [String: OperationMetrics] = [:]

    public init(_ inner: FileSystemOperations) { self.inner = inner }

    private func metrics(_ op: String) -> OperationMetrics {
        lock.withLock {
            if let m = byOperation[op] { return m }
            let m = OperationMetrics(requests: Counter(label: RosetMetricNames.fuseRequests, dimensions: [("op", op)]),
                                     errors: Counter(label: RosetMetricNames.fuseErrors, dimensions: [("op", op)]),
                                     duration: Metrics.Timer(label: RosetMetricNames.fuseDuration, dimensions: [("op", op)]))
            byOperation[op] = m
            return m
        }
    }

    private func measure<T>(_ op: String, _ body: () throws -> T) rethrows -> T {
        let m = metrics(op)
        let started = DispatchTime.now().uptimeNanoseconds
        defer {
            m.requests.increment()
            m.duration.recordNanoseconds(Int64(DispatchTime.now().uptimeNanoseconds - started))
        }
        do {
            return try body()
        } catch {
            m.errors.increment()
            throw error
        }
    }

    public func lookup(parent: InodeNumber, name: String) throws -> EntryReply {
        try measure("lookup") { try inner.lookup(parent: parent, name: name) }
    }
    public func forget(inode: InodeNumber, lookups: UInt64) {
        measure("forget") { inner.forget(inode: inode, lookups: lookups) }
    }
    public func getattr(inode: InodeNumber, handle: FileHandleID?) throws -> AttributeReply {
        try measure("getattr") { try inner.getattr(inode: inode, handle: handle) }
    }
    public func setattr(inode: InodeNumber, changes: AttributeChanges, handle: FileHandleID?,
                        context: RequestContext) throws -> AttributeReply {
        try measure("setattr") { try inner.setattr(inode: inode, changes: changes, handle: handle, context: context) }
    }
    public func readlink(inode: InodeNumber) throws -> String {
        try measure("readlink") { try inner.readlink(inode: inode) }
    }
    public func mknod(parent: InodeNumber, name: String, mode: UInt32, rdev: UInt64, context: RequestContext) throws -> EntryReply {
        try measure("mknod") { try inner.mknod(parent: parent, name: name, mode: mode, rdev: rdev, context: context) }
    }
    public func mkdir(parent: InodeNumber, name: String, mode: UInt32, context: RequestContext) throws -> EntryReply {
        try measure("mkdir") { try inner.mkdir(parent: parent, name: name, mode: mode, context: context) }
    }
    public func unlink(parent: InodeNumber, name: String) throws {
        try measure("unlink") { try inner.unlink(parent: parent, name: name) }
    }
    public func rmdir(parent: InodeNumber, name: String) throws {
        try measure("rmdir") { try inner.rmdir(parent: parent, name: name) }
    }
    public func symlink(target: String, parent: InodeNumber, name: String, context: RequestContext) throws -> EntryReply {
        try measure("symlink") { try inner.symlink(target: target, parent: parent, name: name, context: context) }
    }
    public func rename(parent: InodeNumber, name: String, newParent: InodeNumber, newName: String, flags: UInt32) throws {
        try measure("rename") { try inner.rename(parent: parent, name: name, newParent: newParent, newName: newName, flags: flags) }
    }
    public func link(inode: InodeNumber, newParent: InodeNumber, newName: String) throws -> EntryReply {
        try measure("link") { try inner.link(inode: inode, newParent: newParent, newName: newName) }
    }
    public func open(inode: InodeNumber, flags: Int32, context: RequestContext) throws -> OpenReply {
        try measure("open") { try inner.open(inode: inode, flags: flags, context: context) }
    }
    public func create(parent: InodeNumber, name: String, mode: UInt32, flags: Int32,
                       context: RequestContext) throws -> (EntryReply, OpenReply) {
        try measure("create") { try inner.create(parent: parent, name: name, mode: mode, flags: flags, context: context) }
    }
    public func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
                     reply: ([UnsafeRawBufferPointer]) -> Void) throws {
        try measure("read") { try inner.read(inode: inode, handle: handle, offset: offset, size: size, reply: reply) }
    }
    public func read(inode: InodeNumber, handle: FileHandleID, offset: Int64, size: Int,
                     reply: ([UnsafeRawBufferPointer]) -> Void, pipeReply: ([(fd: Int32, count: Int)]) -> Void) throws {
        try measure("read") {
            try inner.read(inode: inode, handle: handle, offset: offset, size: size, reply: reply, pipeReply: pipeReply)
        }
    }
    public func write(inode: InodeNumber, handle: FileHandleID, offset: Int64, data: UnsafeRawBufferPointer) throws -> Int {
        try measure("write") { try inner.write(inode: inode, handle: handle, offset: offset, data: data) }
    }
    public func flush(inode: InodeNumber, handle: FileHandleID) throws {
        try measure("flush") { try inner.flush(inode: inode, handle: handle) }
    }
    public func release(inode: InodeNumber, handle: FileHandleID) throws {
        try measure("release") { try inner.release(inode: inode, handle: handle) }
    }
    public func fsync(inode: InodeNumber, handle: FileHandleID, dataOnly: Bool) throws {
        try measure("fsync") { try inner.fsync(inode: inode, handle: handle, dataOnly: dataOnly) }
    }
    public func opendir(inode: InodeNumber) throws -> OpenReply {
        try measure("opendir") { try inner.opendir(inode: inode) }
    }
    public func readdir(inode: InodeNumber, handle: FileHandleID, offset: Int64, plus: Bool,
                        add: (DirectoryEntry) -> Bool) throws {
        try measure(plus ? "readdirplus" : "readdir") {
            try inner.readdir(inode: inode, handle: handle, offset: offset, plus: plus, add: add)
        }
    }
    public func releasedir(inode: InodeNumber, handle: FileHandleID) {
        measure("releasedir") { inner.releasedir(inode: inode, handle: handle) }
    }
    public func statfs(inode: InodeNumber) throws -> FileSystemStatistics {
        try measure("statfs") { try inner.statfs(inode: inode) }
    }
    public func setxattr(inode: InodeNumber, name: String, value: [UInt8], flags: Int32) throws {
        try measure("setxattr") { try inner.setxattr(inode: inode, name: name, value: value, flags: flags) }
    }
    public func getxattr(inode: InodeNumber, name: String) throws -> [UInt8] {
        try measure("getxattr") { try inner.getxattr(inode: inode, name: name) }
    }
    public func listxattr(inode: InodeNumber) throws -> [String] {
        try measure("listxattr") { try inner.listxattr(inode: inode) }
    }
    public func removexattr(inode: InodeNumber, name: String) throws {
        try measure("removexattr") { try inner.removexattr(inode: inode, name: name) }
    }
    public func access(inode: InodeNumber, mask: Int32, context: RequestContext) throws {
        try measure("access") { try inner.access(inode: inode, mask: mask, context: context) }
    }
    public func shutdown(grace: Double) { inner.shutdown(grace: grace) }
    public func attachKernelNotifier(_ notifier: KernelCacheNotifier) { inner.attachKernelNotifier(notifier) }
}
