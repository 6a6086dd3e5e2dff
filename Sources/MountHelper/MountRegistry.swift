// The mount registry: which spool folder and daemon serve a mount point, so that
// `mount.roset status DIR` and the mount-time messages find a spool from its mount point.
// Invariants:
// - One small JSON file per mount point (`/run/roset/mounts/` for root, `$XDG_RUNTIME_DIR/roset/
//   mounts/` else, `$ROSET_RUNTIME_DIR/mounts` when set), named by the first 16 hex digits of the
//   SHA-256 of the canonical mount point, written atomically (temporary file + rename).
// - It survives a crashed daemon, so the status view still finds the spool of a mount whose
//   daemon is gone; a daemon removes only its own registration.
import COpenSSL
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// One line of the mount registry: which spool a mount point uses and which daemon serves it.
public struct MountRegistration: Codable, Sendable, Equatable {
    public var mountpoint: String
    public var spoolFolder: String
    public var pid: Int32
    public var mountId: String
    public var startedAt: Double
    /// The folder served as the root (subdir=), "a/b"; nil for the whole mount (and in
    /// registrations written before subdir= existed).
    public var subdir: String?

    public init(mountpoint: String, spoolFolder: String, pid: Int32, mountId: String, startedAt: Double,
                subdir: String? = nil) {
        self.mountpoint = mountpoint; self.spoolFolder = spoolFolder; self.pid = pid
        self.mountId = mountId; self.startedAt = startedAt; self.subdir = subdir
    }
}

public enum MountRegistry {
    /// `/run/roset/mounts` for root, `$XDG_RUNTIME_DIR/roset/mounts` (or /tmp/roset-UID/mounts).
    public static var folder: String {
        if let override = ProcessInfo.processInfo.environment["ROSET_RUNTIME_DIR"], !override.isEmpty {
            return override + "/mounts"
        }
        if getuid() == 0 { return "/run/roset/mounts" }
        if let xdg = ProcessInfo.processInfo.environment["XDG_RUNTIME_DIR"], !xdg.isEmpty { return xdg + "/roset/mounts" }
        return "/tmp/roset-\(getuid())/mounts"
    }

    /// The mount point's absolute path with its parent's symlinks resolved. The mount point
    /// itself is never touched (no stat, no realpath): the daemon registers before it serves
    /// requests (a stat would wait for itself), and after a crash it answers ENOTCONN.
    public static func canonical(_ path: String) -> String {
        let absolute = path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path
        var parts: [Substring] = []
        for part in absolute.split(separator: "/") where part != "." {
            if part == ".." { _ = parts.popLast() } else { parts.append(part) }
        }
        guard let name = parts.popLast() else { return "/" }
        let parent = "/" + parts.joined(separator: "/")
        guard let resolved = realpath(parent, nil) else { return parent + (parts.isEmpty ? "" : "/") + name }
        defer { free(resolved) }
        let base = String(cString: resolved)
        return (base == "/" ? "" : base) + "/" + name
    }

    static func sha256Hex(_ text: String) -> String {
        var digest = [UInt8](repeating: 0, count: Int(SHA256_DIGEST_LENGTH))
        let bytes = Array(text.utf8)
        _ = SHA256(bytes, bytes.count, &digest)
        return digest.map { String(format: "%02x", $0) }.joined()
    }

    static func file(for mountpoint: String) -> String {
        folder + "/" + String(sha256Hex(canonical(mountpoint)).prefix(16)) + ".json"
    }

    public static func register(_ r: MountRegistration) {
        try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true,
                                                 attributes: [.posixPermissions: 0o700])
        guard let data = try? JSONEncoder().encode(r) else { return }
        let path = file(for: r.mountpoint)
        if FileManager.default.createFile(atPath: path + ".tmp", contents: data) { rename(path + ".tmp", path) }
    }

    public static func lookup(mountpoint: String) -> MountRegistration? {
        guard let data = FileManager.default.contents(atPath: file(for: mountpoint)) else { return nil }
        return try? JSONDecoder().decode(MountRegistration.self, from: data)
    }

    /// Removes the registration, only if it is still this daemon's.
    public static func unregister(mountpoint: String, pid: Int32) {
        if lookup(mountpoint: mountpoint)?.pid == pid { unlink(file(for: mountpoint)) }
    }
}
