import Dispatch
import Foundation

/// One thread per trace CPU; calls are handed to them one at a time, in the
/// replay's order, so that each CPU's calls meet the same per-thread IOVA
/// caches, as Linux's per-CPU caches would.
///
/// Only one thread runs at any time: the caller waits for each call to finish
/// before handing over the next, and the semaphores order every access to the
/// replay state (that is why the box below may be `@unchecked Sendable`).
final class CPUThreads: @unchecked Sendable {
    private let go: [DispatchSemaphore]
    private let done = DispatchSemaphore(value: 0)
    private var work: (() -> Void)?
    private var stopping = false
    private var threads: [Thread] = []

    init(count: Int) {
        go = (0..<max(1, count)).map { _ in DispatchSemaphore(value: 0) }
        for index in go.indices {
            let thread = Thread { [unowned self] in self.serve(index) }
            thread.name = "replay-cpu\(index)"
            threads.append(thread)
            thread.start()
        }
    }

    private func serve(_ index: Int) {
        while true {
            go[index].wait()
            if stopping { done.signal(); return }
            work?()
            done.signal()
        }
    }

    /// Runs `body` on the thread of `cpu` (clamped to the threads there are) and waits for it.
    func run(on cpu: Int, _ body: @escaping () -> Void) {
        work = body
        go[min(max(cpu, 0), go.count - 1)].signal()
        done.wait()
        work = nil
    }

    /// Ends every thread; call once, after the last `run`.
    func stop() {
        stopping = true
        for semaphore in go {
            semaphore.signal()
            done.wait()
        }
    }
}
