// mount(8)'s helper argv: `mount.roset SPEC DIR [-s] [-f] [-n] [-v] [-N NS] [-o OPTS] [-t TYPE]`.
// mount(8) puts the flags after the two positionals, systemd and mount.fuse3 vary the order, so
// flags are accepted anywhere; `-oOPTS`, `-NNS`, `-tTYPE` (glued) and `-sfnv` (grouped) too.
// Several -o lists are joined, as mount(8) would have.
import Foundation

public enum HelperArguments {
    public static let usage = """
        usage: mount.roset SPEC DIR [-s] [-f] [-n] [-v] [-N NAMESPACE] [-o OPTIONS] [-t TYPE]
               mount.roset status DIR [--json]
               mount.roset --version
          SPEC     the Roset mount id; `default` (or `roset`) for the account's default mount
          DIR      the mount point (an existing folder)
          -s       sloppy: unknown options are warnings, not errors
          -f       fake: check everything, do not mount
          -n       accepted (no mtab is written)
          -v       verbose
          -N NS    enter the mount namespace NS (a path such as /proc/PID/ns/mnt) before mounting
          -o OPTS  mount options; see mount.roset(8)
          -t TYPE  roset or fuse.roset
        """

    /// Parses the arguments after argv[0].
    public static func parse(_ arguments: [String]) throws -> MountRequest {
        var positionals: [String] = []
        var optionStrings: [String] = []
        var sloppy = false, fake = false, verbose = false
        var namespace: String?
        var type: String?
        var i = 0
        var flagsEnded = false

        func value(after flag: Character, glued: Substring) throws -> String {
            if !glued.isEmpty { return String(glued) }
            i += 1
            guard i < arguments.count else { throw MountHelperError("option -\(flag) needs a value\n\(usage)") }
            return arguments[i]
        }

        while i < arguments.count {
            let arg = arguments[i]
            if flagsEnded || !arg.hasPrefix("-") || arg == "-" {
                positionals.append(arg)
            } else if arg == "--" {
                flagsEnded = true
            } else if arg == "-h" || arg == "--help" {
                throw MountHelperError(usage, exitStatus: 0)
            } else if arg.hasPrefix("--") {
                throw MountHelperError("unknown flag \(arg)\n\(usage)")
            } else {
                var rest = arg.dropFirst()
                while let c = rest.first {
                    rest = rest.dropFirst()
                    switch c {
                    case "s": sloppy = true
                    case "f": fake = true
                    case "n": break
                    case "v": verbose = true
                    case "o": optionStrings.append(try value(after: c, glued: rest)); rest = ""
                    case "N": namespace = try value(after: c, glued: rest); rest = ""
                    case "t": type = try value(after: c, glued: rest); rest = ""
                    default: throw MountHelperError("unknown flag -\(c)\n\(usage)")
                    }
                }
            }
            i += 1
        }
        guard positionals.count == 2 else {
            throw MountHelperError((positionals.count < 2 ? "SPEC and DIR are required" : "too many arguments: "
                                        + positionals.dropFirst(2).joined(separator: " ")) + "\n\(usage)")
        }
        var warnings: [String] = []
        if let type, !["roset", "fuse.roset", "fuse"].contains(type) {
            warnings.append("unexpected filesystem type '\(type)' (expected roset or fuse.roset); mounting as roset")
        }
        let options = try optionStrings.filter { !$0.isEmpty }.flatMap { try MountOptionList.parse($0) }
        var request = MountRequest(spec: positionals[0], mountpoint: positionals[1], options: options)
        request.sloppy = sloppy
        request.fake = fake
        request.verbose = verbose
        request.mountNamespace = namespace
        request.warnings = warnings
        return request
    }
}
