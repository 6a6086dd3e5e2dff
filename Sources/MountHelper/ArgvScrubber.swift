// Keeps a key given as `--api-key KEY` out of /proc/PID/cmdline. The kernel reads cmdline from
// the process's original argv memory, which CommandLine.unsafeArgv points at (the Swift runtime
// captures argc/argv at start-up), so overwriting those bytes in place hides the key from `ps`
// for the rest of the process's life and from every process forked later (the daemon). The key
// is visible between exec and this call; --api-key-file or ROSET_API_KEY avoid even that.
// Chosen over re-exec: no second exec, no key in the environment, works for the daemon too.
import Foundation

public enum ArgvScrubber {
    static let keyFlags: Set<String> = ["--api-key"]

    /// Overwrites the value of every `--api-key KEY` / `--api-key=KEY` with 'x's. Returns how many
    /// values were scrubbed.
    @discardableResult
    public static func scrubKeyArguments() -> Int {
        scrub(argc: Int(CommandLine.argc), argv: CommandLine.unsafeArgv)
    }

    @discardableResult
    public static func scrub(argc: Int, argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> Int {
        var scrubbed = 0
        var i = 1
        while i < argc {
            guard let arg = argv[i] else { break }
            let text = String(cString: arg)
            if keyFlags.contains(text), i + 1 < argc, let value = argv[i + 1] {
                overwrite(value, from: 0)
                scrubbed += 1
                i += 2
                continue
            }
            for flag in keyFlags where text.hasPrefix(flag + "=") {
                overwrite(arg, from: flag.utf8.count + 1)
                scrubbed += 1
            }
            i += 1
        }
        return scrubbed
    }

    private static func overwrite(_ p: UnsafeMutablePointer<CChar>, from start: Int) {
        let length = strlen(p)
        var j = start
        while j < length { p[j] = CChar(UInt8(ascii: "x")); j += 1 }
    }
}
