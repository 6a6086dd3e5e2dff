// `mount.roset invalidate PATH...`: drop this machine's cached metadata and data for files or
// folders on roset mounts. Told apart from a mount like `status`: the first argument is the word
// `invalidate`, at least one path follows, and no argument starts with `-` (mount(8) always
// passes options, so `mount -t roset invalidate /mnt` still mounts).
import Foundation

public enum InvalidateCommandLine {
    /// The paths to invalidate in `arguments` (argv without argv[0]), or nil when it is a mount.
    public static func parse(_ arguments: [String]) -> [String]? {
        guard arguments.first == "invalidate" else { return nil }
        let paths = Array(arguments.dropFirst())
        guard !paths.isEmpty, !paths.contains(where: { $0.hasPrefix("-") }) else { return nil }
        return paths
    }
}
