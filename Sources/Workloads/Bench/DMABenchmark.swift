#if canImport(Glibc)
import Glibc
#endif
import DMA
import Emulation
import IOMMUCore
import Synchronization

/// The counterpart of Linux's dma_map_benchmark: map+unmap latency through
/// the whole DMA API on the default platform's NIC, from one or more threads,
/// plus a device read whose translation hits the IOTLB.
public enum DMABenchmark {
    public struct Options: Sendable {
        public var threads: Int = 1
        /// Run each thread for this long, unless ``iterations`` is set.
        public var seconds: Double = 1
        /// A fixed number of map+unmap pairs per thread (deterministic: for callgrind).
        public var iterations: Int?
        /// Duration runs only: every thread maps and unmaps untimed this long, then all start
        /// timing at once. The first tenths of a second of a run with several threads are slower
        /// on a virtual machine (its host places the virtual CPUs), and caches and magazines fill.
        public var warmupSeconds: Double = 0.25
        public var pages: Int = 1
        public var direction: DMADirection = .bidirectional
        public var policies: [Policy] = [.strict, .lazy, .shadow]
        public var family: IOMMUFamily = .intelVTd
        /// Mappings made before they are unmapped, per timed batch.
        public var batch: Int = 32
        /// Emulated memory; smaller than the default platform's 64 GiB so that valgrind can reserve it.
        public var memoryGiB: UInt64 = 64
        /// AMD-Vi: keep the driver's leaf-page array in DMA domains (nil: the driver's default, on).
        public var amdLeafArray: Bool?

        public init() {}
    }

    /// How the NIC's mappings are protected: its domain's invalidation policy, or shadow buffers in a strict domain.
    public enum Policy: String, Sendable, Hashable, CaseIterable {
        case strict, lazy, shadow

        var invalidation: DefaultDomainPolicy.Invalidation { self == .lazy ? .lazy : .strict }
    }

    public struct Result: Codable, Sendable, Hashable {
        public var driver: String
        public var policy: String
        public var threads: Int
        public var pages: Int
        public var direction: String
        /// Map+unmap pairs per thread.
        public var iterations: Int
        /// Mean latency of one map, and its standard deviation over batches of all threads.
        public var mapNs: Double
        public var mapStddevNs: Double
        public var unmapNs: Double
        public var unmapStddevNs: Double
        /// Map + unmap, per thread.
        public var nsPerOp: Double
        /// Map+unmap pairs per second, all threads together.
        public var opsPerSecond: Double
        /// A 64-byte device read whose translation hits the IOTLB, single thread.
        public var deviceReadNs: Double
        /// Lazy mode: the longest an unmapped range stayed reachable, and the most ranges one flush released.
        public var lazyWindowMaxNs: UInt64
        /// Lazy mode: the mean wait of each flushed batch's oldest range.
        public var lazyWindowMeanNs: UInt64
        public var lazyWindowMaxRanges: UInt64
        /// Map + unmap of one 4 KiB page through the IOMMU-API alone (no DMA layer, no
        /// invalidation), single thread: the driver's page-table work.
        public var domainMapUnmapNs: Double
        /// AMD-Vi: whether the leaf-page array was on; absent for other families.
        public var leafArray: Bool?
    }

    public struct Report: Codable, Sendable {
        public var results: [Result]

        public func renderText() -> String {
            var table = TextTable(["driver", "policy", "threads", "pages", "iterations", "map ns", "±", "unmap ns", "±",
                                   "ns/op", "ops/s", "dev read ns", "domain map+unmap ns", "lazy window"])
            for r in results {
                let driver = r.driver + (r.leafArray.map { $0 ? " (leaf array)" : " (no leaf array)" } ?? "")
                table.add([driver, r.policy, "\(r.threads)", "\(r.pages)", "\(r.iterations)", String(oneDecimal: r.mapNs),
                           String(oneDecimal: r.mapStddevNs), String(oneDecimal: r.unmapNs), String(oneDecimal: r.unmapStddevNs),
                           String(oneDecimal: r.nsPerOp), String(Int(r.opsPerSecond)), String(oneDecimal: r.deviceReadNs),
                           String(oneDecimal: r.domainMapUnmapNs),
                           r.policy == "lazy" ? "mean \(r.lazyWindowMeanNs / 1000) us, max \(r.lazyWindowMaxNs / 1000) us, \(r.lazyWindowMaxRanges) ranges" : "-"])
            }
            return table.render()
        }
    }

