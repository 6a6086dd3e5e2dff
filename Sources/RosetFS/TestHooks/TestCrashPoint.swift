// TEST ONLY: `ROSET_TEST_CRASH_POINT=<point>` in the daemon's environment makes the process die
// (`_exit(137)`, as abruptly as kill -9: no flush, no cleanup, the spool lock dropped by the
// kernel) the first time it reaches that point. Crash tests use it to stop the daemon at a
// moment a signal cannot aim at. Unset (always, outside tests) it costs one comparison.
//   after-complete   the `complete` journal record is written, the spool entry not yet removed
import Foundation
#if canImport(Glibc)
import Glibc
#endif

enum TestCrashPoint: String {
    case afterComplete = "after-complete"

    private static let armed: TestCrashPoint? =
        ProcessInfo.processInfo.environment["ROSET_TEST_CRASH_POINT"].flatMap(TestCrashPoint.init(rawValue:))

    static func reached(_ point: TestCrashPoint) {
        guard armed == point else { return }
        let note = "roset: ROSET_TEST_CRASH_POINT=\(point.rawValue) reached; exiting at once (test only)\n"
        _ = note.withCString { Glibc.write(STDERR_FILENO, $0, strlen($0)) }
        _exit(137)
    }
}
