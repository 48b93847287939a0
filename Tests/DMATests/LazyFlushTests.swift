#if canImport(Glibc)
import Glibc
#endif
import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// Issue #4 item 7: the lazy window, its threshold and its timeout; concurrency of the hot path.
@Suite struct LazyFlushTests {
    @Test func theFlushTimerClosesTheWindowOfAnIdleDevice() throws {
        let platform = try EmulatedPlatform(.defaultPlatform(policy: DefaultDomainPolicy(invalidation: .lazy)))
        let nic = try #require(platform.dma(for: "nic0"))
        let bus = try nic.map(try platform.pages.allocate(), size: 4096, direction: .fromDevice)
        #expect(nic.device.engine.write(to: bus, bytes: [1]).completed)
        try nic.unmap(bus, size: 4096, direction: .fromDevice)
        #expect(nic.device.engine.write(to: bus, bytes: [2]).completed) // stale IOTLB entry: the lazy window
        var waited = 0
        while nic.deferredUnmaps > 0 && waited < 2000 {
            var pause = timespec(tv_sec: 0, tv_nsec: 1_000_000)
            nanosleep(&pause, nil)
            waited += 1
        }
        #expect(nic.deferredUnmaps == 0)
        #expect(nic.lazyWindow.flushesByTimeout >= 1)
        #expect(nic.lazyWindow.longestWindowNanoseconds >= 10_000_000)
        #expect(nic.device.engine.write(to: bus, bytes: [3]).fault != nil)
    }

    /// The timer sleeps until the oldest range's deadline: a range queued onto an empty ring
    /// stays queued (reachable) until its domain's timeout, then goes without any other unmap.
    @Test func theFlushTimerWaitsForTheDomainsOwnTimeout() throws {
        let timeout: UInt64 = 150_000_000
        let platform = try EmulatedPlatform(.defaultPlatform(policy: DefaultDomainPolicy(invalidation: .lazy)),
                                            dmaConfiguration: DMAConfiguration(flushTimeoutNanoseconds: timeout))
        let nic = try #require(platform.dma(for: "nic0"))
        let start = MonotonicNanoseconds.now()
        let bus = try nic.map(try platform.pages.allocate(), size: 4096, direction: .fromDevice)
        try nic.unmap(bus, size: 4096, direction: .fromDevice)
        var pause = timespec(tv_sec: 0, tv_nsec: 50_000_000)
        nanosleep(&pause, nil)
        if MonotonicNanoseconds.now() - start < timeout { #expect(nic.deferredUnmaps == 1) }
        var waited = 0
        while nic.deferredUnmaps > 0 && waited < 400 {
            pause = timespec(tv_sec: 0, tv_nsec: 5_000_000)
            nanosleep(&pause, nil)
            waited += 1
        }
        #expect(nic.deferredUnmaps == 0)
        #expect(nic.lazyWindow.flushesByTimeout == 1)
        #expect(nic.lazyWindow.longestWindowNanoseconds >= timeout)
    }

    @Test func aFullQueueFlushesInOneBatch() throws {
        let platform = try EmulatedPlatform(.defaultPlatform(policy: DefaultDomainPolicy(invalidation: .lazy)))
        let nic = try #require(platform.dma(for: "nic0"))
        let buffer = try platform.pages.allocate()
        for _ in 0..<256 {
            let bus = try nic.map(buffer, size: 64, direction: .toDevice)
            try nic.unmap(bus, size: 64, direction: .toDevice)
        }
        // The 256th unmap fills this thread's queue; in a slow build the 10 ms timer may have flushed
        // part of it earlier. Flushing now waits for a timer flush in progress and releases the rest.
        nic.flushDeferred()
        let window = nic.lazyWindow
        #expect(nic.deferredUnmaps == 0)
        #expect(window.rangesFlushed == 256)
        #expect(window.largestBatchRanges == 256 || window.flushesByTimeout > 0)
    }

    @Test(arguments: [DefaultDomainPolicy.Invalidation.strict, .lazy])
    func twoThreadsMapAndUnmapConcurrently(policy: DefaultDomainPolicy.Invalidation) async throws {
        let platform = try EmulatedPlatform(.defaultPlatform(policy: DefaultDomainPolicy(invalidation: policy)))
        let nic = try #require(platform.dma(for: "nic0"))
        let buffers = try (0..<2).map { _ in try platform.pages.allocate() }
        try await withThrowingTaskGroup(of: Void.self) { group in
            for buffer in buffers {
                group.addTask {
                    for round in 0..<2000 {
                        let bus = try nic.map(buffer + UInt64(round % 64), size: 64, direction: .fromDevice)
                        let result = nic.device.engine.write(to: bus, bytes: [UInt8(truncatingIfNeeded: round)])
                        if !result.completed { throw DMAError.notMapped(busAddress: bus.value) }
                        try nic.unmap(bus, size: 64, direction: .fromDevice)
                    }
                }
            }
            try await group.waitForAll()
        }
        nic.flushDeferred()
        #expect(nic.statistics.mappings == 4000 && nic.statistics.unmappings == 4000)
    }
}

private enum MonotonicNanoseconds {
    static func now() -> UInt64 {
        var time = timespec()
        clock_gettime(CLOCK_MONOTONIC, &time)
        return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
    }
}
