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

/// Each field is its own atomic: every thread's ring flushes record here, and a
/// shared lock taken once per flush put two mapping threads to sleep on each
/// other (a fifth of their combined rate). A snapshot taken while flushes run
/// may mix fields from before and after one of them.
final class LazyWindowCounters: Sendable {
    private let flushes = Atomic<UInt64>(0)
    private let flushesByTimeout = Atomic<UInt64>(0)
    private let rangesFlushed = Atomic<UInt64>(0)
    private let largestBatchRanges = Atomic<UInt64>(0)
    private let largestBatchBytes = Atomic<UInt64>(0)
    private let longestWindow = Atomic<UInt64>(0)
    private let windowTotal = Atomic<UInt64>(0)

    func record(ranges: Int, bytes: UInt64, nanoseconds: UInt64, byTimeout: Bool) {
        if byTimeout { flushesByTimeout.wrappingAdd(1, ordering: .relaxed) }
        rangesFlushed.wrappingAdd(UInt64(ranges), ordering: .relaxed)
        largestBatchRanges.raise(to: UInt64(ranges))
        largestBatchBytes.raise(to: bytes)
        longestWindow.raise(to: nanoseconds)
        windowTotal.wrappingAdd(nanoseconds, ordering: .relaxed)
        // Last, with release: a snapshot that sees this flush counted sees its window too.
        flushes.wrappingAdd(1, ordering: .releasing)
    }

    var snapshot: LazyWindowStatistics {
        var statistics = LazyWindowStatistics()
        statistics.flushes = flushes.load(ordering: .acquiring)
        statistics.flushesByTimeout = flushesByTimeout.load(ordering: .relaxed)
        statistics.rangesFlushed = rangesFlushed.load(ordering: .relaxed)
        statistics.largestBatchRanges = largestBatchRanges.load(ordering: .relaxed)
        statistics.largestBatchBytes = largestBatchBytes.load(ordering: .relaxed)
        statistics.longestWindowNanoseconds = longestWindow.load(ordering: .relaxed)
        if statistics.flushes > 0 {
            statistics.meanWindowNanoseconds = windowTotal.load(ordering: .relaxed) / statistics.flushes
        }
        return statistics
    }
}

extension Atomic where Value == UInt64 {
    /// Keeps the maximum; after the first flushes the new value is rarely larger, so this is one load.
    func raise(to value: UInt64) {
        var current = load(ordering: .relaxed)
        while value > current {
            let (exchanged, found) = compareExchange(expected: current, desired: value, ordering: .relaxed)
            if exchanged { return }
            current = found
        }
    }
}

enum MonotonicClock {
    @inline(__always)
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}
