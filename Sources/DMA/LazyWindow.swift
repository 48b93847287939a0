import Emulation
#if canImport(Glibc)
import Glibc
#endif
import Synchronization

/// How exposed a lazy domain has been: after an unmap returns, the range
/// stays reachable through stale IOTLB entries until the batched flush.
/// These counters measure that window at each flush.
public struct LazyWindowStatistics: Sendable, Hashable, Codable {
    /// Batched invalidations done.
    public var flushes: UInt64 = 0
    /// ... of which the flush timer started.
    public var flushesByTimeout: UInt64 = 0
    /// Unmapped ranges released by those flushes.
    public var rangesFlushed: UInt64 = 0
    /// The most ranges one flush covered: stale translations a device could still use at once.
    public var largestBatchRanges: UInt64 = 0
    /// ... and the bytes they covered.
    public var largestBatchBytes: UInt64 = 0
    /// The longest any unmapped range waited for its invalidation, in nanoseconds.
    public var longestWindowNanoseconds: UInt64 = 0
    /// Mean wait of the oldest range of each batch, in nanoseconds.
    public var meanWindowNanoseconds: UInt64 = 0
}

final class LazyWindowCounters: Sendable {
    private let state = HostLock(LazyWindowStatistics())
    private let windowTotal = HostLock<UInt64>(0)

    func record(ranges: Int, bytes: UInt64, nanoseconds: UInt64, byTimeout: Bool) {
        state.withLock { stats in
            stats.flushes += 1
            if byTimeout { stats.flushesByTimeout += 1 }
            stats.rangesFlushed += UInt64(ranges)
            stats.largestBatchRanges = max(stats.largestBatchRanges, UInt64(ranges))
            stats.largestBatchBytes = max(stats.largestBatchBytes, bytes)
            stats.longestWindowNanoseconds = max(stats.longestWindowNanoseconds, nanoseconds)
            let total = windowTotal.withLock { total in
                total &+= nanoseconds
                return total
            }
            stats.meanWindowNanoseconds = total / stats.flushes
        }
    }

    var snapshot: LazyWindowStatistics { state.withLock { $0 } }
}

enum MonotonicClock {
    @inline(__always)
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}

/// The flush queues' timer (Linux's fq_timer): one background thread that
/// periodically flushes lazy domains whose oldest queued unmap waited longer
/// than their timeout, so that an idle device's ranges do not stay reachable forever.
///
/// It holds its domains strongly and lets a state go on the first tick that
/// finds the list's reference the only one left, releasing it after the lock
/// is dropped. (Held unretained, a state could have its last reference
/// dropped by another thread while the tick ran it, and its deinit then ran
/// on the tick thread, inside the tick's lock, which it needs to leave the
/// list: a self-deadlock seen in the debug fuzz suite. A weak reference
/// would give every state a side table and slow each hot-path retain.)
final class FlushTimer: Sendable {
    static let shared = FlushTimer()
    private struct Watched: Sendable { var state: DMADomainState }
    private let watched = HostLock<[Watched]>([])
    private let started = HostLock(false)
    static let tickNanoseconds: UInt64 = 1_000_000

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

    private func startThread() {
        var thread = pthread_t()
        pthread_create(&thread, nil, { _ in
            var pause = timespec(tv_sec: 0, tv_nsec: Int(FlushTimer.tickNanoseconds))
            while true {
                nanosleep(&pause, nil)
                FlushTimer.shared.tick()
            }
        }, nil)
        pthread_detach(thread)
    }

    private func tick() {
        var departed: [DMADomainState] = []
        watched.withLock { list in
            let now = MonotonicClock.now()
            var index = 0
            while index < list.count {
                if isKnownUniquelyReferenced(&list[index].state) {
                    departed.append(list.remove(at: index).state)
                    continue
                }
                list[index].state.flushExpired(now: now)
                index += 1
            }
        }
        departed.removeAll() // their deinits run here, outside the lock
    }
}
