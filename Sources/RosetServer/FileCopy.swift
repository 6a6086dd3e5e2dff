// Kernel-side file copy for assembling multipart uploads: copy_file_range(2) (looked up at run
// time, since Glibc's Swift module hides it behind _GNU_SOURCE), falling back to read/write in
// 4 MiB chunks. Invariant: bytes never pass through Swift buffers when the kernel can copy them.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum FileCopy {
    private typealias CopyFileRange = @convention(c) (Int32, UnsafeMutablePointer<Int64>?, Int32,
                                                       UnsafeMutablePointer<Int64>?, Int, UInt32) -> Int
    private static let copyFileRange: CopyFileRange? = {
        guard let sym = dlsym(UnsafeMutableRawPointer(bitPattern: 0), "copy_file_range") else { return nil }
        return unsafeBitCast(sym, to: CopyFileRange.self)
    }()

    /// Appends the whole of `source` at the current offset of `out`; returns the bytes copied.
    static func append(source: String, to out: Int32) throws -> Int64 {
        let input = open(source, O_RDONLY)
        guard input >= 0 else { throw APIError.storage("cannot open part") }
        defer { close(input) }
        var total: Int64 = 0
        if let copy = copyFileRange {
            while true {
                let n = copy(input, nil, out, nil, 1 << 30, 0)
                if n > 0 { total += Int64(n); continue }
                if n == 0 { return total }
                if errno == EINTR { continue }
                if total == 0 && (errno == EXDEV || errno == ENOSYS || errno == EINVAL || errno == EOPNOTSUPP) { break }
                throw APIError.storage("copy failed (errno \(errno))")
            }
        }
        var buffer = [UInt8](repeating: 0, count: 4 << 20)
        while true {
            let n = read(input, &buffer, buffer.count)
            if n < 0 { if errno == EINTR { continue }; throw APIError.storage("read failed") }
            if n == 0 { return total }
            var done = 0
            while done < n {
                let w = buffer.withUnsafeBytes { write(out, $0.baseAddress! + done, n - done) }
                if w < 0 { if errno == EINTR { continue }; throw APIError.storage("write failed") }
                done += w
            }
            total += Int64(n)
        }
    }
}