    /// Runs one measurement per policy.
    /// - Throws: ``PlatformError`` when the platform cannot be built, ``DMAError`` when a mapping fails.
    public static func run(_ options: Options) throws -> Report {
        var results: [Result] = []
        for policy in options.policies {
            var specification = try PlatformSpecification.defaultPlatform(family: options.family,
                                                                          policy: DefaultDomainPolicy(invalidation: policy.invalidation))
            let top = max(8, options.memoryGiB) << 30
            specification.memoryBytes = top
            specification.usableMemory = specification.usableMemory.compactMap { range in
                range.lowerBound.value < top ? range.lowerBound...min(range.upperBound, PhysicalAddress(top - 1)) : nil
            }
            if let leafArray = options.amdLeafArray {
                for index in specification.units.indices { specification.units[index].amdViLeafArray = leafArray }
            }
            let platform = try EmulatedPlatform(specification, dmaConfiguration: dmaConfiguration(policy, options: options))
            guard let nic = platform.dma(for: "nic0") else { continue }
            let size = options.pages * 4096
            var buffers: [PhysicalAddress] = []
            for _ in 0..<options.threads { buffers.append(try platform.pages.allocate(pages: UInt64(options.pages))) }
            let warm = try nic.map(buffers[0], size: size, direction: options.direction)
            try nic.unmap(warm, size: size, direction: options.direction)

            let perThread = buffers
            let start = StartBarrier(threads: options.threads)
            let samples = try ThreadRunner.run(threads: options.threads) { index in
                Swift.Result { () throws(DMAError) in
                    try measure(nic, buffer: perThread[index], size: size, options: options, start: start)
                }
            }
            nic.flushDeferred()
            let window = nic.lazyWindow
            let read = try deviceRead(nic, buffer: buffers[0], iterations: 100_000)
            let domainWork = try domainMapUnmap(nic, buffer: buffers[0], iterations: 100_000)
            var result = summarize(samples, options: options, policy: policy, deviceReadNs: read, window: window)
            result.domainMapUnmapNs = domainWork
            result.leafArray = options.family == .amdVi ? (options.amdLeafArray ?? true) : nil
            results.append(result)
        }
        return Report(results: results)
    }

    /// Per-batch latencies kept as running moments, not arrays: appending a million samples a
    /// second per thread grew arrays through page faults and reallocations inside the timing.
    struct ThreadSamples: Sendable {
        var mapPerOp = RunningMoments()
        var unmapPerOp = RunningMoments()
        var pairs = 0
        var elapsed: UInt64 = 0
    }

    static func measure(_ nic: DeviceDMA, buffer: PhysicalAddress, size: Int, options: Options,
                        start barrier: StartBarrier) throws(DMAError) -> ThreadSamples {
        var samples = ThreadSamples()
        let batch = max(1, options.batch)
        var bus = [IOVirtualAddress](repeating: IOVirtualAddress(0), count: batch)
        if options.iterations == nil, options.warmupSeconds > 0 {
            let warm = now() + UInt64(options.warmupSeconds * 1e9)
            try bus.withUnsafeMutableBufferPointer { bus throws(DMAError) in
                while now() < warm {
                    for slot in 0..<batch { bus[slot] = try nic.map(buffer, size: size, direction: options.direction) }
                    for slot in 0..<batch { try nic.unmap(bus[slot], size: size, direction: options.direction) }
                }
            }
        }
        barrier.arriveAndWait()
        let deadline = now() + UInt64(options.seconds * 1e9)
        let start = now()
        var remaining = options.iterations ?? Int.max
        while remaining > 0 {
            let count = min(batch, remaining)
            // Through a buffer pointer: an array subscript write checks uniqueness on every mapping.
            let (t0, t1, t2) = try bus.withUnsafeMutableBufferPointer { bus throws(DMAError) in
                let t0 = now()
                for slot in 0..<count { bus[slot] = try nic.map(buffer, size: size, direction: options.direction) }
                let t1 = now()
                for slot in 0..<count { try nic.unmap(bus[slot], size: size, direction: options.direction) }
                return (t0, t1, now())
            }
            samples.mapPerOp.add(Double(t1 - t0) / Double(count))
            samples.unmapPerOp.add(Double(t2 - t1) / Double(count))
            samples.pairs += count
            remaining -= count
            if options.iterations == nil, t2 >= deadline { break }
        }
        samples.elapsed = now() - start
        return samples
    }

