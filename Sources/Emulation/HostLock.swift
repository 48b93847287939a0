#if canImport(Glibc)
import Glibc
#endif
import CSupport

/// A value behind a POSIX mutex (adaptive: a waiter spins briefly before it
/// sleeps): the package's general-purpose lock.
/// Cheaper than `Synchronization.Mutex` here (about 10 ns against 14 ns per
/// lock+unlock), and visible to ThreadSanitizer, which intercepts
/// pthread_mutex but cannot see the futex inside `Mutex` and so reports every
/// access made under one from two threads. Every shared state in the package
/// is behind this, a ``SpinLock`` or an atomic, so a TSan report is a race.
public final class HostLock<Value>: @unchecked Sendable {
    @usableFromInline let mutex: UnsafeMutablePointer<pthread_mutex_t>
    @usableFromInline let value: UnsafeMutablePointer<Value>

    public init(_ initial: Value) {
        mutex = .allocate(capacity: 1)
        csupport_mutex_init_adaptive(mutex)
        value = .allocate(capacity: 1)
        value.initialize(to: initial)
    }

    deinit {
        pthread_mutex_destroy(mutex)
        mutex.deallocate()
        value.deinitialize(count: 1)
        value.deallocate()
    }

    /// Runs `body` with the value, holding the lock.
    /// - Throws: what `body` throws.
    /// Inlinable so that callers in other modules get it specialized and
    /// inlined, as they did `Mutex.withLock`, instead of a generic call.
    @inlinable @inline(__always)
    public func withLock<Result, Failure: Error>(_ body: (inout Value) throws(Failure) -> Result) throws(Failure) -> Result {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
