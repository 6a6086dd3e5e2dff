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

/// What a finished command printed and how it ended.
public struct CapturedRun: Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    /// Runs `executable` to its end, capturing both streams. Standard error is drained on its own
    /// thread while standard output is read, so a command that fills one pipe cannot stall on it.
    public static func run(_ executable: String, _ arguments: [String],
                           environment: [String: String]? = nil) throws -> CapturedRun {
        let p = Process()
        p.executableURL = URL(fileURLWithPath: executable)
        p.arguments = arguments
        if let environment { p.environment = environment }
        let out = Pipe(), err = Pipe()
        p.standardOutput = out
        p.standardError = err
        p.standardInput = FileHandle.nullDevice
        try p.run()
        let errDone = DispatchSemaphore(value: 0)
        nonisolated(unsafe) var errData = Data()
        DispatchQueue.global().async {
            errData = err.fileHandleForReading.readDataToEndOfFile()
            errDone.signal()
        }
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        errDone.wait()
        p.waitUntilExit()
        return CapturedRun(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                           stderr: String(decoding: errData, as: UTF8.self))
    }
}
