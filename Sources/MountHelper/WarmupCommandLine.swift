// `mount.roset warmup [--jobs N] PATH...`: told apart from a mount like `status` — the first
// argument is the word `warmup`, at least one path follows, and no flag other than `--jobs N`
// (or `--jobs=N`) is given; any `-o`, `-t`, … makes it a mount of a SPEC named `warmup`.
import Foundation

public struct WarmupRequest: Equatable, Sendable {
    public var paths: [String]
    public var jobs: Int
}

public enum WarmupCommandLine {
    public static let defaultJobs = 8

    /// The warm-up request in `arguments` (argv without argv[0]), nil when it is a mount; throws
    /// on a bad `--jobs` value.
    public static func parse(_ arguments: [String]) throws -> WarmupRequest? {
        guard arguments.first == "warmup" else { return nil }
        var jobs = defaultJobs
        var paths: [String] = []
        var rest = arguments.dropFirst()[...]
        while let arg = rest.popFirst() {
            if arg == "--jobs" || arg.hasPrefix("--jobs=") {
                let value = arg == "--jobs" ? rest.popFirst() : String(arg.dropFirst("--jobs=".count))
                guard let text = value, let n = Int(text), (1...256).contains(n) else {
                    throw MountHelperError("bad value for --jobs: give a whole number from 1 to 256")
                }
                jobs = n
            } else if arg.hasPrefix("-") {
                return nil
            } else {
                paths.append(arg)
            }
        }
        guard !paths.isEmpty else { return nil }
        return WarmupRequest(paths: paths, jobs: jobs)
    }
}
