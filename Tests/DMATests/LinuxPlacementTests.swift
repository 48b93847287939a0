import DMA
import Emulation
import IOMMUCore
import Testing
import Workloads

/// Issue #8: the DMA layer placing IOVAs by Linux 6.12's rules, per CPU and on the caller's clock;
/// Linux's scatter-gather layout; host-bridge windows; allocator statistics.
@Suite struct LinuxPlacementTests {
    /// The default platform with `nic0` (64-bit PCI) configured as given.
    static func nic(_ configuration: DMAConfiguration, lazy: Bool = false) throws -> (EmulatedPlatform, DeviceDMA) {
        var specification = try PlatformSpecification.defaultPlatform(policy: DefaultDomainPolicy(invalidation: lazy ? .lazy : .strict))
        for index in specification.devices.indices where specification.devices[index].name == "nic0" {
            specification.devices[index].dma = configuration
        }
        let platform = try EmulatedPlatform(specification)
        return (platform, try #require(platform.dma(for: "nic0")))
    }

    static func on<Value>(cpu: Int, atMicros micros: UInt64,
                           _ body: () throws(DMAError) -> Value) throws(DMAError) -> Value {
        try DMACallContext(cpu: cpu, nanoseconds: micros * 1000).run(body)
    }

    @Test func eachCPUReusesOnlyWhatItFreedItself() throws {
        let (platform, nic) = try Self.nic(DMAConfiguration(iovaPlacement: .linux(cpus: 2)))
        #expect(nic.iovaPlacement == .linux(cpus: 2))
        let page = try platform.pages.allocate()
        // Top-down below 4 GiB first (the PCI 32-bit-first try), one page at a time.
        let first = try Self.on(cpu: 0, atMicros: 1) { () throws(DMAError) in try nic.map(page, size: 4096, direction: .toDevice) }
        let second = try Self.on(cpu: 0, atMicros: 2) { () throws(DMAError) in try nic.map(page + 8, size: 8, direction: .toDevice) }
        #expect(first.value == 0xFFFF_F000 && second.value == 0xFFFF_E008)
        try Self.on(cpu: 1, atMicros: 3) { () throws(DMAError) in try nic.unmap(first, size: 4096, direction: .toDevice) }
        // The freed IOVA sits in CPU 1's magazine: CPU 0 gets a new one, CPU 1 gets it back.
        let third = try Self.on(cpu: 0, atMicros: 4) { () throws(DMAError) in try nic.map(page, size: 4096, direction: .toDevice) }
        let fourth = try Self.on(cpu: 1, atMicros: 5) { () throws(DMAError) in try nic.map(page, size: 4096, direction: .toDevice) }
        #expect(third.value == 0xFFFF_D000 && fourth.value == 0xFFFF_F000)
        let statistics = try #require(nic.allocatorStatistics)
        #expect(statistics.placement == "linux" && statistics.preferredHits == 4 && statistics.preferredFallbacks == 0)
        #expect(statistics.cacheHits == 1 && statistics.cacheMisses == 3 && statistics.cacheHitRate == 0.25)
    }

    @Test func aLazyDomainReusesAnIOVAOnlyAfterItsTimerHasInvalidatedIt() throws {
        let (platform, nic) = try Self.nic(DMAConfiguration(iovaPlacement: .linux(cpus: 2)), lazy: true)
        let page = try platform.pages.allocate()
        let first = try Self.on(cpu: 0, atMicros: 0) { () throws(DMAError) in try nic.map(page, size: 4096, direction: .fromDevice) }
        #expect(nic.device.engine.write(to: first, bytes: [1]).completed)
        try Self.on(cpu: 0, atMicros: 1) { () throws(DMAError) in try nic.unmap(first, size: 4096, direction: .fromDevice) }
        #expect(nic.device.engine.write(to: first, bytes: [2]).completed) // the stale IOTLB entry: the lazy window
        let second = try Self.on(cpu: 0, atMicros: 2000) { () throws(DMAError) in try nic.map(page, size: 4096, direction: .fromDevice) }
        #expect(second.value == 0xFFFF_E000) // still queued, not reusable
        #expect(nic.deferredUnmaps == 1)
        // 10 ms after the first queued unmap (on the callers' clock) the timer flushes the IOTLB and frees it.
        try Self.on(cpu: 0, atMicros: 10_002) { () throws(DMAError) in try nic.unmap(second, size: 4096, direction: .fromDevice) }
        #expect(nic.device.engine.write(to: first, bytes: [3]).fault != nil)
        #expect(nic.deferredUnmaps == 1 && nic.lazyWindow.flushesByTimeout == 1)
        let third = try Self.on(cpu: 0, atMicros: 10_003) { () throws(DMAError) in try nic.map(page, size: 4096, direction: .fromDevice) }
        #expect(third == first)
        nic.flushDeferred()
        #expect(nic.deferredUnmaps == 0)
    }

    @Test func aScatterListIsLaidOutAsLinuxDoes() throws {
        // A 16 KiB segment boundary: a 16 KiB piece after a 4 KiB one starts at the next boundary.
        let (platform, nic) = try Self.nic(DMAConfiguration(segmentBoundaryMask: 0x3FFF, iovaPlacement: .linux(cpus: 1)))
        let small = try platform.pages.allocate(), large = try platform.pages.allocate(pages: 4)
        let mapped = try nic.mapScatterList([DMAScatterSegment(physical: small, length: 4096),
                                             DMAScatterSegment(physical: large, length: 0x4000)], direction: .fromDevice)
        // One 32 KiB IOVA range, size-aligned below 4 GiB; the gap after the first piece ends its segment.
        #expect(mapped.segments.map(\.busAddress.value) == [0xFFFF_8000, 0xFFFF_C000])
        #expect(mapped.segments.map(\.length) == [0x1000, 0x4000] && mapped.iovaLength == 0x8000)
        #expect(mapped.iommuMapCalls == 2)
        #expect(nic.device.engine.write(to: mapped.segments[1].busAddress + 0x3FFF, bytes: [0xA5]).completed)
        #expect(try platform.memory.read(large + 0x3FFF, count: 1) == [0xA5])
        #expect(nic.device.engine.write(to: IOVirtualAddress(0xFFFF_9000), bytes: [1]).fault != nil) // the gap is not mapped
        try nic.unmapScatterList(mapped)
        #expect(nic.device.engine.write(to: mapped.segments[0].busAddress, bytes: [1]).fault != nil)

        // A piece that does not start its page, or follows one that does not end its page, starts a new segment;
        // whole pages in between join.
        let pages = try (0..<3).map { _ in try platform.pages.allocate() }
        let list = try nic.mapScatterList([DMAScatterSegment(physical: pages[0], length: 4096),
                                           DMAScatterSegment(physical: pages[1], length: 0x800),
                                           DMAScatterSegment(physical: pages[2] + 0x100, length: 0x100)], direction: .toDevice)
        let base = list.segments[0].busAddress.value
        #expect(list.segments.map(\.length) == [0x1800, 0x100])
        #expect(list.segments[1].busAddress.value == base + 0x2100)
        try nic.unmapScatterList(list)
    }

    @Test func withoutTranslationEveryPieceIsItsOwnSegment() throws {
        let platform = try EmulatedPlatform(.defaultPlatform())
        let audio = try #require(platform.dma(for: "audio")) // an identity domain: dma-direct never merges
        let block = try platform.pages.allocate(pages: 2)
        let mapped = try audio.mapScatterList([DMAScatterSegment(physical: block, length: 4096),
                                               DMAScatterSegment(physical: block + 4096, length: 4096)], direction: .toDevice)
        #expect(mapped.segments.map(\.busAddress.value) == [block.value, block.value + 4096])
        #expect(mapped.iommuMapCalls == 0 && mapped.iovaLength == 0)
        #expect(audio.allocatorStatistics == nil && audio.iovaPlacement == nil)
        try audio.unmapScatterList(mapped)
    }

    @Test(arguments: [IOVAPlacement.native, .linux(cpus: 2)])
    func hostBridgeWindowsAreNeverHandedOut(placement: IOVAPlacement) throws {
        let windows: [ClosedRange<UInt64>] = [0x8000_0000...0xFEBF_FFFF, 0xFF00_0000...0xFFFF_FFFF]
        let (platform, nic) = try Self.nic(DMAConfiguration(iovaPlacement: placement, hostBridgeWindows: windows))
        let page = try platform.pages.allocate()
        for _ in 0..<8 {
            let bus = try nic.map(page, size: 4096, direction: .toDevice).value
            #expect(!windows.contains { $0.contains(bus) } && bus < 0x1_0000_0000)
            #expect(!(0xFEE0_0000...0xFEEF_FFFF).contains(bus)) // nor the MSI window between them
        }
    }

    @Test func theNativeAllocatorsStatisticsArePublicToo() throws {
        let (platform, nic) = try Self.nic(DMAConfiguration())
        #expect(nic.iovaPlacement == .native)
        let page = try platform.pages.allocate()
        for _ in 0..<4 {
            let bus = try nic.map(page, size: 4096, direction: .toDevice)
            try nic.unmap(bus, size: 4096, direction: .toDevice)
        }
        let statistics = try #require(nic.allocatorStatistics)
        #expect(statistics.placement == "native" && statistics.preferredHits == 4 && statistics.preferredFallbacks == 0)
        #expect(statistics.cacheHits + statistics.cacheMisses >= 4 && statistics.cacheHits >= 3)
    }
}
