import CSupport
import Emulation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// The flush queues' timer (Linux's fq_timer): one background thread that
/// flushes lazy domains whose oldest queued unmap waited longer than their
/// timeout, so that an idle device's ranges do not stay reachable forever.
///
/// It sleeps until the earliest such deadline, and while nothing is queued
/// anywhere it waits until an unmap is queued onto an empty ring (``arm()``,
/// like Linux arming its timer when a range enters an empty queue). A fixed
/// 1 ms tick woke it a thousand times a second, and once every core mapped
/// it preempted a mapping thread each time.
///
/// It holds its domains strongly and lets a state go on the first pass that
/// finds the list's reference the only one left, releasing it after the lock
/// is dropped. (Held unretained, a state could have its last reference
/// dropped by another thread while the timer ran it, and its deinit then ran
/// on the timer thread, inside the timer's lock, which it needs to leave the
/// list: a self-deadlock seen in the debug fuzz suite. A weak reference
/// would give every state a side table and slow each hot-path retain.)
final class FlushTimer: @unchecked Sendable {
    static let shared = FlushTimer()
    private struct Watched: Sendable { var state: DMADomainState }
    private let watched = HostLock<[Watched]>([])
    private let started = HostLock(false)
    /// Set while the thread is running its deadlines; cleared, under `sleeper`, before it waits.
    private let armed = Atomic<Bool>(false)
    private let sleeper: UnsafeMutablePointer<pthread_mutex_t>
    private let wakeup: UnsafeMutablePointer<pthread_cond_t>
    /// A domain with ranges queued by the Linux placement model is polled at this period: its
    /// flush queue keeps its own timer state on the host clock.
    static let linuxPlacementPollNanoseconds: UInt64 = 1_000_000
    /// With nothing queued the thread still makes a pass this often, to release departed states.
    static let idlePassNanoseconds: UInt64 = 1_000_000_000
    /// Never sleep less than this: a deadline that is due now is handled on the same pass.
    static let shortestSleepNanoseconds: UInt64 = 50_000

    private init() {
        sleeper = .allocate(capacity: 1)
        csupport_mutex_init_adaptive(sleeper)
        wakeup = .allocate(capacity: 1)
        pthread_cond_init(wakeup, nil)
    }

    func watch(_ state: DMADomainState) {
        watched.withLock { $0.append(Watched(state: state)) }
        let start = started.withLock { started in
            defer { started = true }
            return !started
        }
        if start { startThread() }
    }

    func forget(_ state: DMADomainState) {
        watched.withLock { list in list.removeAll { $0.state === state } }
    }

    /// Called when a range is queued onto an empty ring: wakes the thread if it is waiting.
    /// One fence and one load while the thread runs, which is whenever anything is queued.
    @inline(__always)
    func arm() {
        // Pairs with the thread's fence after it clears `armed`: either it sees this ring's
        // range when it looks again, or this sees `armed` cleared and wakes it.
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        if !armed.load(ordering: .relaxed) { wake() }
    }

    @inline(never)
    private func wake() {
        pthread_mutex_lock(sleeper)
        armed.store(true, ordering: .relaxed)
        pthread_cond_signal(wakeup)
        pthread_mutex_unlock(sleeper)
    }

    private func startThread() {
        var thread = pthread_t()
        pthread_create(&thread, nil, { _ in FlushTimer.shared.run() }, nil)
        pthread_detach(thread)
    }

    private func run() -> Never {
        armed.store(true, ordering: .relaxed)
        while true {
            guard let wait = pass() else {
                waitUntilArmed()
                continue
            }
            var pause = timespec(tv_sec: Int(wait / 1_000_000_000), tv_nsec: Int(wait % 1_000_000_000))
            nanosleep(&pause, nil)
        }
    }

    /// Sleeps until ``arm()`` unless a range was queued meanwhile, or for at most
    /// ``idlePassNanoseconds``: a pass also lets go of the states of departed devices.
    private func waitUntilArmed() {
        pthread_mutex_lock(sleeper)
        armed.store(false, ordering: .relaxed)
        atomicMemoryFence(ordering: .sequentiallyConsistent)
        // A range queued before the store above found `armed` set and did not wake us.
        if !anythingQueued() {
            var deadline = timespec()
            clock_gettime(CLOCK_REALTIME, &deadline)
            deadline.tv_sec += Int(Self.idlePassNanoseconds / 1_000_000_000)
            while !armed.load(ordering: .relaxed) {
                if pthread_cond_timedwait(wakeup, sleeper, &deadline) == ETIMEDOUT { break }
            }
        }
        armed.store(true, ordering: .relaxed)
        pthread_mutex_unlock(sleeper)
    }

    private func anythingQueued() -> Bool {
        watched.withLock { list in list.contains { $0.state.pendingCount > 0 } }
    }

    /// Flushes what is due; returns how long to sleep until the next deadline, nil when
    /// nothing is queued anywhere.
    private func pass() -> UInt64? {
        var departed: [DMADomainState] = []
        let now = MonotonicClock.now()
        var next = UInt64.max
        var shortestTimeout = UInt64.max
        watched.withLock { list in
            var index = 0
            while index < list.count {
                if isKnownUniquelyReferenced(&list[index].state) {
                    departed.append(list.remove(at: index).state)
                    continue
                }
                let state = list[index].state
                state.flushExpired(now: now)
                shortestTimeout = min(shortestTimeout, state.configuration.flushTimeoutNanoseconds)
                if let deadline = state.earliestDeadline(after: now) { next = min(next, deadline) }
                index += 1
            }
        }
        departed.removeAll() // their deinits run here, outside the lock
        guard next != .max else { return nil }
        // A domain with a shorter timeout may queue while this sleeps: wake at least that often.
        let wait = next > now ? min(next - now, shortestTimeout) : 0
        return max(wait, Self.shortestSleepNanoseconds)
    }
}
