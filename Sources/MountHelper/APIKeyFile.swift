// Reads the API key from `apikey_file=`: the first line, trimmed. Like s3fs's passwd file, the
// file is refused when group or others may read or write it, or when someone other than the
// mounting user or root owns it: a key readable by others is a leaked key.
import Foundation
#if canImport(Glibc)
import Glibc
#endif

public enum APIKeyFile {
    public static func read(_ path: String, mountingUID: uid_t = getuid()) throws -> APIKey {
        var st = stat()
        guard stat(path, &st) == 0 else {
            if errno == ENOENT { throw MountHelperError("apikey_file \(path) does not exist") }
            throw MountHelperError("cannot use apikey_file \(path): \(String(cString: strerror(errno)))")
        }
        guard st.st_mode & S_IFMT == S_IFREG else {
            throw MountHelperError("apikey_file \(path) is not a regular file")
        }
        if st.st_uid != mountingUID && st.st_uid != 0 {
            throw MountHelperError(
                "apikey_file \(path) is owned by uid \(st.st_uid), not by the mounting user (uid \(mountingUID)) or root; "
                    + "fix it with: chown \(mountingUID) \(path)")
        }
        if st.st_mode & 0o077 != 0 {
            let mode = String(st.st_mode & 0o7777, radix: 8)
            throw MountHelperError(
                "apikey_file \(path) can be read or written by group or others (mode 0\(mode)); "
                    + "fix it with: chmod 600 \(path)")
        }
        guard let data = FileManager.default.contents(atPath: path) else {
            throw MountHelperError("cannot read apikey_file \(path): \(String(cString: strerror(errno)))")
        }
        let text = String(decoding: data, as: UTF8.self)
        let firstLine = text.split(separator: "\n", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let key = firstLine.trimmingCharacters(in: .whitespacesAndNewlines)
        guard !key.isEmpty else {
            throw MountHelperError("apikey_file \(path) is empty; put the API key on its first line")
        }
        return APIKey(key, source: "apikey_file=\(path)")
    }
}
