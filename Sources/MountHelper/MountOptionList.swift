// Splits a mount option string exactly as mount(8) does, with libmount's optstr parser:
// comma-separated `name` or `name=value` items, where a double-quoted value may contain commas
// (`comment="a,b"`). The surrounding quotes are removed from the value.
import CMount
import Foundation

public struct MountOption: Sendable, Hashable, CustomStringConvertible {
    public var name: String
    public var value: String?

    public init(_ name: String, _ value: String? = nil) {
        self.name = name
        self.value = value
    }

    public var description: String { value.map { "\(name)=\($0)" } ?? name }
}

public enum MountOptionList {
    public static func parse(_ optstr: String) throws -> [MountOption] {
        guard !optstr.isEmpty else { return [] }
        guard let buffer = strdup(optstr) else { throw MountHelperError("out of memory parsing options") }
        defer { free(buffer) }
        var cursor: UnsafeMutablePointer<CChar>? = buffer
        var options: [MountOption] = []
        while true {
            var name: UnsafeMutablePointer<CChar>?
            var nameSize = 0
            var value: UnsafeMutablePointer<CChar>?
            var valueSize = 0
            let rc = mnt_optstr_next_option(&cursor, &name, &nameSize, &value, &valueSize)
            if rc == 1 { break }
            if rc < 0 { throw MountHelperError("cannot parse the mount options \"\(optstr)\" (unbalanced quotes?)") }
            guard let name, nameSize > 0 else { continue }
            let n = string(name, nameSize)
            var v = value.map { string($0, valueSize) }
            if let quoted = v, quoted.count >= 2, quoted.hasPrefix("\""), quoted.hasSuffix("\"") {
                v = String(quoted.dropFirst().dropLast())
            }
            options.append(MountOption(n, v))
        }
        return options
    }

    private static func string(_ p: UnsafeMutablePointer<CChar>, _ count: Int) -> String {
        String(decoding: UnsafeRawBufferPointer(start: p, count: count), as: UTF8.self)
    }
}
