// A refusal or failure with the words the user sees and the exit status mount(8) expects
// (mount(8)'s convention: 1 = bad invocation or permissions, 32 = the mount failed).
public struct MountHelperError: Error, Sendable, Equatable, CustomStringConvertible {
    public static let usageStatus: Int32 = 1
    public static let mountFailureStatus: Int32 = 32

    public var message: String
    public var exitStatus: Int32

    public init(_ message: String, exitStatus: Int32 = MountHelperError.usageStatus) {
        self.message = message
        self.exitStatus = exitStatus
    }

    public var description: String { message }
}
