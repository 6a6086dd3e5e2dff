// Serialises work per key (an upload token, an Idempotency-Key scope) inside this process, so two
// concurrent completes of one upload, or two concurrent retries with one Idempotency-Key, run one
// after the other: the second then finds the first's result instead of acting again.
import Foundation

final class KeyedGate: @unchecked Sendable {
    private let lock = NSLock()
    private var busy = Set<String>()

    func run<T>(_ key: String, _ body: () async throws -> T) async throws -> T {
        while !lock.withLock({ busy.insert(key).inserted }) {
            try await Task.sleep(for: .milliseconds(5))
        }
        defer { lock.withLock { _ = busy.remove(key) } }
        return try await body()
    }
}
