import Foundation  // JSON rendering only, never inside a timed loop
import Glibc
import Emulation
import IOVA
import Synchronization

/// What `iommu-sim bench iova` measures: allocate+free pairs on one shared ``IOVAAllocator``
/// (4 KiB granules, 48-bit space, as a DMA domain would use), on 1..N threads at once.
public struct IOVABenchmarkOptions: Sendable {
    public enum Case: String, CaseIterable, Sendable, Codable {
        /// allocate one page, free it.
        case single
        /// allocate 1–32 pages (a fixed pseudo-random mix), free it.
        case mixed
        /// allocate 256 single pages, then free all 256.
        case burst
    }

    /// Allocate+free pairs per thread; nil means run for `duration`.
    public var iterations: Int?
    /// Seconds per case and thread count when `iterations` is nil.
    public var duration: Double
    public var threads: [Int]
    public var cases: [Case]

    public init(iterations: Int? = nil, duration: Double = 1.0, threads: [Int] = [1, 2],
                cases: [Case] = Case.allCases) {
        self.iterations = iterations
        self.duration = duration
        self.threads = threads
        self.cases = cases
    }
}

public struct IOVABenchmarkReport: Codable, Sendable {
    public struct Result: Codable, Sendable {
        public var `case`: String
        public var threads: Int
        /// Allocate+free pairs per thread.
        public var iterations: Int
        /// Nanoseconds per allocate+free pair, per thread (mean over threads).
        public var nsPerOp: Double
        /// Allocate+free pairs per second, all threads together.
        public var opsPerSecond: Double
        /// Wall-clock seconds of the timed part.
        public var seconds: Double
        /// Fraction of allocations served from the per-thread caches.
        public var cacheHitRate: Double
        /// Errors seen (should be 0).
        public var errors: Int
        /// Mean over threads of (thread CPU time / thread wall time) in the timed part: below
        /// about 0.95 the threads were not running all the time (a busy machine), and the
        /// figures understate the allocator.
        public var cpuShare: Double
        /// Thread CPU nanoseconds per pair (mean over threads): unlike `nsPerOp` it does not
        /// grow when other processes take the cores, so 1- and 2-thread runs compare fairly.
        public var cpuNsPerOp: Double
    }

    public var results: [Result]
    public var granule: UInt64
    public var cachesEnabled: Bool

    /// A readable table.
    public func renderText() -> String {
        var lines = ["IOVA allocator: allocate+free pairs (granule \(granule) bytes, caches \(cachesEnabled ? "on" : "off"))",
                     pad("case", 8) + pad("threads", 9) + pad("iterations", 13) + pad("ns/op", 10)
                        + pad("cpu ns/op", 11) + pad("Mops/s", 10) + pad("cache hits", 11) + pad("cpu share", 10) + "errors"]
        for r in results {
            lines.append(pad(r.case, 8) + pad(String(r.threads), 9) + pad(String(r.iterations), 13)
                         + pad(String(format: "%.2f", r.nsPerOp), 10)
                         + pad(String(format: "%.2f", r.cpuNsPerOp), 11)
                         + pad(String(format: "%.2f", r.opsPerSecond / 1e6), 10)
                         + pad(String(format: "%.1f%%", r.cacheHitRate * 100), 11)
                         + pad(String(format: "%.2f", r.cpuShare), 10) + String(r.errors))
        }
        if let one = results.first(where: { $0.case == "single" && $0.threads == 1 }),
           let two = results.first(where: { $0.case == "single" && $0.threads == 2 }), one.opsPerSecond > 0 {
            lines.append(String(format: "single: 2 threads = %.2fx the 1-thread rate", two.opsPerSecond / one.opsPerSecond))
        }
        return lines.joined(separator: "\n")
    }

