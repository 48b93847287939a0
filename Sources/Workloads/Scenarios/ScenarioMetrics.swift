#if canImport(Glibc)
import Glibc
#endif
import Histogram

/// A monotonic nanosecond clock read with one vDSO call: cheap enough to
/// bracket every map and unmap a scenario makes (never the DMA layer itself).
enum ScenarioClock {
    @inline(__always) static func nanoseconds() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) &* 1_000_000_000 &+ UInt64(time.tv_nsec)
    }
}

/// Map and unmap latencies of one run, in HdrHistograms (3 significant
/// digits, 1 ns to 60 s). Anything that measures maps and unmaps (a trace
/// replay too) can record here and get a ``RunSeries``' latency fields.
public struct LatencyRecorder: Sendable {
    public init() {}

    private(set) var map = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000,
                                            numberOfSignificantValueDigits: .three)
    private(set) var unmap = Histogram<UInt64>(lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000_000,
                                              numberOfSignificantValueDigits: .three)

    public mutating func recordMap(_ nanoseconds: UInt64) { _ = map.record(max(1, nanoseconds)) }
    public mutating func recordUnmap(_ nanoseconds: UInt64) { _ = unmap.record(max(1, nanoseconds)) }

    public var mapSummary: LatencySummary { Self.summary(map) }
    public var unmapSummary: LatencySummary { Self.summary(unmap) }
    public var mapBuckets: [HistogramBucket] { Self.buckets(map) }
    public var unmapBuckets: [HistogramBucket] { Self.buckets(unmap) }

    static func summary(_ histogram: Histogram<UInt64>) -> LatencySummary {
        guard histogram.totalCount > 0 else { return .empty }
        return LatencySummary(count: histogram.totalCount, mean: histogram.mean,
                              p50: histogram.valueAtPercentile(50), p90: histogram.valueAtPercentile(90),
                              p99: histogram.valueAtPercentile(99), p999: histogram.valueAtPercentile(99.9),
                              max: histogram.max)
    }

    /// Buckets doubling in width (up to 16 ns, 32 ns, 64 ns, ...), from the first to the last one
    /// recorded: latencies span orders of magnitude, so a log axis shows them best.
    static func buckets(_ histogram: Histogram<UInt64>) -> [HistogramBucket] {
        guard histogram.totalCount > 0 else { return [] }
        var counts: [Int: UInt64] = [:]
        for step in histogram.recordedValues() {
            counts[bucketIndex(step.value), default: 0] += UInt64(step.count)
        }
        guard let lowest = counts.keys.min(), let highest = counts.keys.max() else { return [] }
        return (lowest...highest).map { HistogramBucket(upToNanoseconds: 1 << UInt64($0), count: counts[$0] ?? 0) }
    }

    /// The smallest k >= 4 with value <= 2^k.
    static func bucketIndex(_ value: UInt64) -> Int {
        guard value > 16 else { return 4 }
        return min(62, 64 - (value - 1).leadingZeroBitCount)
    }
}

/// Samples of a run's state, kept to a bounded number: when full, every
/// other sample is dropped and the sampling interval doubles.
struct TimelineRecorder {
    private(set) var samples: [TimelineSample] = []
    private(set) var interval: UInt64
    private var nextAt: UInt64
    private var lastHits: UInt64 = 0
    private var lastMisses: UInt64 = 0
    private var lastRate = 0.0
    static let limit = 400

    init(expectedOperations: UInt64, baseline: PlatformCounters) {
        interval = max(1, expectedOperations / 200)
        nextAt = 0
        lastHits = baseline.iotlbHits
        lastMisses = baseline.iotlbMisses
    }

    func isDue(operations: UInt64) -> Bool { operations >= nextAt }

    mutating func add(elapsed: Double, operations: UInt64, iovaBytes: UInt64, iotlbHits: UInt64, iotlbMisses: UInt64,
                      faults: UInt64) {
        let hits = iotlbHits &- lastHits, misses = iotlbMisses &- lastMisses
        // An interval without translations keeps the last rate instead of dropping to zero.
        if hits + misses > 0 { lastRate = Double(hits) / Double(hits + misses) }
        lastHits = iotlbHits
        lastMisses = iotlbMisses
        samples.append(TimelineSample(elapsedSeconds: elapsed, operations: operations, iovaBytesInUse: iovaBytes,
                                      iotlbHitRate: lastRate, faults: faults))
        if samples.count >= Self.limit {
            samples = samples.enumerated().filter { $0.offset % 2 == 0 }.map(\.element)
            interval *= 2
        }
        nextAt = operations + interval
    }
}
