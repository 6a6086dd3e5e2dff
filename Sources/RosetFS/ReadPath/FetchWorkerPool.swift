// A fixed set of threads shared by every reader of every cache, running prefetch fetches. A
// sequential reader gets parallel range requests without a thread per request, and the number of
// threads blocked in HTTP transfers stays bounded however many files are open. Work items run in
// FIFO order; an item must not block waiting on another item (fetches never do).
import Foundation

final class FetchWorkerPool: @unchecked Sendable {
    /// 16 threads: enough parallel range requests to exceed a single HTTP stream several times
    /// over for one reader, and still a few per file when many files are read at once.
    static let shared = FetchWorkerPool(threadCount: 16)

    private let condition = NSCondition()
    private var queue: [() -> Void] = []
    private var head = 0

    init(threadCount: Int) {
        for index in 0..<threadCount {
            // The threads keep the pool alive: pools live as long as the process.
            let thread = Thread { self.runWorker() }
            thread.name = "roset-read-\(index)"
            thread.start()
        }
    }

    func submit(_ work: @escaping () -> Void) {
        condition.lock()
        queue.append(work)
        condition.signal()
        condition.unlock()
    }

    private func runWorker() {
        while true {
            condition.lock()
            while head == queue.count { condition.wait() }
            let work = queue[head]
            head += 1
            if head == queue.count {
                queue.removeAll(keepingCapacity: true)
                head = 0
            } else if head >= 1024 && head * 2 >= queue.count {
                queue.removeFirst(head)
                head = 0
            }
            condition.unlock()
            work()
        }
    }
}