    /// One JSON object: `{"results": [{"case": …, "threads": …, "iterations": …, "nsPerOp": …,
    /// "opsPerSecond": …, …}], …}`.
    public func renderJSON() -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        guard let data = try? encoder.encode(self) else { return "{}" }
        return String(decoding: data, as: UTF8.self)
    }

    private func pad(_ s: String, _ width: Int) -> String {
        s.count >= width ? s + " " : s + String(repeating: " ", count: width - s.count)
    }
}

public enum IOVABenchmark {
    static let granule: UInt64 = 4096
    static let limit: UInt64 = 0xFFFF_FFFF_FFFF

    public static func run(_ options: IOVABenchmarkOptions) -> IOVABenchmarkReport {
        var report = IOVABenchmarkReport(results: [], granule: granule, cachesEnabled: true)
        for c in options.cases {
            for t in options.threads where t > 0 {
                report.results.append(measure(c, threads: t, options: options))
            }
        }
        return report
    }

    static func measure(_ c: IOVABenchmarkOptions.Case, threads: Int, options: IOVABenchmarkOptions) -> IOVABenchmarkReport.Result {
        guard let allocator = try? IOVAAllocator(granule: granule, space: 0...limit) else {
            return .init(case: c.rawValue, threads: threads, iterations: 0, nsPerOp: 0, opsPerSecond: 0,
                         seconds: 0, cacheHitRate: 0, errors: 1, cpuShare: 0, cpuNsPerOp: 0)
        }
        let shared = IOVABenchShared(threads: threads)
        iovaBenchRunThreads(threads) { index in
            var worker = IOVABenchWorker(allocator: allocator, benchCase: c, seed: UInt64(index + 1))
            _ = worker.batch(4096)  // warm the caches (not timed)
            shared.arriveAndWait()
            let cpuStart = IOVABenchClock.threadCPU()
            let start = IOVABenchClock.now()
            var done = 0
            if let n = options.iterations {
                done = worker.batch(max(n, 1))
            } else {
                let deadline = start + UInt64(max(options.duration, 0.001) * 1e9)
                repeat { done += worker.batch(20_000) } while IOVABenchClock.now() < deadline
            }
            let elapsed = IOVABenchClock.now() - start
            let cpu = IOVABenchClock.threadCPU() - cpuStart
            shared.record(index: index, pairs: done, nanoseconds: elapsed, cpu: cpu, errors: worker.errors)
        }
        let stats = allocator.statistics
        let lookups = stats.cacheHits + stats.cacheMisses
        let (pairs, perThreadNs, wallNs, errors, cpuShare) = shared.totals()
        let cpuNs = shared.cpuNsPerPair()
        return .init(case: c.rawValue, threads: threads, iterations: pairs / threads,
                     nsPerOp: perThreadNs, opsPerSecond: Double(pairs) / (Double(wallNs) / 1e9),
                     seconds: Double(wallNs) / 1e9,
                     cacheHitRate: lookups == 0 ? 0 : Double(stats.cacheHits) / Double(lookups), errors: errors,
                     cpuShare: cpuShare, cpuNsPerOp: cpuNs)
    }
}

/// One thread's loop. `batch(n)` performs n allocate+free pairs and returns n.
struct IOVABenchWorker {
    let allocator: IOVAAllocator
    let benchCase: IOVABenchmarkOptions.Case
    var errors = 0
    var sizes: [UInt64]
    var held: [UInt64]
    var cursor = 0

    init(allocator: IOVAAllocator, benchCase: IOVABenchmarkOptions.Case, seed: UInt64) {
        self.allocator = allocator
        self.benchCase = benchCase
        var x = seed &* 0x9E37_79B9_7F4A_7C15
        sizes = (0..<1024).map { _ in
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            return (1 + x % 32) * IOVABenchmark.granule
        }
        held = [UInt64](repeating: 0, count: 256)
    }

