// Shared by the test targets: finding the built binaries, temporary folders, and processes that
// tests start and must stop by PID (see ServerProcess.swift, MountProcess.swift).
import Foundation

public enum TestBinaries {
    /// The folder holding the built products: ROSET_BIN_DIR, or the folder of the running test
    /// bundle (`.build/debug/roset-fusePackageTests.xctest` sits beside `roset-server`).
    public static var directory: URL {
        if let dir = ProcessInfo.processInfo.environment["ROSET_BIN_DIR"] {
            return URL(fileURLWithPath: dir)
        }
        let exe = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
        return exe.deletingLastPathComponent()
    }

    public static func path(_ name: String) -> String {
        directory.appendingPathComponent(name).path
    }
}

/// A fresh temporary folder, removed by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let url: URL
    public var path: String { url.path }

    public init(prefix: String = "roset-test") throws {
        let base = URL(fileURLWithPath: NSTemporaryDirectory())
        url = base.appendingPathComponent("\(prefix)-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }

    public func remove() { try? FileManager.default.removeItem(at: url) }
}
