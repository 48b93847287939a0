import CSupport
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// A value behind a test-and-set lock: one compare-and-swap to take it, one
/// release store to give it back. An emulated IOMMU unit holds its state
/// lock for a few hundred instructions per register write or translation,
/// where a POSIX mutex's second atomic (its unlock) and call overhead were a
/// sixth of a strict unmap. Waiters spin on a plain load and yield the CPU
/// every 1024 rounds, so a preempted holder costs time, never progress.
/// ThreadSanitizer sees the acquire and release, so races stay checkable.
public final class SpinLock<Value>: @unchecked Sendable {
    private let word = Atomic<UInt32>(0)
    private let value: UnsafeMutablePointer<Value>

    public init(_ initial: Value) {
        value = .allocate(capacity: 1)
        value.initialize(to: initial)
    }

    deinit {
        value.deinitialize(count: 1)
        value.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    /// - Throws: what `body` throws.
    @inline(__always)
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        if !word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged { waitForLock() }
        defer { word.store(0, ordering: .releasing) }
        return try body(&value.pointee)
    }

    @inline(never)
    private func waitForLock() {
        var rounds = 0
        repeat {
            while word.load(ordering: .relaxed) != 0 {
                rounds &+= 1
                if rounds & 1023 == 0 { sched_yield() } else { csupport_spin_hint() }
            }
        } while !word.compareExchange(expected: 0, desired: 1, ordering: .acquiring).exchanged
    }
}
