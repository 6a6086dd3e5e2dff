// `mount.roset warmup [--jobs N] PATH...`: fills the disk data cache of the mounts holding PATHs
// by reading every file below them through the mount, `--jobs` files at a time (8 by default),
// so the daemon downloads them in parallel and keeps their blocks (mount.roset(8), data_cache_dir).
// Progress: a bar redrawn in place on a terminal, a plain line every few seconds otherwise, and a
// last line with the totals. Interrupted, it is resumed by running it again: what is cached
// already is read from local disk, not downloaded. Pages read are dropped from the page cache
// (POSIX_FADV_DONTNEED), so a warm-up does not push other work's memory out.
// Exit status: 0 when every file was read, 1 when a path is missing or a read failed.
import Foundation
import MountHelper
#if canImport(Glibc)
import Glibc
#endif

enum WarmupCommand {
    struct Work: Sendable {
        var files: [(path: String, size: Int64)]
        var bytes: Int64
    }

    /// Every regular file at or below `paths`; a path that does not exist is an error.
    static func collect(_ paths: [String]) throws -> Work {
        var files: [(String, Int64)] = []
        var bytes: Int64 = 0
        func add(_ path: String) {
            var st = stat()
            guard lstat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return }
            files.append((path, Int64(st.st_size)))
            bytes += Int64(st.st_size)
        }
        for path in paths {
            var st = stat()
            guard stat(path, &st) == 0 else {
                throw MountHelperError("warmup: \(path): \(String(cString: strerror(errno)))")
            }
            if (st.st_mode & S_IFMT) == S_IFDIR {
                let base = path.hasSuffix("/") ? String(path.dropLast()) : path
                for case let relative as String in FileManager.default.enumerator(atPath: path) ?? NSEnumerator() {
                    add(base + "/" + relative)
                }
            } else {
                add(path)
            }
        }
        return Work(files: files, bytes: bytes)
    }

    final class Progress: @unchecked Sendable {
        let lock = NSLock()
        var next = 0
        var filesDone = 0
        var bytesDone: Int64 = 0
        var failures: [String] = []
    }

    static func run(_ request: WarmupRequest) -> Int32 {
        let work: Work
        do {
            work = try collect(request.paths)
        } catch {
            FileHandle.standardError.write(Data("mount.roset: \(error)\n".utf8))
            return 1
        }
        let progress = Progress()
        let start = Date()
        let terminal = isatty(STDOUT_FILENO) != 0
        let group = DispatchGroup()
        for _ in 0..<min(request.jobs, max(1, work.files.count)) {
            group.enter()
            let t = Thread {
                defer { group.leave() }
                let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 1 << 20, alignment: 4096)
                defer { buffer.deallocate() }
                while true {
                    let index: Int? = progress.lock.withLock {
                        guard progress.next < work.files.count else { return nil }
                        defer { progress.next += 1 }
                        return progress.next
                    }
                    guard let index else { return }
                    let path = work.files[index].path
                    let failure = readWhole(path, buffer: buffer) { n in progress.lock.withLock { progress.bytesDone += Int64(n) } }
                    progress.lock.withLock {
                        progress.filesDone += 1
                        if let failure { progress.failures.append("\(path): \(failure)") }
                    }
                }
            }
            t.start()
        }
        var lastLine = Date.distantPast
        while group.wait(timeout: .now() + .milliseconds(terminal ? 200 : 1000)) == .timedOut {
            if terminal {
                print("\r" + line(progress, work, start, bar: true), terminator: "")
                fflush(stdout)
            } else if Date().timeIntervalSince(lastLine) >= 5 {
                print(line(progress, work, start, bar: false))
                fflush(stdout)
                lastLine = Date()
            }
        }
        if terminal { print("\r" + line(progress, work, start, bar: true)) }
        let failures = progress.lock.withLock { progress.failures }
        for failure in failures { FileHandle.standardError.write(Data("mount.roset: warmup: \(failure)\n".utf8)) }
        let seconds = Date().timeIntervalSince(start)
        print("warmup: done, \(work.files.count) file(s), \(work.bytes >> 20) MiB in \(String(format: "%.1f", seconds)) s"
              + (failures.isEmpty ? "" : "; \(failures.count) failed"))
        return failures.isEmpty ? 0 : 1
    }

    /// Reads `path` to its end; nil on success, else what went wrong.
    static func readWhole(_ path: String, buffer: UnsafeMutableRawBufferPointer, counted: (Int) -> Void) -> String? {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return String(cString: strerror(errno)) }
        defer { close(fd) }
        while true {
            let n = read(fd, buffer.baseAddress, buffer.count)
            if n < 0 && errno == EINTR { continue }
            if n < 0 { return String(cString: strerror(errno)) }
            if n == 0 { break }
            counted(n)
        }
        _ = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED)
        return nil
    }

    static func line(_ progress: Progress, _ work: Work, _ start: Date, bar: Bool) -> String {
        let (files, bytes) = progress.lock.withLock { (progress.filesDone, progress.bytesDone) }
        let seconds = max(0.001, Date().timeIntervalSince(start))
        let rate = Double(bytes) / 1_048_576 / seconds
        let fraction = work.bytes > 0 ? Double(bytes) / Double(work.bytes) : Double(files) / Double(max(1, work.files.count))
        let text = "\(files)/\(work.files.count) files, \(bytes >> 20)/\(work.bytes >> 20) MiB, \(String(format: "%.0f", rate)) MiB/s"
        guard bar else { return "warmup: " + text }
        let width = 30
        let filled = min(width, Int(fraction * Double(width)))
        return "[" + String(repeating: "#", count: filled) + String(repeating: " ", count: width - filled) + "] "
            + String(format: "%3.0f%% ", fraction * 100) + text
    }
}