    mutating func batch(_ n: Int) -> Int {
        let a = allocator
        let limit = IOVABenchmark.limit
        let page = IOVABenchmark.granule
        switch benchCase {
        case .single:
            for _ in 0..<n {
                do {
                    let x = try a.allocate(size: page, limit: limit)
                    try a.free(address: x, size: page)
                } catch { errors += 1 }
            }
            return n
        case .mixed:
            sizes.withUnsafeBufferPointer { table in
                var i = cursor
                for _ in 0..<n {
                    let size = table[i & 1023]
                    i &+= 1
                    do {
                        let x = try a.allocate(size: size, limit: limit)
                        try a.free(address: x, size: size)
                    } catch { errors += 1 }
                }
                cursor = i
            }
            return n
        case .burst:
            let rounds = (n + 255) / 256
            held.withUnsafeMutableBufferPointer { buf in
                for _ in 0..<rounds {
                    for j in 0..<256 {
                        do { buf[j] = try a.allocate(size: page, limit: limit) } catch { errors += 1; buf[j] = 0 }
                    }
                    for j in 0..<256 where buf[j] != 0 {
                        do { try a.free(address: buf[j], size: page) } catch { errors += 1 }
                    }
                }
            }
            return rounds * 256
        }
    }
}

enum IOVABenchClock {
    static func now() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }

    static func threadCPU() -> UInt64 {
        var ts = timespec()
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts)
        return UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec)
    }
}

/// Start barrier and per-thread results.
final class IOVABenchShared: Sendable {
    let arrived = Atomic<Int>(0)
    let threads: Int
    let results: HostLock<[(pairs: Int, ns: UInt64, cpu: UInt64, errors: Int)]>

    init(threads: Int) {
        self.threads = threads
        results = HostLock(Array(repeating: (0, 0, 0, 0), count: threads))
    }

    func arriveAndWait() {
        arrived.add(1, ordering: .acquiringAndReleasing)
        while arrived.load(ordering: .acquiring) < threads { sched_yield() }
    }

    func record(index: Int, pairs: Int, nanoseconds: UInt64, cpu: UInt64, errors: Int) {
        results.withLock { $0[index] = (pairs, nanoseconds, cpu, errors) }
    }

    func cpuNsPerPair() -> Double {
        results.withLock { r in
            r.reduce(0.0) { $0 + Double($1.cpu) / Double(max($1.pairs, 1)) } / Double(max(r.count, 1))
        }
    }

    /// Total pairs, mean ns per pair per thread, wall time (slowest thread), errors, CPU share.
    func totals() -> (Int, Double, UInt64, Int, Double) {
        results.withLock { r in
            let pairs = r.reduce(0) { $0 + $1.pairs }
            let perThread = r.reduce(0.0) { $0 + Double($1.ns) / Double(max($1.pairs, 1)) } / Double(max(r.count, 1))
            let wall = r.map(\.ns).max() ?? 0
            let share = r.reduce(0.0) { $0 + Double($1.cpu) / Double(max($1.ns, 1)) } / Double(max(r.count, 1))
            return (pairs, perThread, wall, r.reduce(0) { $0 + $1.errors }, share)
        }
    }
}

/// Runs `body(index)` on `count` POSIX threads and joins them.
func iovaBenchRunThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Box: @unchecked Sendable {
        let body: @Sendable (Int) -> Void
        let index: Int
        init(_ body: @escaping @Sendable (Int) -> Void, _ index: Int) { self.body = body; self.index = index }
    }
    var handles: [pthread_t] = []
    for i in 0..<count {
        let box = Unmanaged.passRetained(Box(body, i)).toOpaque()
        var t = pthread_t()
        if pthread_create(&t, nil, { raw in
            let b = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            b.body(b.index)
            return nil
        }, box) == 0 {
            handles.append(t)
        } else {
            let b = Unmanaged<Box>.fromOpaque(box).takeRetainedValue()
            b.body(b.index)
        }
    }
    for t in handles { pthread_join(t, nil) }
}
