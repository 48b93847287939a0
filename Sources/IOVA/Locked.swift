import Glibc
import CSupport

/// A value behind a `pthread_mutex_t`. Used instead of `Synchronization.Mutex` because
/// ThreadSanitizer intercepts pthread locks but cannot see inside the prebuilt `Mutex`, which
/// makes it report false races. Only the slow paths take these locks; they are adaptive
/// (a waiter spins briefly before it sleeps) because two threads' slow paths meet often.
struct Locked<Value: ~Copyable>: ~Copyable, @unchecked Sendable {
    private let mutex: UnsafeMutablePointer<pthread_mutex_t>
    private let value: UnsafeMutablePointer<Value>

    init(_ initial: consuming Value) {
        mutex = .allocate(capacity: 1)
        mutex.initialize(to: pthread_mutex_t())
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

    @inline(__always)
    func withLock<R: ~Copyable, E: Error>(_ body: (inout Value) throws(E) -> R) throws(E) -> R {
        pthread_mutex_lock(mutex)
        defer { pthread_mutex_unlock(mutex) }
        return try body(&value.pointee)
    }
}
