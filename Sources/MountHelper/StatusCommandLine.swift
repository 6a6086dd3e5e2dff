// `mount.roset status DIR [--json]`: the status view, told apart from a mount by one rule —
// the first argument is the word `status`, exactly one more positional follows, and no flag other
// than `--json` is given. Any `-o`, `-t`, `-s`, `-f`, … makes it a mount of a SPEC named
// `status` (mount(8) always passes options), so `mount -t roset status /mnt` still mounts.
import Foundation

public struct StatusRequest: Equatable, Sendable {
    public var directory: String
    public var json: Bool
}

public enum StatusCommandLine {
    /// The status request in `arguments` (argv without argv[0]), or nil when it is a mount.
    public static func parse(_ arguments: [String]) -> StatusRequest? {
        guard arguments.first == "status" else { return nil }
        var json = false
        var positionals: [String] = []
        for arg in arguments.dropFirst() {
            if arg == "--json" { json = true } else if arg.hasPrefix("-") { return nil } else { positionals.append(arg) }
        }
        guard positionals.count == 1 else { return nil }
        return StatusRequest(directory: positionals[0], json: json)
    }
}
