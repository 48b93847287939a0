#if canImport(Glibc)
import Glibc
#endif
import DMA
import Synchronization

/// Runs one benchmark body per thread on plain POSIX threads (no Foundation,
/// no executor between the measurement and the CPU) and collects the results.
enum ThreadRunner {
    typealias Outcome = Result<DMABenchmark.ThreadSamples, DMAError>

    private final class Job: @unchecked Sendable {
        let index: Int
        let body: @Sendable (Int) -> Outcome
        /// Written by the job's thread before pthread_join returns, read after.
        var outcome: Outcome?
        init(index: Int, body: @escaping @Sendable (Int) -> Outcome) {
            self.index = index
            self.body = body
        }
        func run() { outcome = body(index) }
    }

    /// - Throws: the first error a body returned.
    static func run(threads: Int, _ body: @escaping @Sendable (Int) -> Outcome) throws(DMAError) -> [DMABenchmark.ThreadSamples] {
        let jobs = (0..<max(1, threads)).map { Job(index: $0, body: body) }
        if jobs.count == 1 {
            jobs[0].run()
        } else {
            var handles: [pthread_t] = []
            for job in jobs {
                var handle = pthread_t()
                pthread_create(&handle, nil, { raw in
                    guard let raw else { return nil }
                    Unmanaged<Job>.fromOpaque(raw).takeRetainedValue().run()
                    return nil
                }, Unmanaged.passRetained(job).toOpaque())
                handles.append(handle)
            }
            for handle in handles { pthread_join(handle, nil) }
        }
        var outputs: [DMABenchmark.ThreadSamples] = []
        for job in jobs {
            switch job.outcome {
            case let .success(samples): outputs.append(samples)
            case let .failure(error): throw error
            case nil: break
            }
        }
        return outputs
    }
}

/// Lets the benchmark threads start timing together: each arrives, then spins until all have.
final class StartBarrier: Sendable {
    private let threads: Int
    private let arrived = Atomic<Int>(0)

    init(threads: Int) { self.threads = max(1, threads) }

    func arriveAndWait() {
        arrived.add(1, ordering: .acquiringAndReleasing)
        while arrived.load(ordering: .acquiring) < threads { sched_yield() }
    }
}
