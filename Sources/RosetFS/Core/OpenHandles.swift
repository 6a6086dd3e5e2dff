// The file and folder handles this mount gave the kernel (open/opendir) until it releases them.
//
// Invariants: handle numbers are never reused within a mount (files and folders share one
// counter); a released handle answers EBADF; `lock` is a leaf.
import Foundation

final class OpenHandles: @unchecked Sendable {
    private let lock = NSLock()
    private var files: [FileHandleID: OpenFile] = [:]
    private var directories: [FileHandleID: DirectoryHandle] = [:]
    private var next: FileHandleID = 1

    private func take() -> FileHandleID {
        defer { next += 1 }
        return next
    }

    func add(_ file: OpenFile) -> FileHandleID {
        lock.withLock {
            let id = take()
            files[id] = file
            return id
        }
    }

    func add(_ directory: DirectoryHandle) -> FileHandleID {
        lock.withLock {
            let id = take()
            directories[id] = directory
            return id
        }
    }

    func file(_ id: FileHandleID) -> OpenFile? { lock.withLock { files[id] } }
    func directory(_ id: FileHandleID) -> DirectoryHandle? { lock.withLock { directories[id] } }
    func removeFile(_ id: FileHandleID) -> OpenFile? { lock.withLock { files.removeValue(forKey: id) } }
    func removeDirectory(_ id: FileHandleID) { lock.withLock { directories[id] = nil } }
}

/// One open file.
final class OpenFile: @unchecked Sendable {
    let inode: InodeNumber
    let writable: Bool
    /// The spool entry this handle writes to (writers count it).
    var entry: SpoolEntry?
    let lock = NSLock()
    var reader: ObjectReader?
    var readerKey: String?

    init(inode: InodeNumber, writable: Bool, entry: SpoolEntry?) {
        self.inode = inode
        self.writable = writable
        self.entry = entry
    }
}

/// An open folder: the listing snapshot its readdir cookies index into.
final class DirectoryHandle: @unchecked Sendable {
    struct Item { var name: String; var child: RosetFileSystem.Child? }
    let inode: InodeNumber
    let lock = NSLock()
    var items: [Item]?
    init(inode: InodeNumber) { self.inode = inode }
}