    static func deviceRead(_ nic: DeviceDMA, buffer: PhysicalAddress, iterations: Int) throws(DMAError) -> Double {
        let bus = try nic.map(buffer, size: 4096, direction: .bidirectional)
        defer { try? nic.unmap(bus, size: 4096, direction: .bidirectional) }
        var scratch = [UInt8](repeating: 0, count: 64)
        let start = now()
        scratch.withUnsafeMutableBytes { raw in
            for _ in 0..<iterations { _ = nic.device.engine.read(from: bus, into: raw) }
        }
        return Double(now() - start) / Double(max(1, iterations))
    }

    /// The driver's page-table work alone: IOMMU-API map + unmap of one page at an IOVA the
    /// allocator handed out, without the DMA layer and without invalidation.
    static func domainMapUnmap(_ nic: DeviceDMA, buffer: PhysicalAddress, iterations: Int) throws -> Double {
        // A shadow device's map hands out slots of its pool, which stays mapped: no free IOVA to borrow, and no table work to time.
        guard let domain = nic.managed?.group.defaultDomain, domain.kind.usesDMALayer, !nic.usesShadowBuffers else { return 0 }
        let free = try nic.map(buffer, size: 4096, direction: .fromDevice)
        try nic.unmap(free, size: 4096, direction: .fromDevice)
        nic.flushDeferred()
        var gather = IOTLBGather()
        let start = now()
        for _ in 0..<iterations {
            try domain.map(iova: free, physical: buffer, size: 4096, permissions: .write)
            try domain.unmap(iova: free, size: 4096, gather: &gather)
        }
        let elapsed = now() - start
        domain.flush(gather)
        return Double(elapsed) / Double(max(1, iterations))
    }

    /// Shadow buffers get a pool that holds every thread's batch of mappings at once.
    static func dmaConfiguration(_ policy: Policy, options: Options) -> DMAConfiguration {
        guard policy == .shadow else { return DMAConfiguration() }
        let granules = max(StreamingProtection.defaultShadowGranules, options.threads * max(1, options.batch) * (options.pages + 1))
        return DMAConfiguration(streamingProtection: .shadowBuffers(granules: granules))
    }

    static func summarize(_ samples: [ThreadSamples], options: Options, policy: Policy,
                          deviceReadNs: Double, window: LazyWindowStatistics) -> Result {
        let maps = samples.map(\.mapPerOp).reduce(RunningMoments()) { $0.merged(with: $1) }
        let unmaps = samples.map(\.unmapPerOp).reduce(RunningMoments()) { $0.merged(with: $1) }
        let (map, mapDeviation) = (maps.mean, maps.populationDeviation)
        let (unmap, unmapDeviation) = (unmaps.mean, unmaps.populationDeviation)
        let pairs = samples.reduce(0) { $0 + $1.pairs }
        let longest = samples.map(\.elapsed).max() ?? 1
        return Result(driver: options.family.rawValue, policy: policy.rawValue, threads: options.threads, pages: options.pages,
                      direction: options.direction.rawValue, iterations: pairs / max(1, samples.count), mapNs: map,
                      mapStddevNs: mapDeviation, unmapNs: unmap, unmapStddevNs: unmapDeviation, nsPerOp: map + unmap,
                      opsPerSecond: longest > 0 ? Double(pairs) * 1e9 / Double(longest) : 0, deviceReadNs: deviceReadNs,
                      lazyWindowMaxNs: window.longestWindowNanoseconds, lazyWindowMeanNs: window.meanWindowNanoseconds,
                      lazyWindowMaxRanges: window.largestBatchRanges, domainMapUnmapNs: 0, leafArray: nil)
    }

    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}

extension String {
    init(oneDecimal value: Double) {
        let scaled = (value * 10).rounded() / 10
        self = "\(scaled)"
    }
}
